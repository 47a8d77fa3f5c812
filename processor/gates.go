package processor

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
)

// Gates: snooze and on_change (DESIGN.md §6).
//
// Ownership: a gateSet belongs to one lane goroutine and is used without locks; the keys a
// lane sees are exactly the keys whose state it holds, because a key always hashes to the
// same lane. Hook-scoped state (snooze_scope: hook) is shared by every lane of the
// processor, so it lives in one sharedGates, under its mutex.
//
// Protocol per event and gated hook, in the lane:
//
//	deliver, reason := gates.check(&spec, hookID, key, fp, now)  // no state change
//	... deliver ...
//	change := gates.fired(&spec, hookID, key, fp, now)          // only after success
//	if change.key != nil { write change to the state topic, same partition as the event }
//
// and every few seconds: for _, c := range gates.expire(now) { write c }.
//
// Time: decisions use now truncated to milliseconds, the unit of the changelog, so a set
// restored from the changelog decides exactly as the one that wrote it. A window is open
// while now < fired+window: an event at exactly fired+window fires (Kong's TTL cache
// treats an entry as gone at its expiry instant).

// gateMode says which gates a hook version has.
type gateMode uint8

const (
	// gateNone: neither snooze nor on_change; check always delivers.
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

// Drop reasons returned by check, fit for a metric label. A drop in mode both is a
// "snooze": the fingerprint picks the window, the window drops the event.
const (
	reasonSnooze    = "snooze"
	reasonUnchanged = "unchanged"
)

// maxWindowSeconds caps a snooze so that it fits a time.Duration (Kong allows any int64).
const maxWindowSeconds = int64(1<<63-1) / int64(time.Second)

// gateSpec is what the gates need of one hook version; built once when the hook is
// compiled, read-only afterwards.
type gateSpec struct {
	mode     gateMode
	window   time.Duration // snooze; 0 for on_change alone
	scope    string        // hooks.ScopeKey or hooks.ScopeHook
	unique   []string      // fingerprint fields; nil means all of data
	windowMs int64
}

// newGateSpec derives the gate spec of h; unique is the catalogue's fingerprint fields of
// the hook's source and event (Catalogue.UniqueFields).
func newGateSpec(h *hooks.Hook, unique []string) gateSpec {
	s := gateSpec{scope: h.SnoozeScope, unique: unique}
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

// active reports whether the hook has a gate at all.
func (s *gateSpec) active() bool { return s.mode != gateNone }

// needsFingerprint reports whether check and fired look at fp (otherwise pass 0 and skip
// computing it).
func (s *gateSpec) needsFingerprint() bool { return s.mode == gateChangeOnly || s.mode == gateBoth }

// hookScoped reports whether the state is per hook (Kong's) rather than per entity key:
// such a hook is gated through the processor's sharedGates, not the lane's gateSet.
func (s *gateSpec) hookScoped() bool { return s.scope == hooks.ScopeHook }

// stateChange is one record for the state topic: key is the record key, value nil a
// tombstone. The zero stateChange (nil key) means there is nothing to write. key and value
// are freshly allocated and owned by the caller.
type stateChange struct {
	key   []byte
	value []byte
}

// gateEvictions counts entries dropped because a gate set was full.
var gateEvictions = metrics.NewCounter(`eventhooks_gate_evictions_total`)

// gateSet holds the gate entries of one lane, keyed by their changelog record key
// (see appendStateKey). Not safe for concurrent use.
//
// Memory: one map slot, one gateEntry and the record key's bytes per entry, plus a
// 16-byte deadline for windowed entries: about 220 B per entry with UUID hook ids and
// 36-byte entity keys (BenchmarkGateMemory1M). The number of entries is capped; past the
// cap the entry fired longest ago is evicted.
type gateSet struct {
	max     int
	index   map[string]int32 // record key → entries index
	entries []gateEntry      // slab; free slots are chained through next
	free    int32            // first free slot, -1 for none
	// Fire order, oldest first, through prev/next: the eviction order.
	head, tail int32
	deadlines  []gateDeadline // min-heap by at; may hold stale items (see expire)
	evicted    []string       // record keys evicted since the last expire: tombstones due
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

// newGateSet returns an empty set holding at most maxEntries entries (0: unbounded).
func newGateSet(maxEntries int) *gateSet {
	return &gateSet{
		max:   maxEntries,
		index: make(map[string]int32),
		free:  -1, head: -1, tail: -1,
	}
}

// len returns the number of entries held.
func (g *gateSet) len() int { return len(g.index) }

// evictedCount returns the number of entries evicted because the set was full.
func (g *gateSet) evictedCount() uint64 { return g.evictions }

// check decides whether an event with fingerprint fp (0 when the spec does not need one)
// of entity key is delivered to the hook; reason says why not. It changes nothing: the
// lane calls fired once the delivery has succeeded.
func (g *gateSet) check(spec *gateSpec, hookID string, key []byte, fp uint64, now time.Time) (deliver bool, reason string) {
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

// decide applies spec to an existing entry. An entry written under another mode (the
// hook was edited) does not gate. A window shortened by an edit applies at once; a
// lengthened one from the next firing.
func (e *gateEntry) decide(spec *gateSpec, fp uint64, nowMs int64) (bool, string) {
	if e.mode != spec.mode {
		return true, ""
	}
	if spec.mode == gateChangeOnly {
		if e.fp != fp {
			return true, ""
		}
		return false, reasonUnchanged
	}
	if nowMs >= min(e.expires, e.fired+spec.windowMs) {
		return true, ""
	}
	return false, reasonSnooze
}

// fired records a successful delivery and returns the changelog record to write (the
// zero stateChange when there is nothing new: no gate, or on_change with the same
// fingerprint as recorded). When the set is full the entry fired longest ago is evicted;
// its tombstone comes out of the next expire.
func (g *gateSet) fired(spec *gateSpec, hookID string, key []byte, fp uint64, now time.Time) (change stateChange) {
	if spec.mode == gateNone {
		return stateChange{}
	}
	g.scratch = appendStateKey(g.scratch[:0], spec, hookID, key, fp)
	i, ok := g.index[string(g.scratch)]
	if ok {
		e := &g.entries[i]
		if spec.mode == gateChangeOnly && e.mode == gateChangeOnly && e.fp == fp {
			return stateChange{}
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
func (g *gateSet) insert(rk string) int32 {
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
func (g *gateSet) set(i int32, st gateState) {
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
func (g *gateSet) remove(i int32) {
	e := &g.entries[i]
	delete(g.index, e.rk)
	g.unlink(i)
	*e = gateEntry{next: g.free, prev: -1}
	g.free = i
}

// evictOldest removes the entry fired longest ago and queues its tombstone.
func (g *gateSet) evictOldest() {
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
func (g *gateSet) unlink(i int32) {
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
func (g *gateSet) linkTail(i int32) {
	e := &g.entries[i]
	e.prev, e.next = g.tail, -1
	if g.tail >= 0 {
		g.entries[g.tail].next = i
	} else {
		g.head = i
	}
	g.tail = i
}

// expire removes the entries whose window ended at or before now and returns the
// tombstones to write: theirs and those of entries evicted since the last call (unless
// the key has fired again since, which superseded the tombstone). Call it periodically,
// e.g. every few seconds; it returns nil when there is nothing to write.
func (g *gateSet) expire(now time.Time) []stateChange {
	var out []stateChange
	for _, rk := range g.evicted {
		if _, live := g.index[rk]; !live {
			out = append(out, stateChange{key: []byte(rk)})
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
		out = append(out, stateChange{key: []byte(e.rk)})
		g.remove(d.idx)
	}
	return out
}

// dropHook removes every entry of hookID (the hook was deleted) and returns their
// tombstones. It scans the whole set.
func (g *gateSet) dropHook(hookID string) []stateChange {
	var out []stateChange
	for i := range g.entries {
		rk := g.entries[i].rk
		if len(rk) > len(hookID) && rk[len(hookID)] == 0 && rk[:len(hookID)] == hookID {
			out = append(out, stateChange{key: []byte(rk)})
			g.remove(int32(i))
		}
	}
	return out
}

// pushDeadline adds d to the deadline heap.
func (g *gateSet) pushDeadline(d gateDeadline) {
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
func (g *gateSet) popDeadline() gateDeadline {
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

// restore applies one record of the state topic, read in offset order when a partition is
// assigned, before its first event: a tombstone deletes the entry, a value replaces it
// (the last record of a key wins), a value whose window ended by now deletes it. Nothing
// is written back, except tombstones for entries evicted because the set is full (they
// come out of the next expire). It fails on a record it cannot read, which the caller
// counts and skips.
func (g *gateSet) restore(recordKey, value []byte, now time.Time) error {
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
func (e *gateEntry) change(st gateState) stateChange {
	buf := make([]byte, 0, len(e.rk)+maxStateValueLen)
	buf = append(buf, e.rk...)
	n := len(buf)
	buf = encodeState(buf, st)
	return stateChange{key: buf[:n:n], value: buf[n:]}
}

// sharedGates is the gate state of hook-scoped hooks, shared by every lane of the
// processor under mu (hook scope is rare; key scope stays lock-free in the lanes).
//
// Lanes run concurrently, so a check alone would let every lane deliver the same burst
// before the first delivery completes. check therefore claims the entry it lets through:
// until fired or release, or at the latest until the claim's deadline (the window, and at
// least claimTTL), other lanes' events for the same entry are dropped — for on_change
// only those with the fingerprint in flight. The lane must call release when a delivery
// it was allowed does not succeed.
type sharedGates struct {
	mu     sync.Mutex
	set    *gateSet
	claims map[string]gateClaim // record key → delivery in flight; guarded by mu
	key    []byte               // scratch record key; guarded by mu
}

// gateClaim is a delivery in flight for a shared entry.
type gateClaim struct {
	fp    uint64
	until int64 // unix ms
}

// claimTTL is the shortest life of a claim whose lane never reports back.
const claimTTL = time.Minute

// newSharedGates returns an empty shared set of at most maxEntries entries.
func newSharedGates(maxEntries int) *sharedGates {
	return &sharedGates{set: newGateSet(maxEntries), claims: make(map[string]gateClaim)}
}

// check is gateSet.check under the lock, plus a claim on the entry when it delivers.
func (s *sharedGates) check(spec *gateSpec, hookID string, key []byte, fp uint64, now time.Time) (deliver bool, reason string) {
	if spec.mode == gateNone {
		return true, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok, why := s.set.check(spec, hookID, key, fp, now); !ok {
		return false, why
	}
	s.key = appendStateKey(s.key[:0], spec, hookID, key, fp)
	nowMs := now.UnixMilli()
	if c, ok := s.claims[string(s.key)]; ok && nowMs < c.until {
		switch {
		case spec.mode != gateChangeOnly:
			return false, reasonSnooze
		case c.fp == fp:
			return false, reasonUnchanged
		}
	}
	s.claims[string(s.key)] = gateClaim{fp: fp, until: nowMs + max(spec.windowMs, claimTTL.Milliseconds())}
	return true, ""
}

// fired is gateSet.fired under the lock; it ends the claim of check.
func (s *sharedGates) fired(spec *gateSpec, hookID string, key []byte, fp uint64, now time.Time) stateChange {
	if spec.mode == gateNone {
		return stateChange{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unclaimLocked(spec, hookID, key, fp)
	return s.set.fired(spec, hookID, key, fp, now)
}

// release ends the claim of check when the delivery did not succeed (dead-lettered,
// parked or abandoned), so that the next event may be delivered.
func (s *sharedGates) release(spec *gateSpec, hookID string, key []byte, fp uint64) {
	if spec.mode == gateNone {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unclaimLocked(spec, hookID, key, fp)
}

// unclaimLocked drops the claim on the entry if it is for fp (on_change may have handed
// the claim to another fingerprint meanwhile).
func (s *sharedGates) unclaimLocked(spec *gateSpec, hookID string, key []byte, fp uint64) {
	s.key = appendStateKey(s.key[:0], spec, hookID, key, fp)
	if c, ok := s.claims[string(s.key)]; ok && c.fp == fp {
		delete(s.claims, string(s.key))
	}
}

// expire is gateSet.expire under the lock; it also forgets claims past their deadline.
func (s *sharedGates) expire(now time.Time) []stateChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	nowMs := now.UnixMilli()
	for k, c := range s.claims {
		if nowMs >= c.until {
			delete(s.claims, k)
		}
	}
	return s.set.expire(now)
}

// restore is gateSet.restore under the lock. Records of one hook-scoped entry may come from
// several partitions; the last one applied wins.
func (s *sharedGates) restore(recordKey, value []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.restore(recordKey, value, now)
}

// dropHook is gateSet.dropHook under the lock.
func (s *sharedGates) dropHook(hookID string) []stateChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.dropHook(hookID)
}

// len returns the number of entries held.
func (s *sharedGates) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.len()
}

// The changelog.
//
// Record key:  hookID 0x00 scope [fp] 0x00 entityKey
//
//	scope      'k' (per entity key) or 'h' (per hook; entityKey is then empty)
//	fp         16 lower-case hex digits, only in mode both (each fingerprint has its window)
//
// Hook ids are UUIDs (no NUL byte); the entity key is last and taken as is, so any bytes
// are fine in it, NULs included, and a record key alone (a tombstone has no value) says
// where the entry goes: which lane (entityKeyOf) or the shared set (hook scope).
//
// Value (JSON, to be readable with any Kafka tool):
//
//	{"m":"snooze"|"change"|"both","t":<unix ms of the firing>,"w":<window ms>,"fp":"<16 hex>"}
//
// fp is a string because JSON tools lose integers beyond 2^53.

// Changelog decoding errors.
var (
	errBadStateKey   = errors.New("malformed gate state record key")
	errBadStateValue = errors.New("malformed gate state record value")
)

const (
	stateScopeKey  = 'k'
	stateScopeHook = 'h'
	// maxStateValueLen bounds encodeState's output.
	maxStateValueLen = len(`{"m":"snooze","t":-9223372036854775808,"w":-9223372036854775808,"fp":"0123456789abcdef"}`)
)

// gateState is the persisted part of an entry.
type gateState struct {
	mode   gateMode
	fired  int64 // unix ms
	window int64 // ms; 0 for on_change alone
	fp     uint64
}

// stateKey is a parsed record key; the byte slices point into it.
type stateKey struct {
	hookID    []byte
	hookScope bool
	hasFP     bool
	fp        uint64
	entityKey []byte
}

// appendStateKey appends the record key of the entry for (hook, key[, fp]) under spec.
func appendStateKey(dst []byte, spec *gateSpec, hookID string, key []byte, fp uint64) []byte {
	dst = append(dst, hookID...)
	dst = append(dst, 0)
	if spec.scope == hooks.ScopeHook {
		dst = append(dst, stateScopeHook)
	} else {
		dst = append(dst, stateScopeKey)
	}
	if spec.mode == gateBoth {
		dst = appendHex64(dst, fp)
	}
	dst = append(dst, 0)
	if spec.scope != hooks.ScopeHook {
		dst = append(dst, key...)
	}
	return dst
}

// parseStateKey parses a record key written by appendStateKey.
func parseStateKey(rk []byte) (k stateKey, ok bool) {
	i := 0
	for i < len(rk) && rk[i] != 0 {
		i++
	}
	if i == 0 || len(rk) < i+3 {
		return k, false
	}
	k.hookID = rk[:i]
	switch rk[i+1] {
	case stateScopeKey:
	case stateScopeHook:
		k.hookScope = true
	default:
		return k, false
	}
	rest := rk[i+2:]
	if rest[0] != 0 {
		if len(rest) < 17 || rest[16] != 0 {
			return k, false
		}
		if k.fp, ok = parseHex64(rest[:16]); !ok {
			return k, false
		}
		k.hasFP = true
		rest = rest[16:]
	}
	k.entityKey = rest[1:]
	if k.hookScope && len(k.entityKey) > 0 {
		return k, false
	}
	return k, true
}

// entityKeyOf returns the entity key of a state record key, so that the partition worker
// can hand a restored record to the lane owning that key; nil when the record key is
// malformed. Hook-scoped records (isHookScoped) go to the processor's sharedGates instead.
func entityKeyOf(recordKey []byte) []byte {
	k, ok := parseStateKey(recordKey)
	if !ok {
		return nil
	}
	if k.entityKey == nil {
		return []byte{}
	}
	return k.entityKey
}

// isHookScoped reports whether a state record key belongs to a hook-scoped entry.
func isHookScoped(recordKey []byte) bool {
	k, ok := parseStateKey(recordKey)
	return ok && k.hookScope
}

// encodeState appends the JSON value of st to dst.
func encodeState(dst []byte, st gateState) []byte {
	dst = append(dst, `{"m":"`...)
	dst = append(dst, st.mode.String()...)
	dst = append(dst, `","t":`...)
	dst = strconv.AppendInt(dst, st.fired, 10)
	dst = append(dst, `,"w":`...)
	dst = strconv.AppendInt(dst, st.window, 10)
	dst = append(dst, `,"fp":"`...)
	dst = appendHex64(dst, st.fp)
	return append(dst, `"}`...)
}

// stateParsers parse changelog values during restore.
var stateParsers fastjson.ParserPool

// decodeState parses a value written by encodeState.
func decodeState(value []byte) (gateState, error) {
	p := stateParsers.Get()
	defer stateParsers.Put(p)
	v, err := p.ParseBytes(value)
	if err != nil {
		return gateState{}, errBadStateValue
	}
	var st gateState
	var ok bool
	if st.mode, ok = parseGateMode(v.GetStringBytes("m")); !ok {
		return gateState{}, errBadStateValue
	}
	t, w := v.Get("t"), v.Get("w")
	if t == nil || w == nil {
		return gateState{}, errBadStateValue
	}
	if st.fired, err = t.Int64(); err != nil {
		return gateState{}, errBadStateValue
	}
	if st.window, err = w.Int64(); err != nil || st.window < 0 || (st.window == 0) != (st.mode == gateChangeOnly) {
		return gateState{}, errBadStateValue
	}
	if st.fp, ok = parseHex64(v.GetStringBytes("fp")); !ok {
		return gateState{}, errBadStateValue
	}
	return st, nil
}

// hexDigits are the digits of appendHex64.
const hexDigits = "0123456789abcdef"

// appendHex64 appends x as 16 lower-case hex digits.
func appendHex64(dst []byte, x uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(x>>uint(shift))&0xf])
	}
	return dst
}

// parseHex64 parses exactly 16 lower-case hex digits.
func parseHex64(b []byte) (uint64, bool) {
	if len(b) != 16 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			x = x<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			x = x<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return x, true
}
