package gates

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// at returns t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// testSpec is the gate spec of a hook with the given snooze, on_change and snooze_scope.
func testSpec(snooze int64, onChange bool, scope string) Spec {
	h := &hooks.Hook{ID: "h-1", SnoozeScope: scope}
	if snooze > 0 {
		h.Snooze = &snooze
	}
	if onChange {
		h.OnChange = &onChange
	}
	return NewSpec(h, nil)
}

const (
	fpA = uint64(0xaaaa)
	fpB = uint64(0xbbbb)
)

// step is one event through the gates: deliver means check said deliver (and the test
// then reports the delivery as successful with fired).
type step struct {
	at      float64
	key     string
	fp      uint64
	deliver bool
	reason  string
}

// gater is what Set and Shared have in common.
type gater interface {
	Check(spec *Spec, hookID string, key []byte, fp uint64, now time.Time) (bool, string)
	Fired(spec *Spec, hookID string, key []byte, fp uint64, now time.Time) Change
}

// run plays steps against g, failing on the first wrong decision, and returns the
// changelog records fired produced.
func run(t *testing.T, g gater, spec *Spec, hookID string, steps []step) []Change {
	t.Helper()
	var changes []Change
	for i, s := range steps {
		deliver, reason := g.Check(spec, hookID, []byte(s.key), s.fp, at(s.at))
		if deliver != s.deliver || reason != s.reason {
			t.Fatalf("step %d (t=%v key=%q fp=%x): deliver=%v reason=%q, want %v %q",
				i, s.at, s.key, s.fp, deliver, reason, s.deliver, s.reason)
		}
		if deliver {
			if c := g.Fired(spec, hookID, []byte(s.key), s.fp, at(s.at)); c.Key != nil {
				changes = append(changes, c)
			}
		}
	}
	return changes
}

// kongSequences are Kong's test sequences (KONG_REFERENCE.md), for one key.
func kongSequences(key string) map[string]struct {
	spec  Spec
	steps []step
} {
	return map[string]struct {
		spec  Spec
		steps []step
	}{
		"snooze 60": {testSpec(60, false, ""), []step{
			{0, key, 0, true, ""},
			{0, key, 0, false, ReasonSnooze},
			{50, key, 0, false, ReasonSnooze},
			{70, key, 0, true, ""},
			{100, key, 0, false, ReasonSnooze},
			{131, key, 0, true, ""},
		}},
		"on_change": {testSpec(0, true, ""), []step{
			{0, key, fpA, true, ""},
			{1, key, fpA, false, ReasonUnchanged},
			{2, key, fpB, true, ""},
			{3, key, fpB, false, ReasonUnchanged},
			{4, key, fpA, true, ""},
		}},
		"on_change + snooze 60": {testSpec(60, true, ""), []step{
			{0, key, fpA, true, ""},
			{10, key, fpA, false, ReasonSnooze},
			{20, key, fpB, true, ""},
			{30, key, fpB, false, ReasonSnooze},
			{61, key, fpA, true, ""},
		}},
	}
}

func TestGatesKongSequences(t *testing.T) {
	for name, c := range kongSequences("upstream-1") {
		t.Run(name, func(t *testing.T) {
			run(t, NewSet(0), &c.spec, "h-1", c.steps)
		})
	}
}

func TestGatesWindowBoundary(t *testing.T) {
	for _, onChange := range []bool{false, true} {
		spec := testSpec(60, onChange, "")
		run(t, NewSet(0), &spec, "h-1", []step{
			{0, "k", fpA, true, ""},
			{59.999, "k", fpA, false, ReasonSnooze}, // now < fired+window: closed
			{60, "k", fpA, true, ""},                // now >= fired+window: open
			{60, "k", fpA, false, ReasonSnooze},
		})
	}
}

func TestGatesNoGate(t *testing.T) {
	spec := testSpec(0, false, "")
	g := NewSet(0)
	changes := run(t, g, &spec, "h-1", []step{{0, "k", 0, true, ""}, {0, "k", 0, true, ""}})
	if len(changes) != 0 || g.Len() != 0 {
		t.Fatalf("no gate kept state: %d changes, %d entries", len(changes), g.Len())
	}
}

