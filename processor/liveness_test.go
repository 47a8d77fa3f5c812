package processor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
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
			cl.Produce(ctx, flappingEvent(seq%20, seq), nil)
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

// flappingEvent is a health event of upstream u-k whose health flips with seq, so that an
// on_change hook fires on every one.
func flappingEvent(k, seq int) *kgo.Record {
	health := [2]string{"healthy", "unhealthy"}[seq/20%2]
	return &kgo.Record{Key: []byte(fmt.Sprintf("u-%d", k)), Value: fmt.Appendf(nil,
		`{"source":"balancer","event":"health","data":{"upstream_id":"u-%d","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":%q,"seq":%d}}`, k, health, seq)}
}
