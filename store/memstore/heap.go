package memstore

import (
	"time"

	"github.com/sessionkit/sessionkit"
)

// entry is one stored session. Its record is never handed out: readers copy
// it under the read lock, writers change it under the write lock.
type entry struct {
	rec  *sessionkit.Record
	exp  int // position in Store.expiry
	anon int // position in Store.anon, -1 when not anonymous
}

// entryHeap is a min-heap of entries that records each entry's position in
// it, so an entry can be removed or re-sorted in O(log n) when its key
// changes. key returns the ordering time and pos the entry's position field.
type entryHeap struct {
	items []*entry
	key   func(*entry) time.Time
	pos   func(*entry) *int
}

func (h *entryHeap) less(i, j int) bool {
	a, b := h.key(h.items[i]), h.key(h.items[j])
	if a.Equal(b) {
		return h.items[i].rec.Handle < h.items[j].rec.Handle
	}
	return a.Before(b)
}

func (h *entryHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.pos(h.items[i]) = i
	*h.pos(h.items[j]) = j
}

func (h *entryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *entryHeap) down(i int) bool {
	start := i
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

func (h *entryHeap) push(e *entry) {
	*h.pos(e) = len(h.items)
	h.items = append(h.items, e)
	h.up(len(h.items) - 1)
}

// remove takes e out of the heap; e must be in it.
func (h *entryHeap) remove(e *entry) {
	i := *h.pos(e)
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = nil
	h.items = h.items[:last]
	*h.pos(e) = -1
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

// fix restores the order after e's key changed.
func (h *entryHeap) fix(e *entry) {
	i := *h.pos(e)
	if !h.down(i) {
		h.up(i)
	}
}

func (h *entryHeap) min() *entry {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}
