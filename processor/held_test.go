package processor_test

import (
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/sinks"
)

// TestSlowFirstAnswerHoldsUpOnlyItsHook: S's endpoint does not answer its first request
// until F, a healthy hook on the same events, has every event. With a first-answer wait
// far longer than that, lanes that waited for S's answer, or sent S's first request
// themselves, would hold F's events up behind it; held aside, they do not. S then gets
// every event too, each key in order, with none deferred or parked.
func TestSlowFirstAnswerHoldsUpOnlyItsHook(t *testing.T) {
	emb := testkit.Broker(t, 4)
	rc, slow := testkit.NewReceiver(t), testkit.NewReceiver(t) // destinations of their own
	answer := make(chan struct{})
	slow.Respond = func(int, *testkit.Request) int {
		<-answer
		return 200
	}
	t.Cleanup(func() {
		select {
		case <-answer:
		default:
			close(answer)
		}
	})
	in := startInstanceWithPool(t, emb.Addrs(), sinks.PoolConfig{FirstAnswerWait: time.Minute})
	in.addHook(t, `{"name":"S","source":"balancer","event":"health","handler":"webhook","timeout_ms":30000,"config":{"url":"`+slow.URL+`/s"}}`)
	in.addHook(t, `{"name":"F","source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`/f"}}`)
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
	close(answer)
	testkit.Eventually(t, 30*time.Second, "S and F get every event", func() bool {
		return countPath2xx(slow, "/s") >= keys*perKey && countPath2xx(rc, "/f") >= keys*perKey
	})
	assertOrderedAfterSuccess(t, pathRequests(slow, "/s"), keys, perKey)
	assertOrderedAfterSuccess(t, pathRequests(rc, "/f"), keys, perKey)
	if metricSum("eventhooks_deferred_total ") != deferredBefore || readRetryTopic(t, emb.Addrs()) != 0 {
		t.Fatal("S was deferred or parked, though it answered within the first-answer wait")
	}
}
