package processor_test

import (
	"sync"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
	"github.com/eventhooks/eventhooks/sinks"
)

// TestSlowFirstAnswerHoldsUpOnlyItsHook: S's endpoint does not answer its first request
// until F, a healthy hook on the same events, has every event. With a first-answer wait
// far longer than that, lanes that waited for S's answer, or sent S's first request
// themselves, would hold F's events up behind it; held aside, they do not. S then gets
// every event too, each key in order, with none deferred or parked.
func TestSlowFirstAnswerHoldsUpOnlyItsHook(t *testing.T) {
	emb, rc, slow, answer := slowFirstAnswer(t)
	deferredBefore, heldBefore := metricSum("eventhooks_deferred_total "), metricSum("eventhooks_held_deliveries_total ")

	const keys, perKey = 8, 16
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 30*time.Second, "F gets every event while S's first answer is out", func() bool {
		return countPath2xx(rc, "/f") >= keys*perKey
	})
	if n := slow.InFlight(); n != 1 {
		t.Fatalf("S got %d requests before its first answer, want 1", n)
	}
	if metricSum("eventhooks_held_deliveries_total ") == heldBefore {
		t.Fatal("no delivery was held while S's first answer was out")
	}
	answer()
	testkit.Eventually(t, 30*time.Second, "S and F get every event", func() bool {
		return countPath2xx(slow, "/s") >= keys*perKey && countPath2xx(rc, "/f") >= keys*perKey
	})
	assertOrderedAfterSuccess(t, pathRequests(slow, "/s"), keys, perKey)
	assertOrderedAfterSuccess(t, pathRequests(rc, "/f"), keys, perKey)
	if metricSum("eventhooks_deferred_total ") != deferredBefore || readRetryTopic(t, emb.Addrs()) != 0 {
		t.Fatal("S was deferred or parked, though it answered within the first-answer wait")
	}
}

// slowFirstAnswer starts an instance with hooks S, whose endpoint holds its requests
// until answer is called, and F, on a destination of its own; opts configure the
// instance.
func slowFirstAnswer(t *testing.T, opts ...func(*processor.Config)) (emb *broker.Embedded, rc, slow *testkit.Receiver, answer func()) {
	emb = testkit.Broker(t, 4)
	rc, slow = testkit.NewReceiver(t), testkit.NewReceiver(t) // destinations of their own
	answered := make(chan struct{})
	slow.Respond = func(int, *testkit.Request) int {
		<-answered
		return 200
	}
	var once sync.Once
	answer = func() { once.Do(func() { close(answered) }) }
	t.Cleanup(answer)
	in := startInstanceWithPool(t, emb.Addrs(), sinks.PoolConfig{FirstAnswerWait: time.Minute}, opts...)
	// created_at puts S before F in a record's hooks: a lane holds S's delivery first.
	in.addHook(t, `{"name":"S","source":"balancer","event":"health","handler":"webhook","timeout_ms":30000,"created_at":1,"config":{"url":"`+slow.URL+`/s"}}`)
	in.addHook(t, `{"name":"F","source":"balancer","event":"health","handler":"webhook","created_at":2,"config":{"url":"`+rc.URL+`/f"}}`)
	return emb, rc, slow, answer
}

// A lane holds a bounded number of deliveries: then it takes no record until one of them
// is served, so what a revoke must finish stays near its queue.
func TestHeldDeliveriesAreBoundedPerLane(t *testing.T) {
	const lanes, laneBuffer = 1, 8 // a lane holds laneBuffer/4
	emb, rc, slow, answer := slowFirstAnswer(t, func(cfg *processor.Config) { cfg.Lanes, cfg.LaneBuffer = lanes, laneBuffer })
	const keys, perKey = 8, 16
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 30*time.Second, "S's first request", func() bool { return slow.InFlight() == 1 })
	// Each of the 4 partitions' lanes sends F the events whose S deliveries it holds, and
	// one more: then it waits. Unbounded, F got all 128 while S's answer was out.
	limit := 4 * lanes * (laneBuffer/4 + 1)
	time.Sleep(500 * time.Millisecond) // on a slow machine F gets fewer, never more
	if n := countPath2xx(rc, "/f"); n > limit {
		t.Fatalf("F got %d events while S's first answer was out, want at most %d", n, limit)
	}
	answer()
	testkit.Eventually(t, 30*time.Second, "S and F get every event", func() bool {
		return countPath2xx(slow, "/s") >= keys*perKey && countPath2xx(rc, "/f") >= keys*perKey
	})
	assertOrderedAfterSuccess(t, pathRequests(slow, "/s"), keys, perKey)
}

// A lane at its held bound goes on once any held delivery is ready, not only the first
// one's hook's: F's first answer is kept back until every lane holds F's deliveries
// beside S's and has reached its bound, which S's alone would not. Once F has answered,
// F gets every event while S's first answer is still out. Waiting for the first held
// delivery's hook (S) held F's up for S's whole timeout.
func TestHeldBoundGoesOnWhenAnyHookIsReady(t *testing.T) {
	const lanes, laneBuffer = 1, 40 // a lane holds 10
	emb, rc, slow, answer := slowFirstAnswer(t, func(cfg *processor.Config) { cfg.Lanes, cfg.LaneBuffer = lanes, laneBuffer })
	releaseF := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(releaseF) }) }
	t.Cleanup(release)
	rc.Respond = func(int, *testkit.Request) int {
		<-releaseF
		return 200
	}
	// 8 keys on 4 partitions (kgo's murmur2): u-6 on 0; u-0, u-3 on 1; u-2, u-4 on 2;
	// u-1, u-5, u-7 on 3. A partition has 9 events at most, fewer than a lane holds of
	// S's alone; with F's, three lanes hold 10 (their bound) and one 6.
	const keys, perKey = 8, 3
	heldBefore := metricSum("eventhooks_held_deliveries_total ")
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 20*time.Second, "every lane full of held deliveries", func() bool {
		return metricSum("eventhooks_held_deliveries_total ")-heldBefore >= 3*10+6
	})
	release()
	testkit.Eventually(t, 20*time.Second, "F gets every event while S's first answer is out", func() bool {
		return countPath2xx(rc, "/f") >= keys*perKey
	})
	if n := slow.InFlight(); n != 1 {
		t.Fatalf("S got %d requests before its first answer, want 1", n)
	}
	answer()
	testkit.Eventually(t, 30*time.Second, "S gets every event", func() bool { return countPath2xx(slow, "/s") >= keys*perKey })
	assertOrderedAfterSuccess(t, pathRequests(slow, "/s"), keys, perKey)
	assertOrderedAfterSuccess(t, pathRequests(rc, "/f"), keys, perKey)
}
