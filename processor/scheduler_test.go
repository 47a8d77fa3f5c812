package processor_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// assertOrderedAfterSuccess checks, per key, that every event arrived with a 2xx and that
// no event's first attempt preceded the previous event's 2xx (retries and at-least-once
// duplicates of earlier events may come in between).
func assertOrderedAfterSuccess(t *testing.T, reqs []*testkit.Request, keys, perKey int) {
	t.Helper()
	type state struct {
		delivered map[int]bool
		tried     map[int]bool
	}
	byKey := map[string]*state{}
	for _, r := range reqs {
		upstream, seq, err := healthBody(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		s := byKey[upstream]
		if s == nil {
			s = &state{delivered: map[int]bool{}, tried: map[int]bool{}}
			byKey[upstream] = s
		}
		if !s.tried[seq] && seq > 0 && !s.delivered[seq-1] {
			t.Fatalf("key %s: first attempt of seq %d before seq %d was delivered", upstream, seq, seq-1)
		}
		s.tried[seq] = true
		if r.Status/100 == 2 {
			s.delivered[seq] = true
		}
	}
	if len(byKey) != keys {
		t.Fatalf("got %d keys, want %d", len(byKey), keys)
	}
	for k, s := range byKey {
		if len(s.delivered) != perKey {
			t.Fatalf("key %s: %d of %d events delivered", k, len(s.delivered), perKey)
		}
	}
}

// delivered2xx counts the distinct bodies a receiver answered with a 2xx.
func delivered2xx(rc *testkit.Receiver) int {
	seen := map[string]bool{}
	for _, r := range rc.Requests() {
		if r.Status/100 == 2 {
			seen[string(r.Body)] = true
		}
	}
	return len(seen)
}

// recoverable answers 503 on paths with prefix until healthy is set, 200 elsewhere.
func recoverable(prefix string, healthy *atomic.Bool) func(int, *testkit.Request) int {
	return func(_ int, r *testkit.Request) int {
		if strings.HasPrefix(r.Path, prefix) && !healthy.Load() {
			return 503
		}
		return 200
	}
}

// outage starts a broker of 4 partitions and a receiver that answers 503 on /a until
// healthy is set (200 elsewhere).
func outage(t *testing.T) (*broker.Embedded, *testkit.Receiver, *atomic.Bool) {
	emb := testkit.Broker(t, 4)
	rc := testkit.NewReceiver(t)
	healthy := new(atomic.Bool)
	rc.Respond = recoverable("/a", healthy)
	return emb, rc, healthy
}

// TestFailingHooksHoldBackOnlyThemselves subscribes a healthy hook B beside three failing
// ones on the same events: A answers 503 (on B's host:port, another path), C's lambda
// never returns, D's port refuses connections. B delivers every event while they fail;
// once A's receiver recovers, A gets every event, each key in order.
func TestFailingHooksHoldBackOnlyThemselves(t *testing.T) {
	emb, rc, healthy := outage(t)
	in := startInstance(t, emb.Addrs())
	retry := `"retry":{"max_attempts":100,"initial_backoff_ms":50,"max_backoff_ms":300}`
	in.addHook(t, `{"name":"A","source":"balancer","event":"health","handler":"webhook",`+retry+`,"config":{"url":"`+rc.URL+`/a"}}`)
	in.addHook(t, `{"name":"B","source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`/b"}}`)
	in.addHook(t, `{"name":"C","source":"balancer","event":"health","handler":"lambda","config":{"functions":["(d) => { while (true) {} }"]}}`)
	in.addHook(t, `{"name":"D","source":"balancer","event":"health","handler":"webhook",`+retry+`,"config":{"url":"http://`+testkit.FreeAddr(t)+`/d"}}`)

	const keys, perKey = 20, 20
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 60*time.Second, "B delivers every event while A, C and D fail", func() bool {
		return countPath(rc, "/b") >= keys*perKey
	})
	if got := delivered2xx(rc); got != keys*perKey { // only B's bodies got a 2xx so far
		t.Fatalf("%d distinct bodies delivered while A failed, want B's %d", got, keys*perKey)
	}
	healthy.Store(true)
	testkit.Eventually(t, 60*time.Second, "A delivers every event after it recovers", func() bool {
		return countPath2xx(rc, "/a") >= keys*perKey
	})
	assertOrderedAfterSuccess(t, pathRequests(rc, "/a"), keys, perKey)
	assertOrderedAfterSuccess(t, pathRequests(rc, "/b"), keys, perKey)
}

// pathRequests returns the requests a receiver got on path.
func pathRequests(rc *testkit.Receiver, path string) []*testkit.Request {
	var out []*testkit.Request
	for _, r := range rc.Requests() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func countPath(rc *testkit.Receiver, path string) int { return len(pathRequests(rc, path)) }

func countPath2xx(rc *testkit.Receiver, path string) int {
	n := 0
	for _, r := range pathRequests(rc, path) {
		if r.Status/100 == 2 {
			n++
		}
	}
	return n
}

// TestFlakyEndpointDeliversInKeyOrder: a receiver that answers 503 twice then 200 per
// event gets all 50 events of 5 keys, each key in order, within the hook's short backoff
// (seconds, where the breaker's cooldown used to stretch it to minutes).
func TestFlakyEndpointDeliversInKeyOrder(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	rc.Respond = byKeyStatus(503, 503)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","retry":{"initial_backoff_ms":50,"max_backoff_ms":300},
		"config":{"url":"`+rc.URL+`"}}`)
	const keys, perKey = 5, 10
	start := time.Now()
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	testkit.Eventually(t, 60*time.Second, "every event delivered", func() bool { return delivered2xx(rc) == keys*perKey })
	t.Logf("50 flaky events delivered in %v", time.Since(start).Round(time.Millisecond))
	assertOrderedAfterSuccess(t, rc.Requests(), keys, perKey)
}

// TestRestartWhileKeysBlockedKeepsOrder: two instances share the partitions while A's
// receiver is down; one stops mid-outage (its partitions, blocked keys and parked
// deliveries move to the other, which restores the blocked keys from the retry topic).
// The receiver recovers and more events arrive while the parked ones are not due yet:
// they must wait behind them, each key in order.
func TestRestartWhileKeysBlockedKeepsOrder(t *testing.T) {
	emb, rc, healthy := outage(t)
	first := startInstance(t, emb.Addrs())
	startInstance(t, emb.Addrs()) // takes over the first one's partitions
	first.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","retry":{"max_attempts":100,"initial_backoff_ms":1500,"max_backoff_ms":1500},
		"config":{"url":"`+rc.URL+`/a"}}`)
	const keys, perKey = 16, 10
	cl := producer(t, emb.Addrs())
	recs := healthEvents(keys, perKey)
	produce(t, cl, recs[:len(recs)/2]...)
	testkit.Eventually(t, 30*time.Second, "the first half attempted", func() bool { return countPath(rc, "/a") >= keys })
	testkit.Eventually(t, 30*time.Second, "every key blocked", func() bool { return blocked() >= keys })
	first.stop()
	testkit.Eventually(t, 30*time.Second, "the blocked keys restored", func() bool { return blocked() >= keys })
	healthy.Store(true)
	produce(t, cl, recs[len(recs)/2:]...)
	testkit.Eventually(t, 60*time.Second, "every event delivered", func() bool { return delivered2xx(rc) == keys*perKey })
	assertOrderedAfterSuccess(t, rc.Requests(), keys, perKey)
}

// blocked reads the eventhooks_blocked_keys gauge.
func blocked() int { return int(metricSum("eventhooks_blocked_keys ")) }

// metricSum adds up the values of the metric lines that start with prefix.
func metricSum(prefix string) float64 {
	sum := 0.0
	for _, line := range strings.Split(metricsText(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i >= 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += v
		}
	}
	return sum
}
