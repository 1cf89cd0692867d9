package metrics

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// tracker maintains the active-session gauge: the sessions it knows of, by
// handle, with the deadline after which they no longer count. A heap by
// deadline lets expire cost O(expired log n).
type tracker struct {
	max       int
	untracked prometheus.Counter
	count     atomic.Int64

	mu      sync.Mutex
	handles map[string]*tracked
	heap    trackHeap
}

type tracked struct {
	handle   string
	deadline time.Time
	idx      int
}

func (t *tracker) init(max int, untracked prometheus.Counter) {
	t.max = max
	t.untracked = untracked
	t.handles = make(map[string]*tracked)
}

// add starts tracking handle until deadline. exact deadlines (from the
// store) replace estimated ones.
func (t *tracker) add(handle string, deadline time.Time, exact bool, now time.Time) {
	if handle == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	if e, ok := t.handles[handle]; ok {
		if exact {
			e.deadline = deadline
			heap.Fix(&t.heap, e.idx)
		}
		return
	}
	if !deadline.After(now) {
		return
	}
	if len(t.handles) >= t.max {
		t.untracked.Inc()
		return
	}
	e := &tracked{handle: handle, deadline: deadline}
	t.handles[handle] = e
	heap.Push(&t.heap, e)
	t.count.Add(1)
}

// extend moves the deadline of a tracked session; unknown handles (created
// by another process, or before this one started) are ignored.
func (t *tracker) extend(handle string, deadline time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.handles[handle]; ok {
		e.deadline = deadline
		heap.Fix(&t.heap, e.idx)
	}
}

func (t *tracker) remove(handle string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	if e, ok := t.handles[handle]; ok {
		heap.Remove(&t.heap, e.idx)
		delete(t.handles, handle)
		t.count.Add(-1)
	}
}

func (t *tracker) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
}

func (t *tracker) expireLocked(now time.Time) {
	for len(t.heap) > 0 && !t.heap[0].deadline.After(now) {
		e := heap.Pop(&t.heap).(*tracked)
		delete(t.handles, e.handle)
		t.count.Add(-1)
	}
}

type trackHeap []*tracked

func (h trackHeap) Len() int           { return len(h) }
func (h trackHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h trackHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *trackHeap) Push(x any) {
	e := x.(*tracked)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *trackHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// series keeps per-minute counts in a ring of fixed size.
type series struct {
	mu    sync.Mutex
	slots []slot
}

type slot struct {
	minute            int64 // Unix minute; 0 means empty
	created, rejected uint64
	active            int64
}

func newSeries(n int) *series {
	if n < 1 {
		n = 1
	}
	return &series{slots: make([]slot, n)}
}

func (s *series) add(t time.Time, created, rejected uint64, active int64) {
	m := t.Unix() / 60
	s.mu.Lock()
	sl := &s.slots[int(m%int64(len(s.slots)))]
	if sl.minute != m {
		*sl = slot{minute: m}
	}
	sl.created += created
	sl.rejected += rejected
	sl.active = active
	s.mu.Unlock()
}

func (s *series) since(t time.Time) []Point {
	from := t.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	var latest int64
	for _, sl := range s.slots {
		latest = max(latest, sl.minute)
	}
	var pts []Point
	// Walk the ring from its oldest minute to its newest.
	n := int64(len(s.slots))
	for m := latest - n + 1; m <= latest; m++ {
		if m < from || m <= 0 {
			continue
		}
		sl := s.slots[int(m%n)]
		if sl.minute != m {
			continue
		}
		pts = append(pts, Point{Time: time.Unix(m*60, 0).UTC(), Created: sl.created, Rejected: sl.rejected, Active: sl.active})
	}
	return pts
}
