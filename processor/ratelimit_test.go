package processor_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestRateLimitedHookDoesNotSlowAnother: a hook limited to 50/s gets 1,000 events in
// about 20 s, in key order, while an unlimited hook on the same events gets them all
// long before: the limited hook's waits are parked, not held in the lanes they share.
func TestRateLimitedHookDoesNotSlowAnother(t *testing.T) {
	const keys, perKey, perSecond = 10, 100, 50
	emb := testkit.Broker(t, 1)
	limited, free := testkit.NewReceiver(t), testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+limited.URL+`"},
		"rate_limit":{"per_second":`+strconv.Itoa(perSecond)+`}}`)
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+free.URL+`"}}`)

	start := time.Now()
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	free.WaitFor(t, keys*perKey, 60*time.Second)
	if n := len(limited.Requests()); n > keys*perKey/2 {
		t.Fatalf("the limited hook had %d requests when the unlimited one had all %d: not limited", n, keys*perKey)
	}
	reqs := limited.WaitFor(t, keys*perKey, 120*time.Second)
	took := time.Since(start)
	assertKeyOrder(t, reqs, keys)
	// The burst (50) goes at once, the rest at 50/s: at least 19 s whatever the machine.
	if least := time.Duration(keys*perKey-perSecond) * time.Second / perSecond; took < least*95/100 {
		t.Fatalf("the limited hook got %d events in %v: faster than %d/s", keys*perKey, took, perSecond)
	}
	t.Logf("limited hook: %d events in %v; unlimited hook first", keys*perKey, took.Round(time.Millisecond))
}

// TestReceiverAsking429IsObeyed: a receiver that answers 429 with Retry-After: 1 for
// three seconds gets a few requests a second, not one per event and retry, and then
// every event.
func TestReceiverAsking429IsObeyed(t *testing.T) {
	const keys, perKey = 20, 20
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	var until atomic.Int64 // unix nanoseconds; set before the first event is produced
	rc.Respond = func(_ int, r *testkit.Request) int {
		if r.At.UnixNano() < until.Load() {
			return 429
		}
		return 200
	}
	rc.RespondHeaders = func(int) map[string]string { return map[string]string{"Retry-After": "1"} }
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)

	until.Store(time.Now().Add(3 * time.Second).UnixNano())
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 60*time.Second, "every event delivered", func() bool {
		n := 0
		for _, r := range rc.Requests() {
			if r.Status == 200 {
				n++
			}
		}
		return n == keys*perKey
	})
	perSecond := map[int]int{}
	var first time.Time
	for _, r := range rc.Requests() {
		if r.Status != 429 {
			continue
		}
		if first.IsZero() {
			first = r.At
		}
		perSecond[int(r.At.Sub(first)/time.Second)]++
	}
	// The first second holds what was in flight before the first 429 came back.
	for s, n := range perSecond {
		if s > 0 && n > 5 {
			t.Errorf("second %d of the 429s: %d requests, want a few (%v)", s, n, perSecond)
		}
	}
	t.Logf("429s per second: %v", perSecond)
	assertKeyOrder(t, delivered(rc.Requests()), keys)
}

// delivered keeps the requests answered 200.
func delivered(reqs []*testkit.Request) []*testkit.Request {
	var ok []*testkit.Request
	for _, r := range reqs {
		if r.Status == 200 {
			ok = append(ok, r)
		}
	}
	return ok
}