func TestGatesEntitiesIndependent(t *testing.T) {
	// Kong's sequences on two keys of one hook, interleaved: each key behaves as if alone.
	a, b := kongSequences("consumer-a"), kongSequences("consumer-b")
	for name := range a {
		t.Run(name, func(t *testing.T) {
			spec := a[name].spec
			var steps []step
			for i := range a[name].steps {
				steps = append(steps, a[name].steps[i], b[name].steps[i])
			}
			g := NewSet(0)
			run(t, g, &spec, "h-1", steps)
			if g.Len() != 2 && spec.mode != gateBoth {
				t.Fatalf("%d entries, want 2", g.Len())
			}
		})
	}
}

func TestGatesHooksIndependent(t *testing.T) {
	spec := testSpec(60, false, "")
	g := NewSet(0)
	run(t, g, &spec, "h-1", []step{{0, "k", 0, true, ""}})
	run(t, g, &spec, "h-2", []step{{1, "k", 0, true, ""}, {2, "k", 0, false, ReasonSnooze}})
	run(t, g, &spec, "h-1", []step{{3, "k", 0, false, ReasonSnooze}})
}

func TestGatesHookScopeSharesWindow(t *testing.T) {
	for _, g := range []gater{NewSet(0), NewShared(0)} {
		t.Run(fmt.Sprintf("%T", g), func(t *testing.T) {
			snooze := testSpec(60, false, hooks.ScopeHook)
			run(t, g, &snooze, "h-1", []step{
				{0, "consumer-a", 0, true, ""},
				{10, "consumer-b", 0, false, ReasonSnooze},
				{59, "consumer-c", 0, false, ReasonSnooze},
				{60, "consumer-b", 0, true, ""},
			})
			change := testSpec(0, true, hooks.ScopeHook)
			run(t, g, &change, "h-2", []step{
				{0, "consumer-a", fpA, true, ""},
				{1, "consumer-b", fpA, false, ReasonUnchanged},
				{2, "consumer-b", fpB, true, ""},
				{3, "consumer-a", fpB, false, ReasonUnchanged},
			})
		})
	}
}

func TestSharedGatesClaimInFlight(t *testing.T) {
	s := NewShared(0)
	snooze := testSpec(60, false, hooks.ScopeHook)
	key := func(k string) []byte { return []byte(k) }

	// Two lanes see a burst at once: only the first delivers.
	if ok, _ := s.Check(&snooze, "h", key("a"), 0, at(0)); !ok {
		t.Fatal("first event dropped")
	}
	if ok, why := s.Check(&snooze, "h", key("b"), 0, at(0.1)); ok || why != ReasonSnooze {
		t.Fatalf("second lane delivered while the first is in flight: %v %q", ok, why)
	}
	// The first delivery fails: the window does not open, the next event goes.
	s.Release(&snooze, "h", key("a"), 0)
	if ok, _ := s.Check(&snooze, "h", key("c"), 0, at(1)); !ok {
		t.Fatal("event after a released claim dropped")
	}
	s.Fired(&snooze, "h", key("c"), 0, at(1))
	if ok, _ := s.Check(&snooze, "h", key("a"), 0, at(2)); ok {
		t.Fatal("event inside the window delivered")
	}

	// A claim whose lane never reports back lapses.
	change := testSpec(0, true, hooks.ScopeHook)
	if ok, _ := s.Check(&change, "h2", key("a"), fpA, at(0)); !ok {
		t.Fatal("first event dropped")
	}
	if ok, why := s.Check(&change, "h2", key("b"), fpA, at(1)); ok || why != ReasonUnchanged {
		t.Fatalf("same fingerprint in flight delivered: %v %q", ok, why)
	}
	if ok, _ := s.Check(&change, "h2", key("b"), fpB, at(1)); !ok {
		t.Fatal("another fingerprint dropped while one is in flight")
	}
	if ok, _ := s.Check(&change, "h2", key("c"), fpB, at(2)); ok {
		t.Fatal("B in flight twice")
	}
	s.Expire(at(2).Add(claimTTL))
	if ok, _ := s.Check(&change, "h2", key("c"), fpB, at(2).Add(claimTTL)); !ok {
		t.Fatal("lapsed claim still drops")
	}
}

