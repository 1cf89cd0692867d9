package eventlog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Defaults for Options and Query.
const (
	DefaultRetention  = 7 * 24 * time.Hour
	DefaultMaxEvents  = 100_000
	DefaultQueryLimit = 100
	MaxQueryLimit     = 1000
)

// ErrClosed is returned by a History or Recorder after Close.
var ErrClosed = errors.New("eventlog: closed")

// ErrBackend wraps every failure of a History's storage.
var ErrBackend = errors.New("eventlog: backend unavailable")

// Entry is a stored event with its identifier. IDs sort in time order
// within one process and are unique across processes.
type Entry struct {
	ID string `json:"id"`
	sessionkit.Event
}

// NewEntry gives e an ID (and its Time, if zero, from now).
func NewEntry(e sessionkit.Event, now time.Time) Entry {
	if e.Time.IsZero() {
		e.Time = now
	}
	return Entry{ID: newID(e.Time), Event: e}
}

// newID returns 8 bytes of Unix nanoseconds and 4 random bytes, in hex, so
// that IDs sort by time and do not collide across processes.
func newID(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// Options bound a History. The zero value takes the defaults.
type Options struct {
	// Retention is how long an event is kept. Default 7 days.
	Retention time.Duration
	// MaxEvents bounds the number of events kept. Default 100,000.
	MaxEvents int
	// Now is the clock used for retention. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = DefaultMaxEvents
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Query selects events. Empty fields match everything. Handle takes
// precedence over Subject, as it is the narrower.
type Query struct {
	Subject string
	Handle  string
	Type    sessionkit.EventType
	Since   time.Time // inclusive
	// Limit bounds the result to the most recent Limit matches. Default
	// 100, at most 1000.
	Limit int
}

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return DefaultQueryLimit
	case q.Limit > MaxQueryLimit:
		return MaxQueryLimit
	}
	return q.Limit
}

func (q Query) match(e *Entry) bool {
	return (q.Handle == "" || e.Handle == q.Handle) &&
		(q.Subject == "" || e.Subject == q.Subject) &&
		(q.Type == "" || e.Type == q.Type) &&
		(q.Since.IsZero() || !e.Time.Before(q.Since))
}

// History keeps events. Implementations are safe for concurrent use.
type History interface {
	// Append stores entries.
	Append(ctx context.Context, entries []Entry) error
	// Query returns the most recent events matching q, oldest first.
	Query(ctx context.Context, q Query) ([]Entry, error)
	// Prune removes events older than the retention or beyond the
	// maximum count and returns how many it removed.
	Prune(ctx context.Context) (int, error)
	Close() error
}

// Anomalies returns the recent anomaly events of h, oldest first.
func Anomalies(ctx context.Context, h History, since time.Time, limit int) ([]Entry, error) {
	return h.Query(ctx, Query{Type: sessionkit.EventAnomaly, Since: since, Limit: limit})
}

// RecorderOptions configure a Recorder. The zero value takes the defaults.
type RecorderOptions struct {
	// QueueSize bounds the events waiting to be written. Default 4096.
	QueueSize int
	// BatchSize bounds one Append. Default 256.
	BatchSize int
	// PruneInterval is how often the Recorder prunes the History.
	// Default 1m; negative disables pruning.
	PruneInterval time.Duration
	// OnError receives write errors (the events of a failed batch are lost
	// and counted in Failed). Default: ignored.
	OnError func(error)
	// Now is the clock that stamps events without a time. Default time.Now.
	Now func() time.Time
}

// Recorder is an EventSink that appends events to a History in the
// background. Emit never blocks: when the queue is full the event is dropped
// and counted.
type Recorder struct {
	h     History
	opts  RecorderOptions
	queue chan Entry

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	done   chan struct{}

	dropped, written, failed atomic.Uint64
	pending                  atomic.Int64 // queued or being written
}

// NewRecorder starts a Recorder writing to h. Close stops it.
func NewRecorder(h History, o RecorderOptions) *Recorder {
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.PruneInterval == 0 {
		o.PruneInterval = time.Minute
	}
	if o.OnError == nil {
		o.OnError = func(error) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Recorder{h: h, opts: o, queue: make(chan Entry, o.QueueSize), done: make(chan struct{})}
	go r.run()
	return r
}

// Emit queues e, or drops it if the queue is full or the Recorder closed.
func (r *Recorder) Emit(_ context.Context, e sessionkit.Event) {
	ent := NewEntry(e, r.opts.Now())
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Add(1)
		return
	}
	r.pending.Add(1)
	select {
	case r.queue <- ent:
	default:
		r.pending.Add(-1)
		r.dropped.Add(1)
	}
}

// RecorderStats counts a Recorder's events.
type RecorderStats struct {
	Written, Dropped, Failed uint64
}

// Stats returns the counts since the Recorder started.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{Written: r.written.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// History returns the History r writes to.
func (r *Recorder) History() History { return r.h }

// Close writes the queued events and stops the Recorder. It does not close
// the History.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.queue)
	r.mu.Unlock()
	<-r.done
	return nil
}

// Flush waits until every event queued before the call is written, or ctx
// ends. It is meant for tests and shutdown.
func (r *Recorder) Flush(ctx context.Context) error {
	for {
		if r.pending.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	var tick <-chan time.Time
	if r.opts.PruneInterval > 0 {
		t := time.NewTicker(r.opts.PruneInterval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]Entry, 0, r.opts.BatchSize)
	for {
		select {
		case e, ok := <-r.queue:
			if !ok {
				return
			}
			batch = append(batch[:0], e)
		fill:
			for len(batch) < r.opts.BatchSize {
				select {
				case e, ok := <-r.queue:
					if !ok {
						break fill
					}
					batch = append(batch, e)
				default:
					break fill
				}
			}
			r.write(batch)
			r.pending.Add(-int64(len(batch)))
		case <-tick:
			if _, err := r.h.Prune(context.Background()); err != nil {
				r.opts.OnError(fmt.Errorf("eventlog: prune: %w", err))
			}
		}
	}
}

func (r *Recorder) write(batch []Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.h.Append(ctx, batch); err != nil {
		r.failed.Add(uint64(len(batch)))
		r.opts.OnError(fmt.Errorf("eventlog: append %d events: %w", len(batch), err))
		return
	}
	r.written.Add(uint64(len(batch)))
}
