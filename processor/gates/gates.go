package gates

import (
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// Gates: snooze and on_change (docs/design.md, "Gates").
//
// Ownership: a Set belongs to one lane goroutine and is used without locks; the keys a
// lane sees are exactly the keys whose state it holds, because a key always hashes to the
// same lane. Hook-scoped state (snooze_scope: hook) is shared by every lane of the
// processor, so it lives in one Shared, under its mutex.
//
// Protocol per event and gated hook, in the lane:
//
//	deliver, reason := set.Check(&spec, hookID, key, fp, now)  // no state change
//	... deliver ...
//	change := set.Fired(&spec, hookID, key, fp, now)          // only after success
//	if change.Key != nil { write change to the state topic, same partition as the event }
//
// and every few seconds: for _, c := range set.Expire(now) { write c }.
//
// Time: decisions use now truncated to milliseconds, the unit of the changelog, so a set
// restored from the changelog decides exactly as the one that wrote it. A window is open
// while now < fired+window: an event at exactly fired+window fires (Kong's TTL cache
// treats an entry as gone at its expiry instant).

// gateMode says which gates a hook version has.
type gateMode uint8

const (
	// gateNone: neither snooze nor on_change; Check always delivers.
	gateNone gateMode = iota
	// gateSnoozeOnly: after a firing, drop everything for the window.
	gateSnoozeOnly
	// gateChangeOnly: deliver only when the fingerprint differs from the last fired one.
	gateChangeOnly
	// gateBoth: each distinct fingerprint at most once per window.
	gateBoth
)

// String returns the mode's name in the changelog ("snooze", "change", "both", "none").
func (m gateMode) String() string {
	switch m {
	case gateSnoozeOnly:
		return "snooze"
	case gateChangeOnly:
		return "change"
	case gateBoth:
		return "both"
	}
	return "none"
}

// parseGateMode is the inverse of gateMode.String for the modes that have state.
func parseGateMode(b []byte) (gateMode, bool) {
	switch string(b) {
	case "snooze":
		return gateSnoozeOnly, true
	case "change":
		return gateChangeOnly, true
	case "both":
		return gateBoth, true
	}
	return gateNone, false
}

// Drop reasons returned by Check, fit for a metric label. A drop in mode both is a
// "snooze": the fingerprint picks the window, the window drops the event.
const (
	// ReasonSnooze: the event fell inside the window of an earlier firing.
	ReasonSnooze = "snooze"
	// ReasonUnchanged: on_change alone, and the fingerprint is the last fired one.
	ReasonUnchanged = "unchanged"
)

// maxWindowSeconds caps a snooze so that it fits a time.Duration (Kong allows any int64).
const maxWindowSeconds = int64(1<<63-1) / int64(time.Second)

// Spec is what the gates need of one hook version; built once when the hook is
// compiled, read-only afterwards.
type Spec struct {
	mode     gateMode
	window   time.Duration // snooze; 0 for on_change alone
	scope    string        // hooks.ScopeKey or hooks.ScopeHook
	unique   []string      // fingerprint fields; nil means all of data
	windowMs int64
}

// NewSpec derives the gate spec of h; unique is the catalogue's fingerprint fields of
// the hook's source and event (Catalogue.UniqueFields).
func NewSpec(h *hooks.Hook, unique []string) Spec {
	s := Spec{scope: h.SnoozeScope, unique: unique}
	if s.scope != hooks.ScopeHook {
		s.scope = hooks.ScopeKey
	}
	secs := min(h.SnoozeSeconds(), maxWindowSeconds)
	if secs > 0 {
		s.window = time.Duration(secs) * time.Second
		s.windowMs = s.window.Milliseconds()
	}
	switch {
	case secs > 0 && h.ChangeOnly():
		s.mode = gateBoth
	case secs > 0:
		s.mode = gateSnoozeOnly
	case h.ChangeOnly():
		s.mode = gateChangeOnly
	}
	return s
}

// Active reports whether the hook has a gate at all.
func (s *Spec) Active() bool { return s.mode != gateNone }

// NeedsFingerprint reports whether Check and Fired look at fp (otherwise pass 0 and skip
// computing it).
func (s *Spec) NeedsFingerprint() bool { return s.mode == gateChangeOnly || s.mode == gateBoth }

// HookScoped reports whether the state is per hook (Kong's) rather than per entity key:
// such a hook is gated through the processor's Shared, not the lane's Set.
func (s *Spec) HookScoped() bool { return s.scope == hooks.ScopeHook }

// Change is one record for the state topic: Key is the record key, Value nil a
// tombstone. The zero Change (nil Key) means there is nothing to write. Key and Value
// are freshly allocated and owned by the caller.
type Change struct {
	Key   []byte
	Value []byte
}

// gateEvictions counts entries dropped because a gate set was full.
var gateEvictions = metrics.NewCounter(promhelp.Describe(`eventhooks_gate_evictions_total`, "Gate entries evicted because a partition's gate set was full."))

// gateEntries is the eventhooks_gate_entries gauge: the entries held by the lanes' sets.
var (
	gateEntries atomic.Int64
	_           = metrics.NewGauge(promhelp.Describe(`eventhooks_gate_entries`, "Gate entries held by the lanes' sets."), func() float64 { return float64(gateEntries.Load()) })
)

// AddEntries adds delta to the eventhooks_gate_entries gauge. The processor reports the
// change in Len of each lane's Set (and -Len when the lane ends); the sets of a replay and
// Shared are not counted.
func AddEntries(delta int) { gateEntries.Add(int64(delta)) }

// Set holds the gate entries of one lane, keyed by their changelog record key
// (see appendStateKey). Not safe for concurrent use.
//
// Memory: one map slot, one gateEntry and the record key's bytes per entry, plus a
// 16-byte deadline for windowed entries: about 220 B per entry with UUID hook ids and
// 36-byte entity keys (BenchmarkGateMemory1M). The number of entries is capped; past the
// cap the entry fired longest ago is evicted.
type Set struct {
	max     int
	index   map[string]int32 // record key → entries index
	entries []gateEntry      // slab; free slots are chained through next
	free    int32            // first free slot, -1 for none
	// Fire order, oldest first, through prev/next: the eviction order.
	head, tail int32
	deadlines  []gateDeadline // min-heap by at; may hold stale items (see Expire)
	evicted    []string       // record keys evicted since the last Expire: tombstones due
	evictions  uint64
	scratch    []byte // the record key being looked up
}

// gateEntry is the state of one (hook, entity key[, fingerprint]).
type gateEntry struct {
	rk         string // record key; "" while the slot is free
	fired      int64  // unix ms of the last firing
	expires    int64  // unix ms at which the entry goes; 0: never (on_change)
	fp         uint64 // fingerprint of the last firing
	prev, next int32
	mode       gateMode // mode of the hook version that fired; another mode ignores it
}

// gateDeadline says that entries[idx] expires at at, unless it fired again since.
type gateDeadline struct {
	at  int64
	idx int32
}

// NewSet returns an empty set holding at most maxEntries entries (0: unbounded).
func NewSet(maxEntries int) *Set {
	return &Set{
		max:   maxEntries,
		index: make(map[string]int32),
		free:  -1, head: -1, tail: -1,
	}
}

// Len returns the number of entries held.
func (g *Set) Len() int { return len(g.index) }

// Check decides whether an event with fingerprint fp (0 when the spec does not need one)
// of entity key is delivered to the hook; reason says why not. It changes nothing: the
// lane calls Fired once the delivery has succeeded.
func (g *Set) Check(spec *Spec, hookID string, key []byte, fp uint64, now time.Time) (deliver bool, reason string) {
	if spec.mode == gateNone {
		return true, ""
	}
	g.scratch = appendStateKey(g.scratch[:0], spec, hookID, key, fp)
	i, ok := g.index[string(g.scratch)]
	if !ok {
		return true, ""
	}
	return g.entries[i].decide(spec, fp, now.UnixMilli())
}

// firedAt returns when the entry of recordKey last fired, if the set holds it.
func (g *Set) firedAt(recordKey []byte) (int64, bool) {
	i, ok := g.index[string(recordKey)]
	if !ok {
		return 0, false
	}
	return g.entries[i].fired, true
}

// decide applies spec to an existing entry. An entry written under another mode (the
// hook was edited) does not gate. A window shortened by an edit applies at once; a
// lengthened one from the next firing.
func (e *gateEntry) decide(spec *Spec, fp uint64, nowMs int64) (bool, string) {
	if e.mode != spec.mode {
		return true, ""
	}
	if spec.mode == gateChangeOnly {
		if e.fp != fp {
			return true, ""
		}
		return false, ReasonUnchanged
	}
	if nowMs >= min(e.expires, e.fired+spec.windowMs) {
		return true, ""
	}
	return false, ReasonSnooze
}

// Fired records a successful delivery and returns the changelog record to write (the
// zero Change when there is nothing new: no gate, or on_change with the same
// fingerprint as recorded). When the set is full the entry fired longest ago is evicted;
// its tombstone comes out of the next Expire.
func (g *Set) Fired(spec *Spec, hookID string, key []byte, fp uint64, now time.Time) (change Change) {
	if spec.mode == gateNone {
		return Change{}
	}
	g.scratch = appendStateKey(g.scratch[:0], spec, hookID, key, fp)
	i, ok := g.index[string(g.scratch)]
	if ok {
		e := &g.entries[i]
		if spec.mode == gateChangeOnly && e.mode == gateChangeOnly && e.fp == fp {
			return Change{}
		}
	} else {
		i = g.insert(string(g.scratch))
	}
	st := gateState{mode: spec.mode, fired: now.UnixMilli(), window: spec.windowMs, fp: fp}
	g.set(i, st)
	return g.entries[i].change(st)
}

// insert adds an entry for record key rk, evicting the oldest if the set is full, and
// returns its slot. The caller sets its state with set.
func (g *Set) insert(rk string) int32 {
	if g.max > 0 && len(g.index) >= g.max {
		g.evictOldest()
	}
	var i int32
	if g.free >= 0 {
		i = g.free
		g.free = g.entries[i].next
	} else {
		i = int32(len(g.entries))
		g.entries = append(g.entries, gateEntry{})
	}
	g.entries[i] = gateEntry{rk: rk, prev: -1, next: -1}
	g.index[rk] = i
	g.linkTail(i)
	return i
}

// set stores st in slot i, makes it the most recently fired and schedules its expiry.
func (g *Set) set(i int32, st gateState) {
	e := &g.entries[i]
	e.mode, e.fired, e.fp, e.expires = st.mode, st.fired, st.fp, 0
	if st.mode != gateChangeOnly {
		e.expires = st.fired + st.window
		g.pushDeadline(gateDeadline{at: e.expires, idx: i})
	}
	if g.tail != i {
		g.unlink(i)
		g.linkTail(i)
	}
}

// remove frees slot i.
func (g *Set) remove(i int32) {
	e := &g.entries[i]
	delete(g.index, e.rk)
	g.unlink(i)
	*e = gateEntry{next: g.free, prev: -1}
	g.free = i
}

// evictOldest removes the entry fired longest ago and queues its tombstone.
func (g *Set) evictOldest() {
	i := g.head
	if i < 0 {
		return
	}
	g.evicted = append(g.evicted, g.entries[i].rk)
	g.remove(i)
	g.evictions++
	gateEvictions.Inc()
}

// unlink takes slot i out of the fire-order list.
func (g *Set) unlink(i int32) {
	e := &g.entries[i]
	if e.prev >= 0 {
		g.entries[e.prev].next = e.next
	} else if g.head == i {
		g.head = e.next
	}
	if e.next >= 0 {
		g.entries[e.next].prev = e.prev
	} else if g.tail == i {
		g.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

// linkTail makes slot i the most recently fired.
func (g *Set) linkTail(i int32) {
	e := &g.entries[i]
	e.prev, e.next = g.tail, -1
	if g.tail >= 0 {
		g.entries[g.tail].next = i
	} else {
		g.head = i
	}
	g.tail = i
}

// Expire removes the entries whose window ended at or before now and returns the
// tombstones to write: theirs and those of entries evicted since the last call (unless
// the key has fired again since, which superseded the tombstone). Call it periodically,
// e.g. every few seconds; it returns nil when there is nothing to write.
func (g *Set) Expire(now time.Time) []Change {
	var out []Change
	for _, rk := range g.evicted {
		if _, live := g.index[rk]; !live {
			out = append(out, Change{Key: []byte(rk)})
		}
	}
	clear(g.evicted)
	g.evicted = g.evicted[:0]
	nowMs := now.UnixMilli()
	for len(g.deadlines) > 0 && g.deadlines[0].at <= nowMs {
		d := g.popDeadline()
		e := &g.entries[d.idx]
		if e.rk == "" || e.expires != d.at {
			continue // stale: the entry fired again, or its slot was freed
		}
		out = append(out, Change{Key: []byte(e.rk)})
		g.remove(d.idx)
	}
	return out
}

// DropHook removes every entry of hookID (the hook was deleted) and returns their
// tombstones. It scans the whole set.
func (g *Set) DropHook(hookID string) []Change {
	var out []Change
	for i := range g.entries {
		rk := g.entries[i].rk
		if len(rk) > len(hookID) && rk[len(hookID)] == 0 && rk[:len(hookID)] == hookID {
			out = append(out, Change{Key: []byte(rk)})
			g.remove(int32(i))
		}
	}
	return out
}

// pushDeadline adds d to the deadline heap.
func (g *Set) pushDeadline(d gateDeadline) {
	h := append(g.deadlines, d)
	j := len(h) - 1
	for j > 0 {
		p := (j - 1) / 2
		if h[p].at <= h[j].at {
			break
		}
		h[p], h[j] = h[j], h[p]
		j = p
	}
	g.deadlines = h
}

// popDeadline removes and returns the earliest deadline; the heap must not be empty.
func (g *Set) popDeadline() gateDeadline {
	h := g.deadlines
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for j := 0; ; {
		l := 2*j + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h[r].at < h[l].at {
			c = r
		}
		if h[j].at <= h[c].at {
			break
		}
		h[j], h[c] = h[c], h[j]
		j = c
	}
	g.deadlines = h
	return top
}

// Restore applies one record of the state topic, read in offset order when a partition is
// assigned, before its first event: a tombstone deletes the entry, a value replaces it
// (the last record of a key wins), a value whose window ended by now deletes it. Nothing
// is written back, except tombstones for entries evicted because the set is full (they
// come out of the next Expire). It fails on a record it cannot read, which the caller
// counts and skips.
func (g *Set) Restore(recordKey, value []byte, now time.Time) error {
	k, ok := parseStateKey(recordKey)
	if !ok {
		return errBadStateKey
	}
	i, exists := g.index[string(recordKey)]
	if len(value) == 0 {
		if exists {
			g.remove(i)
		}
		return nil
	}
	st, err := decodeState(value)
	if err != nil {
		return err
	}
	if (st.mode == gateBoth) != k.hasFP || (k.hasFP && k.fp != st.fp) {
		return errBadStateValue
	}
	if st.mode != gateChangeOnly && now.UnixMilli() >= st.fired+st.window {
		if exists {
			g.remove(i)
		}
		return nil
	}
	if !exists {
		i = g.insert(string(recordKey))
	}
	g.set(i, st)
	return nil
}

// change encodes the entry's record: key and value share one allocation.
func (e *gateEntry) change(st gateState) Change {
	buf := make([]byte, 0, len(e.rk)+maxStateValueLen)
	buf = append(buf, e.rk...)
	n := len(buf)
	buf = encodeState(buf, st)
	return Change{Key: buf[:n:n], Value: buf[n:]}
}