func TestSharedGatesConcurrentLanes(t *testing.T) {
	s := NewShared(0)
	spec := testSpec(3600, false, hooks.ScopeHook)
	var delivered atomic.Int64
	var wg sync.WaitGroup
	for lane := range 16 {
		wg.Go(func() {
			key := []byte("key-" + strconv.Itoa(lane))
			for i := range 200 {
				now := at(float64(i) / 100)
				if ok, _ := s.Check(&spec, "h", key, 0, now); ok {
					delivered.Add(1)
					s.Fired(&spec, "h", key, 0, now)
				}
				s.Expire(now)
			}
		})
	}
	wg.Wait()
	if n := delivered.Load(); n != 1 {
		t.Fatalf("%d deliveries in one window across 16 lanes, want 1", n)
	}
}

func TestGatesModeChangeIgnoresOldEntries(t *testing.T) {
	g := NewSet(0)
	change := testSpec(0, true, "")
	run(t, g, &change, "h-1", []step{{0, "k", fpA, true, ""}, {1, "k", fpA, false, ReasonUnchanged}})
	// The hook is edited to snooze alone: the on_change entry (no expiry) must not gate.
	snooze := testSpec(60, false, "")
	run(t, g, &snooze, "h-1", []step{{2, "k", fpA, true, ""}, {3, "k", fpA, false, ReasonSnooze}})
	// Shortened window applies at once.
	short := testSpec(10, false, "")
	run(t, g, &short, "h-1", []step{{11, "k", 0, false, ReasonSnooze}, {12, "k", 0, true, ""}})
}

func TestGatesFiredReturnsChangelog(t *testing.T) {
	g := NewSet(0)
	both := testSpec(60, true, "")
	c := g.Fired(&both, "h-1", []byte("k\x00ey"), 0xdeadbeef, at(0))
	if want := "h-1\x00k00000000deadbeef\x00k\x00ey"; string(c.Key) != want {
		t.Fatalf("key %q, want %q", c.Key, want)
	}
	want := fmt.Sprintf(`{"m":"both","t":%d,"w":60000,"fp":"00000000deadbeef"}`, t0.UnixMilli())
	if string(c.Value) != want {
		t.Fatalf("value %s, want %s", c.Value, want)
	}
	if len(c.Value) > maxStateValueLen {
		t.Fatal("value longer than maxStateValueLen")
	}
	// on_change firing again with the same fingerprint has nothing to write.
	change := testSpec(0, true, "")
	if c := g.Fired(&change, "h-1", []byte("k"), fpA, at(0)); c.Key == nil {
		t.Fatal("first firing wrote nothing")
	}
	if c := g.Fired(&change, "h-1", []byte("k"), fpA, at(1)); c.Key != nil {
		t.Fatalf("unchanged firing wrote %q", c.Key)
	}
	// No gate, nothing to write.
	none := testSpec(0, false, "")
	if c := g.Fired(&none, "h-1", []byte("k"), 0, at(0)); c.Key != nil {
		t.Fatal("ungated hook wrote state")
	}
}

