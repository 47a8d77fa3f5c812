package bench

import (
	"bytes"
	"sync/atomic"
	"time"
)

// IDStats is what a Receiver tracking event ids (TrackIDs) counted since: how many of
// the expected sequence numbers arrived at least once, how many requests repeated one
// already seen, and how many carried no sequence number in range.
type IDStats struct {
	Expected   int64 `json:"expected"`
	Distinct   int64 `json:"distinct"`
	Duplicates int64 `json:"duplicates"`
	Unknown    int64 `json:"unknown"`
	// CompleteAt is the unix nanos of the request that made Distinct reach Expected, 0
	// before that.
	CompleteAt int64 `json:"complete_at,omitempty"`
}

// Lost is how many expected ids have not arrived (yet).
func (s IDStats) Lost() int64 { return s.Expected - s.Distinct }

// idTracker counts the requests of each sequence number 0 … len(seen)-1. The handler
// touches only atomics, so it runs on every fasthttp goroutine at once.
type idTracker struct {
	seen       []atomic.Uint32
	distinct   atomic.Int64
	duplicates atomic.Int64
	unknown    atomic.Int64
	completeAt atomic.Int64
}

var seqKey = []byte(`"seq":`)

// record counts the request with body, received at now.
func (t *idTracker) record(body []byte, now time.Time) {
	seq, ok := seqOf(body)
	if !ok || seq >= int64(len(t.seen)) {
		t.unknown.Add(1)
		return
	}
	if t.seen[seq].Add(1) > 1 {
		t.duplicates.Add(1)
		return
	}
	if t.distinct.Add(1) == int64(len(t.seen)) {
		t.completeAt.Store(now.UnixNano())
	}
}

// stats returns the counts so far.
func (t *idTracker) stats() IDStats {
	return IDStats{Expected: int64(len(t.seen)), Distinct: t.distinct.Load(), Duplicates: t.duplicates.Load(),
		Unknown: t.unknown.Load(), CompleteAt: t.completeAt.Load()}
}

// missing returns up to most of the sequence numbers not seen, lowest first.
func (t *idTracker) missing(most int) []int64 {
	var out []int64
	for i := range t.seen {
		if len(out) == most {
			break
		}
		if t.seen[i].Load() == 0 {
			out = append(out, int64(i))
		}
	}
	return out
}

// seqOf finds `"seq":<digits>` in body (ProduceNumbered's events; the webhook body is
// the event's data) and returns the number.
func seqOf(body []byte) (int64, bool) {
	i := bytes.Index(body, seqKey)
	if i < 0 {
		return 0, false
	}
	b := body[i+len(seqKey):]
	var v int64
	j := 0
	for ; j < len(b) && j < 18 && b[j] >= '0' && b[j] <= '9'; j++ {
		v = v*10 + int64(b[j]-'0')
	}
	return v, j > 0
}

// TrackIDs makes the receiver count, until the next Reset, which of the sequence
// numbers 0 … n-1 (ProduceNumbered's "seq") arrive, and how often: see IDs. Call it
// between phases, after Reset.
func (r *Receiver) TrackIDs(n int) {
	r.ids.Store(&idTracker{seen: make([]atomic.Uint32, max(n, 0))})
}

// IDs returns what TrackIDs counted and up to most of the ids still missing, lowest
// first; zero figures when not tracking.
func (r *Receiver) IDs(most int) (IDStats, []int64) {
	t := r.ids.Load()
	if t == nil {
		return IDStats{}, nil
	}
	s := t.stats()
	if s.Lost() == 0 {
		return s, nil
	}
	return s, t.missing(most)
}
