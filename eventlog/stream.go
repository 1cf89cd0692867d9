package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionkit/sessionkit"
)

// StreamOptions configure a Stream. The zero value takes the defaults.
type StreamOptions struct {
	// Buffer is the number of events a subscriber may fall behind by before
	// further events to it are dropped. Default 256.
	Buffer int
	// MaxSubscribers bounds concurrent subscribers. Default 64.
	MaxSubscribers int
	// Heartbeat is the interval of SSE comment lines that keep idle
	// connections (and proxies) open. Default 15s.
	Heartbeat time.Duration
	// Now stamps events without a time. Default time.Now.
	Now func() time.Time
}

// Filter selects the events a subscriber receives. Empty fields match all.
type Filter struct {
	Subject string
	Handle  string
	Types   []sessionkit.EventType
}

func (f Filter) match(e *Entry) bool {
	if (f.Subject != "" && e.Subject != f.Subject) || (f.Handle != "" && e.Handle != f.Handle) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, t := range f.Types {
		if t == e.Type {
			return true
		}
	}
	return false
}

// ErrTooManySubscribers is returned by Subscribe at MaxSubscribers.
var ErrTooManySubscribers = fmt.Errorf("eventlog: too many stream subscribers")

// Stream fans new events out to subscribers. It is an EventSink (Emit never
// blocks) and an http.Handler serving Server-Sent Events.
type Stream struct {
	opts StreamOptions

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
	done   chan struct{}

	dropped atomic.Uint64
}

// NewStream returns a Stream without subscribers.
func NewStream(o StreamOptions) *Stream {
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.MaxSubscribers <= 0 {
		o.MaxSubscribers = 64
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Stream{opts: o, subs: make(map[*Subscription]struct{}), done: make(chan struct{})}
}

// Subscription receives a Stream's events on C until Close or until the
// Stream closes, after which C is closed.
type Subscription struct {
	s       *Stream
	filter  Filter
	c       chan Entry
	dropped atomic.Uint64
	once    sync.Once
}

// C returns the channel of events.
func (sub *Subscription) C() <-chan Entry { return sub.c }

// Dropped returns how many events this subscriber missed because it was
// too slow.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	sub.closeLocked()
}

func (sub *Subscription) closeLocked() {
	sub.once.Do(func() {
		delete(sub.s.subs, sub)
		close(sub.c)
	})
}

// Subscribe starts a subscription for the events matching f.
func (s *Stream) Subscribe(f Filter) (*Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if len(s.subs) >= s.opts.MaxSubscribers {
		return nil, ErrTooManySubscribers
	}
	sub := &Subscription{s: s, filter: f, c: make(chan Entry, s.opts.Buffer)}
	s.subs[sub] = struct{}{}
	return sub, nil
}

// Emit delivers e to every matching subscriber that has room for it.
func (s *Stream) Emit(_ context.Context, e sessionkit.Event) { s.Publish(NewEntry(e, s.opts.Now())) }

// Publish delivers an entry that already has its ID.
func (s *Stream) Publish(ent Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		if !sub.filter.match(&ent) {
			continue
		}
		select {
		case sub.c <- ent:
		default:
			sub.dropped.Add(1)
			s.dropped.Add(1)
		}
	}
}

// Dropped returns how many events all subscribers missed in total.
func (s *Stream) Dropped() uint64 { return s.dropped.Load() }

// Subscribers returns the number of current subscribers.
func (s *Stream) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Close ends every subscription; SSE handlers return.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	for sub := range s.subs {
		sub.closeLocked()
	}
}

// ServeHTTP streams events as Server-Sent Events: one "event: <type>" with
// "id:" and a JSON "data:" line per event, and a comment line every
// Heartbeat. Query parameters subject, handle and type (repeatable or
// comma-separated) filter the events. A client that falls behind by more
// than the buffer misses events; each SSE message after a gap carries the
// number missed so far in a "dropped" comment.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	q := r.URL.Query()
	f := Filter{Subject: q.Get("subject"), Handle: q.Get("handle")}
	for _, v := range q["type"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				f.Types = append(f.Types, sessionkit.EventType(t))
			}
		}
	}
	sub, err := s.Subscribe(f)
	if err != nil {
		http.Error(w, "event stream unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": stream open\n\n"); err != nil {
		return
	}
	rc.Flush()
	// A server's WriteTimeout would cut a long stream: move the deadline
	// along with each write instead (ignored where unsupported).
	extend := func() { rc.SetWriteDeadline(time.Now().Add(2*s.opts.Heartbeat + 10*time.Second)) }
	extend()
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			if d := sub.Dropped(); d != reported {
				reported = d
				fmt.Fprintf(w, ": dropped %d\n", d)
			}
			body, err := json.Marshal(e)
			if err != nil {
				continue
			}
			// Event types and IDs are plain tokens; JSON has no raw
			// newlines, so each field is one line.
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", e.ID, sseToken(string(e.Type)), body); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		extend()
	}
}

// sseToken keeps a field value on one line.
func sseToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}