func TestStateKeys(t *testing.T) {
	cases := []struct {
		spec Spec
		key  string
		fp   uint64
		want string
	}{
		{testSpec(60, false, ""), "consumer-1", 0, "h\x00k\x00consumer-1"},
		{testSpec(0, true, ""), "consumer-1", fpA, "h\x00k\x00consumer-1"},
		{testSpec(60, true, ""), "consumer-1", fpA, "h\x00k000000000000aaaa\x00consumer-1"},
		{testSpec(60, false, hooks.ScopeHook), "consumer-1", 0, "h\x00h\x00"},
		{testSpec(60, true, hooks.ScopeHook), "consumer-1", fpB, "h\x00h000000000000bbbb\x00"},
		{testSpec(60, false, ""), "", 0, "h\x00k\x00"},
		// Entity keys may hold anything, including what looks like a separator and a fp.
		{testSpec(60, false, ""), "a\x000123456789abcdef\x00b", 0, "h\x00k\x00a\x000123456789abcdef\x00b"},
		{testSpec(60, true, ""), "\x00\x00", 1, "h\x00k0000000000000001\x00\x00\x00"},
	}
	for _, c := range cases {
		rk := appendStateKey(nil, &c.spec, "h", []byte(c.key), c.fp)
		if string(rk) != c.want {
			t.Errorf("appendStateKey(%v, %q) = %q, want %q", c.spec.mode, c.key, rk, c.want)
			continue
		}
		k, ok := parseStateKey(rk)
		if !ok {
			t.Errorf("parseStateKey(%q) failed", rk)
			continue
		}
		wantEntity := c.key
		if c.spec.HookScoped() {
			wantEntity = ""
		}
		if string(k.hookID) != "h" || k.hookScope != c.spec.HookScoped() || k.hasFP != (c.spec.mode == gateBoth) ||
			(k.hasFP && k.fp != c.fp) || string(k.entityKey) != wantEntity {
			t.Errorf("parseStateKey(%q) = %+v", rk, k)
		}
		if got := EntityKeyOf(rk); string(got) != wantEntity || got == nil {
			t.Errorf("EntityKeyOf(%q) = %q, want %q", rk, got, wantEntity)
		}
		if IsHookScoped(rk) != c.spec.HookScoped() {
			t.Errorf("IsHookScoped(%q) wrong", rk)
		}
	}
	for _, bad := range []string{"", "h", "\x00k\x00x", "h\x00", "h\x00k", "h\x00x\x00k", "h\x00k0123\x00k",
		"h\x00kABCDEF0123456789\x00k", "h\x00h\x00key"} {
		if _, ok := parseStateKey([]byte(bad)); ok {
			t.Errorf("parseStateKey(%q) accepted", bad)
		}
		if EntityKeyOf([]byte(bad)) != nil {
			t.Errorf("EntityKeyOf(%q) not nil", bad)
		}
	}
}

func TestStateValues(t *testing.T) {
	for _, st := range []gateState{
		{mode: gateSnoozeOnly, fired: t0.UnixMilli(), window: 60000},
		{mode: gateChangeOnly, fired: -1, fp: 1<<64 - 1},
		{mode: gateBoth, fired: 1<<63 - 1, window: 1, fp: 42},
	} {
		b := encodeState(nil, st)
		got, err := decodeState(b)
		if err != nil || got != st {
			t.Errorf("decodeState(%s) = %+v, %v; want %+v", b, got, err, st)
		}
	}
	for _, bad := range []string{``, `{}`, `[]`, `{"m":"none","t":1,"w":1,"fp":"0000000000000000"}`,
		`{"m":"snooze","t":1,"w":0,"fp":"0000000000000000"}`, `{"m":"change","t":1,"w":5,"fp":"0000000000000000"}`,
		`{"m":"snooze","t":"1","w":5,"fp":"0000000000000000"}`, `{"m":"snooze","t":1,"w":-5,"fp":"0000000000000000"}`,
		`{"m":"snooze","t":1,"w":5,"fp":42}`, `{"m":"snooze","t":1,"w":5,"fp":"00"}`} {
		if _, err := decodeState([]byte(bad)); err == nil {
			t.Errorf("decodeState(%s) accepted", bad)
		}
	}
}

