package deliveries

// ring keeps the last len(slots) values added, each with the sequence number Add gave
// it; a slot whose seq is 0 is empty (never filled, or dropped).
type ring[T any] struct {
	slots []entry[T]
	next  uint64 // seq of the next value; seqs start at 1 so 0 means empty
}

type entry[T any] struct {
	seq uint64
	v   T
}

func newRing[T any](capacity int) *ring[T] {
	return &ring[T]{slots: make([]entry[T], max(capacity, 1)), next: 1}
}

// add stores v, overwriting the oldest value when full, and returns its seq.
func (r *ring[T]) add(v T) uint64 {
	seq := r.next
	r.next++
	r.slots[seq%uint64(len(r.slots))] = entry[T]{seq: seq, v: v}
	return seq
}

// victim returns the seq of the value the next add overwrites, 0 when none.
func (r *ring[T]) victim() uint64 { return r.slots[r.next%uint64(len(r.slots))].seq }

// get returns the value of seq, if it is still held.
func (r *ring[T]) get(seq uint64) (*T, bool) {
	slot := &r.slots[seq%uint64(len(r.slots))]
	if seq == 0 || slot.seq != seq {
		return nil, false
	}
	return &slot.v, true
}

// drop empties the slot of seq, if it still holds it.
func (r *ring[T]) drop(seq uint64) {
	slot := &r.slots[seq%uint64(len(r.slots))]
	if slot.seq == seq {
		var zero entry[T]
		*slot = zero
	}
}

// newest calls fn with the held values from the newest down, starting below seq before
// (0: from the newest), until fn returns false.
func (r *ring[T]) newest(before uint64, fn func(seq uint64, v *T) bool) {
	top := r.next
	if before != 0 && before < top {
		top = before
	}
	n := uint64(len(r.slots))
	for seq := top - 1; seq >= 1 && seq+n >= r.next; seq-- {
		if v, ok := r.get(seq); ok && !fn(seq, v) {
			return
		}
	}
}
