package processor

import (
	"sort"
	"sync"
)

// watermark tracks which offsets of one partition are done, so that the commit point is the
// highest offset below which every dispatched record is done. Offsets are added in
// increasing order by the partition worker and marked done in any order by its lanes.
type watermark struct {
	mu      sync.Mutex
	offsets []int64 // pending offsets, increasing, from head
	done    []bool
	head    int
	next    int64 // every offset below next is done; -1 before the first
}

func newWatermark() *watermark { return &watermark{next: -1} }

// add registers offset as dispatched. Offsets normally increase; if the client rewinds
// (an offset reset), the pending list starts over: records below the commit point are
// done already, and the rest are dispatched again.
func (w *watermark) add(offset int64) {
	w.mu.Lock()
	if n := len(w.offsets); n > w.head && offset <= w.offsets[n-1] {
		w.offsets, w.done, w.head = w.offsets[:0], w.done[:0], 0
	}
	w.offsets = append(w.offsets, offset)
	w.done = append(w.done, false)
	w.mu.Unlock()
}

// markDone marks offset done and advances the commit point over the done prefix.
func (w *watermark) markDone(offset int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pending := w.offsets[w.head:]
	i := sort.Search(len(pending), func(i int) bool { return pending[i] >= offset })
	if i == len(pending) || pending[i] != offset {
		return
	}
	w.done[w.head+i] = true
	for w.head < len(w.offsets) && w.done[w.head] {
		w.next = max(w.next, w.offsets[w.head]+1) // never backwards, even after a rewind
		w.head++
	}
	if w.head == len(w.offsets) {
		w.offsets, w.done, w.head = w.offsets[:0], w.done[:0], 0
	} else if w.head > 4096 && w.head*2 > len(w.offsets) {
		n := copy(w.offsets, w.offsets[w.head:])
		copy(w.done, w.done[w.head:])
		w.offsets, w.done, w.head = w.offsets[:n], w.done[:n], 0
	}
}

// commitPoint returns the offset to commit (the next offset to consume), or -1.
func (w *watermark) commitPoint() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// pending returns how many dispatched records are not done.
func (w *watermark) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.offsets) - w.head
}
