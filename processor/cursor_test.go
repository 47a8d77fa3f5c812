package processor_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// healthEventsSeq returns seq from…to-1 of keys keys "u-0"…, interleaved as healthEvents.
func healthEventsSeq(keys, from, to int) []*kgo.Record {
	var recs []*kgo.Record
	for seq := from; seq < to; seq++ {
		for k := range keys {
			recs = append(recs, healthEvent("u-"+strconv.Itoa(k), seq))
		}
	}
	return recs
}

// deferredHooks reads the eventhooks_deferred_hooks gauge.
func deferredHooks() int { return int(metricSum("eventhooks_deferred_hooks ")) }

const deferTestRetry = `"retry":{"max_attempts":100,"initial_backoff_ms":50,"max_backoff_ms":300}`

// TestFailingHookIsDeferredNotParkedPerEvent: once A's breaker turns its deliveries away,
// its later events cost no retry record each: the partition defers A and a cursor reads
// them back from the events topic when A answers again. A then gets every event, each
// key in order; B got every event meanwhile; the deferrals close, and the commits of the
// events and retry topics reach their ends (the start markers are released).
func TestFailingHookIsDeferredNotParkedPerEvent(t *testing.T) {
	emb, rc, healthy := outage(t)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"name":"A","source":"balancer","event":"health","handler":"webhook",`+deferTestRetry+`,"config":{"url":"`+rc.URL+`/a"}}`)
	in.addHook(t, `{"name":"B","source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`/b"}}`)
	cl := producer(t, emb.Addrs())

	const keys, first, perKey = 20, 5, 40
	produce(t, cl, healthEventsSeq(keys, 0, first)...)
	testkit.Eventually(t, 60*time.Second, "A deferred on every partition, the first events settled", func() bool {
		return deferredHooks() >= 4 && committed(t, emb.Addrs()) == testkit.EndOffsets(t, cl, topics.Events[0])
	})
	before := readRetryTopic(t, emb.Addrs())
	produce(t, cl, healthEventsSeq(keys, first, perKey)...)
	testkit.Eventually(t, 60*time.Second, "B delivers every event while A fails", func() bool {
		return countPath2xx(rc, "/b") >= keys*perKey
	})
	if later, n := readRetryTopic(t, emb.Addrs())-before, keys*(perKey-first); later > n/10 {
		t.Fatalf("%d retry records for %d events of a deferred hook, want at most %d", later, n, n/10)
	}
	healthy.Store(true)
	testkit.Eventually(t, 90*time.Second, "A delivers every event after it recovers", func() bool {
		return countPath2xx(rc, "/a") >= keys*perKey
	})
	assertOrderedAfterSuccess(t, pathRequests(rc, "/a"), keys, perKey)
	assertOrderedAfterSuccess(t, pathRequests(rc, "/b"), keys, perKey)
	// Generous: a cursor that missed every sign goes on after cursorRetry (a minute).
	testkit.Eventually(t, 150*time.Second, "the deferrals closed, commits at the ends", func() bool {
		return deferredHooks() == 0 && committed(t, emb.Addrs()) == testkit.EndOffsets(t, cl, topics.Events[0]) &&
			committedOf(t, emb.Addrs(), topics.Retry) == testkit.EndOffsets(t, cl, topics.Retry)
	})
}

// TestRestartWhileDeferredLosesNothing: two instances share the partitions while A fails
// and is deferred; one stops mid-outage, and the other restores its deferrals from the
// retry topic's markers. More events arrive; A recovers and gets every event, each key
// in order.
func TestRestartWhileDeferredLosesNothing(t *testing.T) {
	emb, rc, healthy := outage(t)
	first := startInstance(t, emb.Addrs())
	startInstance(t, emb.Addrs())
	first.addHook(t, `{"name":"A","source":"balancer","event":"health","handler":"webhook",`+deferTestRetry+`,"config":{"url":"`+rc.URL+`/a"}}`)
	cl := producer(t, emb.Addrs())

	const keys, perKey = 16, 30
	produce(t, cl, healthEventsSeq(keys, 0, 5)...)
	testkit.Eventually(t, 60*time.Second, "A deferred on every partition", func() bool { return deferredHooks() >= 4 })
	produce(t, cl, healthEventsSeq(keys, 5, 15)...)
	first.stop()
	testkit.Eventually(t, 60*time.Second, "the deferrals restored by the other instance", func() bool { return deferredHooks() >= 4 })
	produce(t, cl, healthEventsSeq(keys, 15, 20)...)
	healthy.Store(true)
	produce(t, cl, healthEventsSeq(keys, 20, perKey)...)
	testkit.Eventually(t, 90*time.Second, "every event delivered", func() bool { return delivered2xx(rc) == keys*perKey })
	assertOrderedAfterSuccess(t, rc.Requests(), keys, perKey)
}
