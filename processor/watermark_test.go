package processor

import "testing"

func TestWatermark(t *testing.T) {
	w := newWatermark()
	if w.commitPoint() != -1 {
		t.Fatal("commit point before anything is done")
	}
	for _, o := range []int64{10, 11, 13, 14} { // 12 is a gap (compaction, control record)
		w.add(o)
	}
	w.markDone(11)
	if got := w.commitPoint(); got != -1 {
		t.Fatalf("commit point %d while 10 is pending", got)
	}
	w.markDone(10)
	if got := w.commitPoint(); got != 12 {
		t.Fatalf("commit point %d, want 12", got)
	}
	w.markDone(14)
	w.markDone(13)
	if got, pending := w.commitPoint(), w.pending(); got != 15 || pending != 0 {
		t.Fatalf("commit point %d pending %d, want 15, 0", got, pending)
	}
	// A rewind (offset reset) starts over without moving the commit point back.
	w.add(20)
	w.add(5)
	w.markDone(5)
	if got := w.commitPoint(); got != 15 {
		t.Fatalf("commit point %d after a rewind, want 15", got)
	}
	w.add(16)
	w.markDone(16)
	if got := w.commitPoint(); got != 17 {
		t.Fatalf("commit point %d, want 17", got)
	}
}
