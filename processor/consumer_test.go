package processor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// TestPausedRetryPartitionResumesAfterRebalance: the retry partition's fetching is paused
// for its backlog (the scheduler may hold one entry), then the group rebalances twice; kgo
// keeps a revoked partition paused, so the owner must resume every partition it is
// assigned, or the parked deliveries are never read again.
func TestPausedRetryPartitionResumesAfterRebalance(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	var healthy atomic.Bool
	rc.Respond = recoverable("/", &healthy)
	small := func(cfg *processor.Config) {
		cfg.RetryMemoryPerPartition, cfg.LaneBuffer, cfg.PartitionBuffer, cfg.Lanes = 1, 1, 1, 1
	}
	first := startInstance(t, emb.Addrs(), small)
	first.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none",
		"retry":{"max_attempts":100,"initial_backoff_ms":100,"max_backoff_ms":300},"config":{"url":"`+rc.URL+`/"}}`)
	const n = 200
	produce(t, producer(t, emb.Addrs()), healthEvents(10, n/10)...)
	testkit.Eventually(t, 30*time.Second, "the retry partition paused for its backlog", func() bool {
		return metricSum("eventhooks_partition_fetch_pauses_total{topic=\"eventhooks-retry\"") > 0
	})
	second := startInstance(t, emb.Addrs(), small)
	second.stop()
	healthy.Store(true)
	testkit.Eventually(t, 60*time.Second, "every parked delivery made after the rebalances", func() bool {
		return delivered2xx(rc) == n
	})
}

// TestStopDoesNotWaitOutAHangingDelivery: a receiver that holds a request for 28 s (the
// hook's timeout is 30 s) does not hold a shutdown (or a revoke) for that long: in-flight
// deliveries get a short grace, then their records stay uncommitted and are delivered by
// the next owner.
func TestStopDoesNotWaitOutAHangingDelivery(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	var hang atomic.Bool
	hang.Store(true)
	release := make(chan struct{})
	rc.Respond = func(int, *testkit.Request) int {
		if hang.Load() {
			select {
			case <-time.After(28 * time.Second):
			case <-release: // the old owner's request: not a delivery
				return 503
			}
		}
		return 200
	}
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","timeout_ms":30000,"config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvent("u-0", 0))
	testkit.Eventually(t, 30*time.Second, "the request in flight", func() bool { return rc.InFlight() > 0 })
	start := time.Now()
	in.stop()
	if took := time.Since(start); took > 20*time.Second { // grace 5 s + 1 s
		t.Fatalf("stop took %v with a delivery hanging: it waited for the delivery", took)
	}
	hang.Store(false)
	close(release)
	startInstance(t, emb.Addrs())
	testkit.Eventually(t, 60*time.Second, "the record redelivered by the next owner", func() bool { return delivered2xx(rc) == 1 })
}

// TestUpgradeCarriesOverTheRetryGroupsOffsets: the previous version read the retry topic
// in its own group (<group>-retry); on upgrade the main group starts where that one got
// to, instead of re-sending every retry entry the topic holds.
func TestUpgradeCarriesOverTheRetryGroupsOffsets(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	const hookID = "11111111-2222-4333-8444-555555555555"
	cl := producer(t, emb.Addrs())
	for seq := range 5 { // settled long ago by the old retry group
		ev := healthEvent("u-old", seq)
		ev.Topic = topics.Retry
		ev.Headers = []kgo.RecordHeader{{Key: "eh-hook-id", Value: []byte(hookID)}, {Key: "eh-reason", Value: nil},
			{Key: "eh-delivery", Value: []byte(`{"attempts":1,"first_attempt_ms":1,"last_attempt_ms":1,"topic":"eventhooks-events","partition":0,"offset":0,"timestamp_ms":1}`)}}
		produce(t, cl, ev)
	}
	var old kadm.Offsets
	old.AddOffset(topics.Retry, 0, 5, -1)
	if _, err := kadm.NewClient(cl).CommitOffsets(context.Background(), "eventhooks-retry", old); err != nil {
		t.Fatal(err)
	}
	// The hook exists before the upgraded instance starts (added through an instance of
	// another group, stopped before the entries could reach it).
	setup := startInstance(t, emb.Addrs(), func(cfg *processor.Config) { cfg.Group, cfg.RetryTopic = "setup", "" })
	setup.addHook(t, `{"id":"`+hookID+`","source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	setup.stop()
	startInstance(t, emb.Addrs())
	produce(t, cl, healthEvent("u-new", 0))
	rc.WaitFor(t, 1, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	for _, r := range rc.Requests() {
		if upstream, _, _ := healthBody(r.Body); upstream != "u-new" {
			t.Fatalf("an entry the old retry group had settled was sent again: %s", r.Body)
		}
	}
}

// TestRebalanceSendsNothingTwice: a second instance joins mid-drain. The first one's
// revoked partitions stop taking records but their lanes finish those they hold before
// the revoke commits, so the new owner starts after them: no event is sent twice (before,
// every record queued in a lane was abandoned, and every delivered record after it in
// the partition was sent again).
func TestRebalanceSendsNothingTwice(t *testing.T) {
	emb := testkit.Broker(t, 4)
	rc := testkit.NewReceiver(t)
	rc.Respond = func(int, *testkit.Request) int {
		time.Sleep(5 * time.Millisecond) // a drain of seconds, with records queued in lanes
		return 200
	}
	// A revoke waits for the records queued in lanes, up to the stop grace (5 s): 32 a
	// lane at 5 ms each keeps that well inside the grace on a busy machine (256, the
	// default, sent some twice there).
	twoLanes := func(cfg *processor.Config) { cfg.Lanes, cfg.LaneBuffer = 2, 32 }
	first := startInstance(t, emb.Addrs(), twoLanes)
	first.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	const keys, perKey = 100, 80
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 30*time.Second, "the drain under way", func() bool { return len(rc.Requests()) >= keys*perKey/10 })
	startInstance(t, emb.Addrs(), twoLanes)
	testkit.Eventually(t, 120*time.Second, "every event delivered", func() bool { return delivered2xx(rc) == keys*perKey })
	if n := len(rc.Requests()); n != keys*perKey {
		t.Fatalf("%d requests for %d events: %d sent twice", n, keys*perKey, n-keys*perKey)
	}
}