// TestGatesRestoreReproducesDecisions plays events through one set, writes everything it
// emits into a simulated compacted topic, restores a fresh set from it and checks that
// both decide alike from then on.
func TestGatesRestoreReproducesDecisions(t *testing.T) {
	specs := map[string]Spec{
		"snooze": testSpec(60, false, ""),
		"change": testSpec(0, true, ""),
		"both":   testSpec(30, true, ""),
		"hook":   testSpec(45, false, hooks.ScopeHook),
	}
	fps := []uint64{fpA, fpB, 7}
	keys := []string{"k1", "k2", "k\x003", ""}
	var log []Change // the state partition, in offset order
	orig := NewSet(0)
	for i := range 600 {
		now := at(float64(i) / 4)
		for hookID, spec := range specs {
			key, fp := []byte(keys[i%len(keys)]), fps[(i/3)%len(fps)]
			if ok, _ := orig.Check(&spec, hookID, key, fp, now); ok && i%11 != 0 { // every 11th delivery fails
				if c := orig.Fired(&spec, hookID, key, fp, now); c.Key != nil {
					log = append(log, c)
				}
			}
		}
		if i%20 == 0 {
			log = append(log, orig.Expire(now)...)
		}
	}
	now := at(150)
	restored := NewSet(0)
	for _, r := range log {
		if err := restored.Restore(r.Key, r.Value, now); err != nil {
			t.Fatalf("restore(%q, %s): %v", r.Key, r.Value, err)
		}
	}
	orig.Expire(now)
	if restored.Len() != orig.Len() {
		t.Fatalf("restored %d entries, original holds %d", restored.Len(), orig.Len())
	}
	for i := range 400 {
		now := at(150 + float64(i)/2)
		for hookID, spec := range specs {
			for _, k := range keys {
				for _, fp := range fps {
					ok1, r1 := orig.Check(&spec, hookID, []byte(k), fp, now)
					ok2, r2 := restored.Check(&spec, hookID, []byte(k), fp, now)
					if ok1 != ok2 || r1 != r2 {
						t.Fatalf("t=%v hook=%s key=%q fp=%x: original %v %q, restored %v %q",
							now.Sub(t0), hookID, k, fp, ok1, r1, ok2, r2)
					}
					if ok1 && (i+len(k))%3 == 0 {
						orig.Fired(&spec, hookID, []byte(k), fp, now)
						restored.Fired(&spec, hookID, []byte(k), fp, now)
					}
				}
			}
		}
	}
}

func TestGatesRestore(t *testing.T) {
	snooze := testSpec(60, false, "")
	g := NewSet(0)
	c := g.Fired(&snooze, "h", []byte("k"), 0, at(0))

	r := NewSet(0)
	if err := r.Restore(c.Key, c.Value, at(59)); err != nil || r.Len() != 1 {
		t.Fatalf("restore in window: %v, %d entries", err, r.Len())
	}
	if ok, _ := r.Check(&snooze, "h", []byte("k"), 0, at(59)); ok {
		t.Fatal("restored window not applied")
	}
	// A tombstone deletes.
	if err := r.Restore(c.Key, nil, at(59)); err != nil || r.Len() != 0 {
		t.Fatalf("tombstone: %v, %d entries", err, r.Len())
	}
	// An expired record is skipped, and deletes what it supersedes.
	r.Restore(c.Key, c.Value, at(1))
	if err := r.Restore(c.Key, c.Value, at(60)); err != nil || r.Len() != 0 {
		t.Fatalf("expired record: %v, %d entries", err, r.Len())
	}
	// Malformed records are reported and change nothing.
	for _, bad := range []Change{
		{Key: []byte("nonsense"), Value: c.Value},
		{Key: c.Key, Value: []byte(`{"m":"snooze"}`)},
		{Key: c.Key, Value: encodeState(nil, gateState{mode: gateBoth, fired: t0.UnixMilli(), window: 1000, fp: 1})},
		{Key: []byte("h\x00k0000000000000002\x00k"), Value: encodeState(nil, gateState{mode: gateBoth, fired: t0.UnixMilli(), window: 1000, fp: 1})},
	} {
		if err := r.Restore(bad.Key, bad.Value, at(1)); err == nil {
			t.Errorf("restore(%q, %s) accepted", bad.Key, bad.Value)
		}
	}
	if r.Len() != 0 {
		t.Fatalf("%d entries after malformed records", r.Len())
	}
}

