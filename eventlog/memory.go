package eventlog

import (
	"context"
	"sync"
)

// Memory is a History in a ring buffer of Options.MaxEvents entries. Queries
// scan the ring, so their cost grows with MaxEvents, which bounds it.
type Memory struct {
	opts Options

	mu     sync.Mutex
	ring   []Entry
	start  int // index of the oldest entry
	n      int
	closed bool
}

// NewMemory returns an empty in-memory History.
func NewMemory(o Options) *Memory {
	o = o.withDefaults()
	return &Memory{opts: o, ring: make([]Entry, o.MaxEvents)}
}

// Append adds entries, overwriting the oldest when the ring is full.
func (m *Memory) Append(_ context.Context, entries []Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, e := range entries {
		i := (m.start + m.n) % len(m.ring)
		m.ring[i] = e
		if m.n < len(m.ring) {
			m.n++
		} else {
			m.start = (m.start + 1) % len(m.ring)
		}
	}
	return nil
}

// Query scans from the newest entry backwards.
func (m *Memory) Query(_ context.Context, q Query) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	cutoff := m.opts.Now().Add(-m.opts.Retention)
	limit := q.limit()
	var out []Entry
	for k := m.n - 1; k >= 0 && len(out) < limit; k-- {
		e := &m.ring[(m.start+k)%len(m.ring)]
		if e.Time.Before(cutoff) || !q.match(e) {
			continue
		}
		out = append(out, *e)
	}
	reverse(out)
	return out, nil
}

// Prune drops entries older than the retention from the oldest end.
func (m *Memory) Prune(_ context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cutoff := m.opts.Now().Add(-m.opts.Retention)
	pruned := 0
	for m.n > 0 && m.ring[m.start].Time.Before(cutoff) {
		m.ring[m.start] = Entry{}
		m.start = (m.start + 1) % len(m.ring)
		m.n--
		pruned++
	}
	return pruned, nil
}

// Len returns the number of entries kept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// Close releases the ring.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.ring = nil
	m.n = 0
	return nil
}

func reverse(es []Entry) {
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
}
