package processor_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// fakeClock is the processor's injected clock: tests move it between events.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time { return time.Unix(0, c.ns.Load()) }

func (c *fakeClock) set(base time.Time, sec float64) {
	c.ns.Store(base.Add(time.Duration(sec * float64(time.Second))).UnixNano())
}

func (c *fakeClock) opt() func(*processor.Config) {
	return func(cfg *processor.Config) { cfg.Now = c.now }
}

// gateRig runs one instance on a one-partition broker with a fake clock.
type gateRig struct {
	t     *testing.T
	addrs []string
	rc    *testkit.Receiver
	clock *fakeClock
	base  time.Time
	prod  *kgo.Client
	sent  int
}

func newGateRig(t *testing.T) *gateRig {
	emb := testkit.Broker(t, 1)
	c := newFakeClock()
	return &gateRig{t: t, addrs: emb.Addrs(), rc: testkit.NewReceiver(t), clock: c, base: c.now(), prod: producer(t, emb.Addrs())}
}

// step sends one event at base+sec and reports whether it was delivered. It waits until
// the event is committed, i.e. fully processed, before it answers.
func (g *gateRig) step(sec float64, key, data string) bool {
	g.t.Helper()
	g.clock.set(g.base, sec)
	before := len(g.rc.Requests())
	produce(g.t, g.prod, &kgo.Record{Key: []byte(key), Value: []byte(`{"source":"balancer","event":"health","data":` + data + `}`)})
	g.sent++
	testkit.Eventually(g.t, 20*time.Second, fmt.Sprintf("event %d processed", g.sent), func() bool {
		return committed(g.t, g.addrs) == int64(g.sent)
	})
	return len(g.rc.Requests()) > before
}

func (g *gateRig) hook(in *instance, gates string) {
	in.addHook(g.t, `{"source":"balancer","event":"health","handler":"webhook",`+gates+`,"config":{"url":"`+g.rc.URL+`"}}`)
}

type gateStep struct {
	at   float64
	key  string
	data string
	want bool
}

func (g *gateRig) run(steps []gateStep) {
	g.t.Helper()
	for i, s := range steps {
		if got := g.step(s.at, s.key, s.data); got != s.want {
			g.t.Fatalf("step %d (t=%v key=%s data=%s): delivered=%v, want %v", i, s.at, s.key, s.data, got, s.want)
		}
	}
}

const dataA, dataB = `{"ip":"10.0.0.7","health":"unhealthy"}`, `{"ip":"10.0.0.7","health":"healthy"}`

