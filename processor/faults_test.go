package processor_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// faultSeconds is how long TestFaultInjection produces under faults: 15 s in `make test`,
// EVENTHOOKS_FAULT_SECONDS for a longer soak.
func faultSeconds() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("EVENTHOOKS_FAULT_SECONDS")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 15 * time.Second
}

// injectFaults makes the broker, while on is set, answer some produce, fetch and offset
// commit requests late (up to 50 ms) and drop the connection of others.
func injectFaults(c *kfake.Cluster, on *atomic.Bool) *atomic.Int64 {
	var injected atomic.Int64
	for _, key := range []kmsg.Key{kmsg.Produce, kmsg.Fetch, kmsg.OffsetCommit} {
		c.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if !on.Load() {
				return nil, nil, false
			}
			switch r := rand.IntN(100); {
			case r < 2:
				injected.Add(1)
				return nil, errors.New("injected fault: connection dropped"), true
			case r < 12:
				injected.Add(1)
				d := time.Duration(rand.IntN(50)) * time.Millisecond
				c.SleepControl(func() { time.Sleep(d) })
			}
			return nil, nil, false
		})
	}
	return &injected
}

// TestFaultInjection runs gated, parked and plain deliveries under random broker faults
// (late and dropped produce, fetch and commit requests) while instances join and leave.
// Afterwards every event was delivered or dead-lettered for every hook, the committed
// offsets reach the end of the events and retry topics, and nothing crashed.
func TestFaultInjection(t *testing.T) {
	emb := testkit.Broker(t, 4)
	var faults atomic.Bool
	injected := injectFaults(emb.Cluster(), &faults)
	rc := testkit.NewReceiver(t)
	rc.Respond = func(_ int, r *testkit.Request) int {
		if r.Path == "/flaky" && rand.IntN(100) < 20 {
			return 503
		}
		return 200
	}
	first := startInstance(t, emb.Addrs())
	retry := `"retry":{"max_attempts":100,"initial_backoff_ms":20,"max_backoff_ms":200}`
	hookOf := map[string]string{} // receiver path → hook id
	for path, extra := range map[string]string{
		"/plain":      ``,
		"/flaky":      retry + `,`,
		"/flaky-none": retry + `,"ordering":"none",`,
		"/gated":      `"on_change":true,`,
	} {
		h := first.addHook(t, `{"source":"balancer","event":"health","handler":"webhook",`+extra+`"config":{"url":"`+rc.URL+path+`"}}`)
		hookOf[path] = h.ID
	}

	faults.Store(true)
	ctx, stopLoad := context.WithCancel(context.Background())
	var produced atomic.Int64
	var wg sync.WaitGroup
	cl := producer(t, emb.Addrs())
	wg.Go(func() { // ~300 events/s of flapping health on 40 keys
		for seq := 0; ctx.Err() == nil; seq++ {
			if cl.ProduceSync(ctx, flappingEvent(seq, 40)).FirstErr() == nil {
				produced.Add(1)
			}
			time.Sleep(3 * time.Millisecond)
		}
	})
	// Instances join and leave while the load runs.
	load := faultSeconds()
	time.Sleep(load / 4)
	startInstance(t, emb.Addrs())
	time.Sleep(load / 4)
	first.stop()
	time.Sleep(load / 4)
	startInstance(t, emb.Addrs())
	time.Sleep(load / 4)
	stopLoad()
	wg.Wait()
	faults.Store(false)
	n := int(produced.Load())
	t.Logf("%d events produced, %d faults injected", n, injected.Load())

	for path, id := range hookOf {
		testkit.Eventually(t, 120*time.Second, "every event settled for "+path, func() bool {
			got := settled(t, emb.Addrs(), rc, path, id)
			for seq := range n {
				if !got[seq] {
					return false
				}
			}
			return true
		})
	}
	testkit.Eventually(t, 60*time.Second, "commits reach the end of the events and retry topics", func() bool {
		return committed(t, emb.Addrs()) == testkit.EndOffsets(t, cl, topics.Events[0]) &&
			committedOf(t, emb.Addrs(), topics.Retry) == testkit.EndOffsets(t, cl, topics.Retry)
	})
}

// settled returns the seqs of the events hookID (receiving on path) delivered (2xx) or
// dead-lettered.
func settled(t *testing.T, addrs []string, rc *testkit.Receiver, path, hookID string) map[int]bool {
	out := map[int]bool{}
	for _, r := range rc.Requests() {
		if r.Path == path && r.Status/100 == 2 {
			_, seq, _ := healthBody(r.Body)
			out[seq] = true
		}
	}
	for _, r := range readTopic(t, addrs, topics.DLQ) {
		if e := readDLQEntry(t, r); e.HookID == hookID {
			var env struct {
				Data struct {
					Seq int `json:"seq"`
				} `json:"data"`
			}
			mustJSON(t, e.Value, &env)
			out[env.Data.Seq] = true
		}
	}
	return out
}

// readTopic reads every record of topic up to its end offsets now.
func readTopic(t *testing.T, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(left) > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	return out
}
