package processor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
	"github.com/eventhooks/eventhooks/sinks"
)

// TestCommitsProgressUnderSteadyGatedLoad: an on_change hook fires on every event, faster
// than one state-topic round trip (each produce answered 100 ms late). Commits must
// keep moving while the load goes on: they used to wait for the state producer's buffer
// to be empty, which it never was.
func TestCommitsProgressUnderSteadyGatedLoad(t *testing.T) {
	emb := testkit.Broker(t, 1)
	c := emb.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if _, ok := req.(*kmsg.ProduceRequest); ok {
			c.SleepControl(func() { time.Sleep(100 * time.Millisecond) })
		}
		return nil, nil, false
	})
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","on_change":true,"config":{"url":"`+rc.URL+`"}}`)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	cl := producer(t, emb.Addrs())
	wg.Go(func() { // a steady stream of distinct events on 20 keys until stopped
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for seq := 0; ctx.Err() == nil; seq++ {
			cl.Produce(ctx, flappingEvent(seq, 20), nil)
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	})
	testkit.Eventually(t, 30*time.Second, "a commit while gated events keep firing", func() bool {
		return committed(t, emb.Addrs()) > 1000
	})
}

// TestOversizedRecordDoesNotFreezeTheCommitPoint: a record over --max-event-bytes whose
// whole value the DLQ producer refuses (too large) is dead-lettered with its value cut;
// later records are committed past it.
func TestOversizedRecordDoesNotFreezeTheCommitPoint(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs(), func(cfg *processor.Config) { cfg.MaxEventBytes = 1024 })
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	huge := `{"source":"balancer","event":"health","data":{"pad":"` + strings.Repeat("x", 200<<10) + `"}}`
	cl := producer(t, emb.Addrs())
	produce(t, cl, &kgo.Record{Key: []byte("big"), Value: []byte(huge)})
	produce(t, cl, healthEvents(10, 20)...)
	rc.WaitFor(t, 200, 30*time.Second)
	testkit.Eventually(t, 30*time.Second, "the commit point past the oversized record", func() bool {
		return committed(t, emb.Addrs()) == 201
	})
	dl := readDLQ(t, emb.Addrs(), 1)
	if got := dl[0].Truncated; got != fmt.Sprint(len(huge)) {
		t.Fatalf("dead letter eh-truncated %q, want %d", got, len(huge))
	}
	if !strings.HasPrefix(dl[0].Reason, "malformed") {
		t.Errorf("dead letter reason %q, want the malformed reason kept", dl[0].Reason)
	}
	if n := len(dl[0].Value); n > 1024 {
		t.Fatalf("dead letter value is %d bytes, want it cut", n)
	}
}

// flappingEvent is event seq of keys upstreams taking turns: upstream u-(seq%keys), whose
// health flips at each of its events, so that an on_change hook fires on every one.
func flappingEvent(seq, keys int) *kgo.Record {
	k := seq % keys
	health := [2]string{"healthy", "unhealthy"}[seq/keys%2]
	return &kgo.Record{Key: []byte(fmt.Sprintf("u-%d", k)), Value: fmt.Appendf(nil,
		`{"source":"balancer","event":"health","data":{"upstream_id":"u-%d","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":%q,"seq":%d}}`, k, health, seq)}
}

// panicSink is a sink whose Deliver panics: a bug, or an input no one foresaw.
type panicSink struct{}

func (panicSink) Deliver(context.Context, *hooks.Event, *sinks.Lane) sinks.Result { panic("boom") }
func (panicSink) Handler() string                                                 { return "webhook" }

// TestPanicInADeliveryDeadLettersIt: a hook whose delivery panics costs that delivery a
// dead letter (internal_error), not the process nor the record's other hooks: the other
// hook delivers every event, and the commit point moves on.
func TestPanicInADeliveryDeadLettersIt(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs(), func(cfg *processor.Config) {
		compile := cfg.Compile
		cfg.Compile = func(h *hooks.Hook) (sinks.Sink, error) {
			if h.Name != nil && *h.Name == "boom" {
				return panicSink{}, nil
			}
			return compile(h)
		}
	})
	in.addHook(t, `{"name":"boom","source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`/boom"}}`)
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvents(2, 5)...)
	dl := readDLQ(t, emb.Addrs(), 10)
	for _, e := range dl {
		if e.Reason != "internal_error" {
			t.Fatalf("dead letter reason %q, want internal_error", e.Reason)
		}
	}
	rc.WaitFor(t, 10, 30*time.Second)
	testkit.Eventually(t, 30*time.Second, "the commit point past the panicking records", func() bool {
		return committed(t, emb.Addrs()) >= 10
	})
}

// TestInputTopicGrowsItsPartitions: partitions added to the events topic are added to the
// co-partitioned state and retry topics, and the new partitions' events are delivered
// (restore used to retry for ever on the missing state partition).
func TestInputTopicGrowsItsPartitions(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs(), func(cfg *processor.Config) {
		cfg.ClientOpts = append(cfg.ClientOpts, kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100*time.Millisecond))
	})
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	cl := producer(t, emb.Addrs())
	if _, err := kadm.NewClient(cl).UpdatePartitions(context.Background(), 3, topics.Events[0]); err != nil {
		t.Fatal(err)
	}
	rec := healthEvent("u-new", 0)
	rec.Partition = 2
	manual, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...), kgo.DefaultProduceTopic(topics.Events[0]),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	produce(t, manual, rec)
	rc.WaitFor(t, 1, 60*time.Second)
}

// TestHeaderRoutedSourcesAreLearned: a record routed by its eh-source/eh-event headers to
// an event no hook wants is never decoded, but its source and event are learned, so a
// hook can be created on them.
func TestHeaderRoutedSourcesAreLearned(t *testing.T) {
	emb := testkit.Broker(t, 1)
	in := startInstance(t, emb.Addrs())
	rec := &kgo.Record{Key: []byte("k"), Value: []byte(`{"source":"mysrc","event":"thing","data":{}}`),
		Headers: []kgo.RecordHeader{{Key: "eh-source", Value: []byte("mysrc")}, {Key: "eh-event", Value: []byte("thing")}}}
	produce(t, producer(t, emb.Addrs()), rec)
	testkit.Eventually(t, 30*time.Second, "mysrc/thing in the catalogue", func() bool {
		_, ok := in.cat.Lookup("mysrc", "thing")
		return ok
	})
}

// TestDeletingAHookEndsItsPendingDeliveries: the parked deliveries of a deleted hook are
// dead-lettered (hook_deleted) at once, not retried until their due time.
func TestDeletingAHookEndsItsPendingDeliveries(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	rc.Respond = func(int, *testkit.Request) int { return 503 }
	in := startInstance(t, emb.Addrs())
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","retry":{"initial_backoff_ms":60000,"max_backoff_ms":60000},
		"config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvents(3, 2)...)
	testkit.Eventually(t, 30*time.Second, "the deliveries parked", func() bool { return blocked() >= 3 })
	if err := in.store.Delete(context.Background(), h.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range readDLQ(t, emb.Addrs(), 6) {
		if e.Reason != "hook_deleted" || e.HookID != h.ID {
			t.Fatalf("dead letter %q for hook %s, want hook_deleted for %s", e.Reason, e.HookID, h.ID)
		}
	}
	n := len(rc.Requests())
	time.Sleep(200 * time.Millisecond)
	if got := len(rc.Requests()); got != n {
		t.Fatalf("%d more requests after the hook was deleted", got-n)
	}
}