func TestGatesFollowKongSequences(t *testing.T) {
	tests := []struct {
		name  string
		gates string
		steps []gateStep
	}{
		{"snooze 60", `"snooze":60`, []gateStep{
			{0, "u-1", dataA, true}, {0, "u-1", dataA, false}, {50, "u-1", dataB, false},
			{70, "u-1", dataA, true}, {100, "u-1", dataA, false}, {131, "u-1", dataA, true},
		}},
		{"on_change", `"on_change":true`, []gateStep{
			{0, "u-1", dataA, true}, {1, "u-1", dataA, false}, {2, "u-1", dataB, true},
			{3, "u-1", dataB, false}, {4, "u-1", dataA, true},
		}},
		{"both 60", `"on_change":true,"snooze":60`, []gateStep{
			{0, "u-1", dataA, true}, {10, "u-1", dataA, false}, {20, "u-1", dataB, true},
			{30, "u-1", dataB, false}, {61, "u-1", dataA, true},
		}},
		{"entities are gated independently", `"snooze":60`, []gateStep{
			{0, "u-1", dataA, true}, {1, "u-2", dataA, true}, {2, "u-1", dataA, false}, {3, "u-2", dataA, false},
		}},
		{"hook scope is Kong's per-hook window", `"snooze":60,"snooze_scope":"hook"`, []gateStep{
			{0, "u-1", dataA, true}, {1, "u-2", dataA, false}, {61, "u-2", dataA, true},
		}},
		{"numbers and booleans count for on_change", `"on_change":true`, []gateStep{
			{0, "u-1", `{"port":8000,"up":true}`, true}, {1, "u-1", `{"port":8001,"up":true}`, true},
			{2, "u-1", `{"port":8001,"up":false}`, true}, {3, "u-1", `{"up":false,"port":8001}`, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateRig(t)
			g.hook(startInstance(t, g.addrs, g.clock.opt()), tt.gates)
			g.run(tt.steps)
		})
	}
}

// TestParkedDeliveryOpensItsSnoozeWindow: an event that fires while its receiver is
// down is parked, not dropped, and opens its window as a delivered one does: the next
// event in the window is dropped, and once the receiver is back the first one arrives,
// alone.
func TestParkedDeliveryOpensItsSnoozeWindow(t *testing.T) {
	for _, scope := range []string{"key", "hook"} {
		t.Run(scope, func(t *testing.T) {
			g := newGateRig(t)
			var up atomic.Bool
			g.rc.Respond = func(int, *testkit.Request) int {
				if up.Load() {
					return 200
				}
				return 503
			}
			g.hook(startInstance(t, g.addrs, g.clock.opt()), `"snooze":60,"snooze_scope":"`+scope+`","retry":{"initial_backoff_ms":50,"max_backoff_ms":100}`)
			g.step(0, "u-1", dataA) // fires, fails inline, parked
			up.Store(true)
			g.step(10, "u-1", dataA) // in its window: dropped
			reqs := g.rc.WaitFor(t, 4, 20*time.Second)
			time.Sleep(200 * time.Millisecond) // a wrongly fired second event would have come by now
			var bodies []string
			for _, r := range g.rc.Requests() {
				if r.Status == 200 {
					bodies = append(bodies, string(r.Body))
				}
			}
			if len(bodies) != 1 || len(reqs) < 4 {
				t.Fatalf("%d requests, %d delivered, want the first event's three failed attempts, then it alone", len(g.rc.Requests()), len(bodies))
			}
		})
	}
}

// TestSnoozeWindowSurvivesRestartAndRebalance: the window opened on one instance holds
// after it restarts, and after its partition moves to another instance.
func TestSnoozeWindowSurvivesRestartAndRebalance(t *testing.T) {
	g := newGateRig(t)
	first := startInstance(t, g.addrs, g.clock.opt())
	g.hook(first, `"snooze":60`)
	g.run([]gateStep{{0, "u-1", dataA, true}, {1, "u-2", dataA, true}})

	first.stop()
	restarted := startInstance(t, g.addrs, g.clock.opt())
	g.run([]gateStep{{10, "u-1", dataA, false}})

	other := startInstance(t, g.addrs, g.clock.opt()) // joins the group; one of the two owns the partition
	restarted.stop()                                  // the partition moves to (or stays on) other
	_ = other
	g.run([]gateStep{{20, "u-1", dataA, false}, {30, "u-2", dataA, false}, {61, "u-1", dataA, true}})
}

// TestDeletedHookStateIsTombstoned: once a gated hook is deleted, its lanes drop its
// entries and write tombstones to the state topic.
func TestDeletedHookStateIsTombstoned(t *testing.T) {
	g := newGateRig(t)
	in := startInstance(t, g.addrs, g.clock.opt())
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","on_change":true,"config":{"url":"`+g.rc.URL+`"}}`)
	g.run([]gateStep{{0, "u-1", dataA, true}})
	if err := in.store.Delete(context.Background(), h.ID); err != nil {
		t.Fatal(err)
	}
	g.run([]gateStep{{10, "u-1", dataA, false}}) // no hook now; the lane sweeps (>= 5 s later)
	testkit.Eventually(t, 10*time.Second, "a tombstone for the deleted hook's entry", func() bool {
		return stateTombstones(t, g.addrs, h.ID) == 1
	})
}

// stateTombstones counts the tombstones of hookID's entries in the state topic.
func stateTombstones(t *testing.T, addrs []string, hookID string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topics.State),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	end := testkit.EndOffsets(t, cl, topics.State)
	n, read := 0, int64(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for read < end && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			read++
			if r.Value == nil && strings.HasPrefix(string(r.Key), hookID) {
				n++
			}
		})
	}
	return n
}