func TestGatesExpireTombstones(t *testing.T) {
	g := NewSet(0)
	snooze, both, change := testSpec(60, false, ""), testSpec(30, true, ""), testSpec(0, true, "")
	g.Fired(&snooze, "h1", []byte("k"), 0, at(0))
	g.Fired(&both, "h2", []byte("k"), fpA, at(0))
	g.Fired(&both, "h2", []byte("k"), fpB, at(10))
	g.Fired(&change, "h3", []byte("k"), fpA, at(0))
	g.Fired(&snooze, "h1", []byte("j"), 0, at(20))
	if g.Len() != 5 {
		t.Fatalf("%d entries, want 5", g.Len())
	}
	tomb := func(cs []Change) (keys []string) {
		for _, c := range cs {
			if c.Value != nil {
				t.Fatalf("expire returned a value for %q", c.Key)
			}
			keys = append(keys, string(c.Key))
		}
		return keys
	}
	if got := g.Expire(at(29.999)); got != nil {
		t.Fatalf("expire before any deadline: %q", tomb(got))
	}
	if got := tomb(g.Expire(at(30))); len(got) != 1 || got[0] != "h2\x00k000000000000aaaa\x00k" {
		t.Fatalf("expire(30) = %q", got)
	}
	if got := tomb(g.Expire(at(60))); len(got) != 2 || got[0] != "h2\x00k000000000000bbbb\x00k" || got[1] != "h1\x00k\x00k" {
		t.Fatalf("expire(60) = %q", got)
	}
	if g.Len() != 2 {
		t.Fatalf("%d entries, want 2 (on_change and h1/j)", g.Len())
	}
	// A refiring moves the deadline: the old one is stale.
	g.Fired(&snooze, "h1", []byte("j"), 0, at(80))
	if got := g.Expire(at(99)); got != nil {
		t.Fatalf("stale deadline expired the entry: %q", tomb(got))
	}
	if got := tomb(g.Expire(at(140))); len(got) != 1 || got[0] != "h1\x00k\x00j" {
		t.Fatalf("expire(140) = %q", got)
	}
	// on_change entries never expire by time.
	if got := g.Expire(at(1e9)); got != nil || g.Len() != 1 {
		t.Fatalf("on_change entry expired: %q, %d entries", tomb(got), g.Len())
	}
	// Freed slots are reused.
	n := len(g.entries)
	for i := range 3 {
		g.Fired(&snooze, "h1", []byte{byte(i)}, 0, at(1e9))
	}
	if len(g.entries) != n {
		t.Fatalf("slab grew to %d from %d though it had free slots", len(g.entries), n)
	}
}

func TestGatesCapEvictsOldestFired(t *testing.T) {
	g := NewSet(3)
	change := testSpec(0, true, "")
	for i, k := range []string{"a", "b", "c"} {
		g.Fired(&change, "h", []byte(k), fpA, at(float64(i)))
	}
	g.Fired(&change, "h", []byte("a"), fpB, at(3)) // a is now the most recent
	g.Fired(&change, "h", []byte("d"), fpA, at(4)) // evicts b
	if g.Len() != 3 || g.evictions != 1 {
		t.Fatalf("%d entries, %d evictions; want 3, 1", g.Len(), g.evictions)
	}
	if ok, _ := g.Check(&change, "h", []byte("b"), fpA, at(5)); !ok {
		t.Fatal("b still gated after eviction")
	}
	for _, k := range []string{"a", "c", "d"} {
		fp := fpA
		if k == "a" {
			fp = fpB
		}
		if ok, _ := g.Check(&change, "h", []byte(k), fp, at(5)); ok {
			t.Fatalf("%s evicted instead of b", k)
		}
	}
	g.Fired(&change, "h", []byte("e"), fpA, at(6)) // evicts c
	g.Fired(&change, "h", []byte("c"), fpA, at(7)) // c is back (evicts a): no tombstone for c
	got := g.Expire(at(8))
	var keys []string
	for _, c := range got {
		keys = append(keys, string(c.Key))
	}
	if len(keys) != 2 || keys[0] != "h\x00k\x00b" || keys[1] != "h\x00k\x00a" {
		t.Fatalf("eviction tombstones %q, want b and a", keys)
	}
	if g.Expire(at(9)) != nil {
		t.Fatal("tombstones returned twice")
	}
}

func TestGatesDropHook(t *testing.T) {
	g := NewSet(0)
	snooze := testSpec(60, false, "")
	g.Fired(&snooze, "h", []byte("a"), 0, at(0))
	g.Fired(&snooze, "h", []byte("b"), 0, at(0))
	g.Fired(&snooze, "hh", []byte("a"), 0, at(0))
	if got := g.DropHook("h"); len(got) != 2 || g.Len() != 1 {
		t.Fatalf("dropHook: %d tombstones, %d left", len(got), g.Len())
	}
	if got := g.Expire(at(60)); len(got) != 1 || string(got[0].Key) != "hh\x00k\x00a" {
		t.Fatalf("expire after dropHook: %v", got)
	}
}

func TestGatesAllocs(t *testing.T) {
	g := NewSet(0)
	snooze, change := testSpec(60, false, ""), testSpec(0, true, "")
	key := []byte("consumer-1")
	g.Fired(&snooze, "h", key, 0, at(0))
	g.Fired(&change, "h", key, fpA, at(0))
	if n := testing.AllocsPerRun(100, func() {
		g.Check(&snooze, "h", key, 0, at(1))
		g.Check(&change, "h", key, fpA, at(1))
		g.Check(&change, "h", []byte("other"), fpA, at(1))
	}); n != 0 {
		t.Fatalf("check allocates %v times", n)
	}
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		i++
		g.Fired(&change, "h", key, uint64(i), at(1)) // existing entry: the record is the only allocation
	}); n != 1 {
		t.Fatalf("fired on an existing entry allocates %v times, want 1", n)
	}
}

func BenchmarkGateCheck(b *testing.B) {
	const nkeys = 10_000
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "consumer-%08d", i)
	}
	hookID := "9d5e8a52-4a4f-4b7e-9a0e-3f3b7f0f0c11"
	for _, c := range []struct {
		name string
		spec Spec
		fp   func(i int) uint64
	}{
		// snooze: one firing per key per window, the rest are drops (the common case).
		{"snooze", testSpec(60, false, ""), func(int) uint64 { return 0 }},
		// on_change with a new fingerprint every time: every event fires and writes a record.
		{"on_change-firing", testSpec(0, true, ""), func(i int) uint64 { return uint64(i) }},
		// on_change, unchanged: every event is a drop.
		{"on_change-unchanged", testSpec(0, true, ""), func(int) uint64 { return fpA }},
		// both: two fingerprints alternating per key.
		{"both", testSpec(60, true, ""), func(i int) uint64 { return uint64(i / nkeys % 2) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := NewSet(0)
			now := t0
			var fired int
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%nkeys]
				fp := c.fp(i)
				if ok, _ := g.Check(&c.spec, hookID, k, fp, now); ok {
					g.Fired(&c.spec, hookID, k, fp, now)
					fired++
				}
				i++
				if i%nkeys == 0 {
					now = now.Add(time.Second)
					g.Expire(now)
				}
			}
			b.ReportMetric(float64(fired)/float64(i), "fired/op")
		})
	}
}

func BenchmarkGateMemory1M(b *testing.B) {
	const n = 1_000_000
	hookID := "9d5e8a52-4a4f-4b7e-9a0e-3f3b7f0f0c11"
	spec := testSpec(3600, false, "")
	// Entity keys like real ones: 36-byte UUID-shaped strings.
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "%08x-0000-4000-8000-%012x", i, i)
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g := NewSet(0)
		for i, k := range keys {
			g.Fired(&spec, hookID, k, 0, t0.Add(time.Duration(i)*time.Microsecond))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if g.Len() != n {
			b.Fatalf("%d entries", g.Len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/entry")
		runtime.KeepAlive(g)
	}
}

// TestSharedRestoreKeepsTheLatestFiring: restoring a partition whose record of a
// hook-scoped entry is older than what the set holds (a live firing, or another
// partition's record) keeps the newer state, and a tombstone removes nothing held.
func TestSharedRestoreKeepsTheLatestFiring(t *testing.T) {
	spec := Spec{mode: gateChangeOnly, scope: hooks.ScopeHook}
	t0 := time.UnixMilli(1_700_000_000_000)
	older := NewSet(0).Fired(&spec, "h", nil, 1, t0)
	s := NewShared(0)
	s.Fired(&spec, "h", nil, 2, t0.Add(time.Second))
	if err := s.Restore(older.Key, older.Value, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, why := s.Check(&spec, "h", nil, 2, t0.Add(3*time.Second)); ok {
		t.Fatalf("fingerprint 2 fires again after an older record was restored (%s): the restore went backwards", why)
	}
	if err := s.Restore(older.Key, nil, t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.len() != 1 {
		t.Fatalf("a tombstone removed the entry held")
	}
}
