package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestKillDuringOutageKeepsIsolationAndOrder: hook A's receiver answers 503 while hook B,
// on the same host:port, is healthy, beside hooks C (a lambda that never returns) and D
// (a refused port). B delivers every event during A's outage; the
// processor is killed (SIGKILL) mid-outage and restarted; once A recovers it gets every
// event, and per key no event's first attempt precedes the previous event's 2xx.
func TestKillDuringOutageKeepsIsolationAndOrder(t *testing.T) {
	emb := testkit.Broker(t, 4)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	var healthy atomic.Bool
	rc.Respond = func(_ int, r *testkit.Request) int {
		if strings.HasPrefix(r.Path, "/a") && !healthy.Load() {
			return 503
		}
		return 200
	}
	args := []string{"run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers, "--commit-interval", "200ms", "--session-timeout", "6s"}
	p := start(t, args...)
	retry := `"retry":{"max_attempts":100,"initial_backoff_ms":200,"max_backoff_ms":1000}`
	p.createHook(t, `{"name":"A","source":"balancer","event":"health","handler":"webhook",`+retry+`,"config":{"url":"`+rc.URL+`/a"}}`)
	p.createHook(t, `{"name":"B","source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`/b"}}`)
	p.createHook(t, `{"name":"C","source":"balancer","event":"health","handler":"lambda","config":{"functions":["(d) => { while (true) {} }"]}}`)
	p.createHook(t, `{"name":"D","source":"balancer","event":"health","handler":"webhook",`+retry+`,"config":{"url":"http://`+testkit.FreeAddr(t)+`/d"}}`)

	const n = 400
	produceHealth(t, brokers, n/2)
	testkit.Eventually(t, 60*time.Second, "B delivers the first half during A's outage", func() bool {
		return len(delivered(rc, "/b")) >= n/2
	})
	p.kill(t)
	produceHealthFrom(t, brokers, n/2, n/2, 50)
	start(t, args...)
	testkit.Eventually(t, 60*time.Second, "B delivers every event after the restart, A still down", func() bool {
		return len(delivered(rc, "/b")) == n
	})
	healthy.Store(true)
	testkit.Eventually(t, 90*time.Second, "A delivers every event once it recovers", func() bool {
		return len(delivered(rc, "/a")) == n
	})
	assertKeyOrderAfterSuccess(t, rc.Requests(), "/a")
	assertKeyOrderAfterSuccess(t, rc.Requests(), "/b")
}

// delivered returns the seqs a path answered 2xx to.
func delivered(rc *testkit.Receiver, path string) map[int]bool {
	out := map[int]bool{}
	for _, r := range rc.Requests() {
		if r.Path == path && r.Status/100 == 2 {
			out[seqOf(r.Body)] = true
		}
	}
	return out
}

func seqOf(body []byte) int {
	var b struct {
		Seq int `json:"seq"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Seq
}

// assertKeyOrderAfterSuccess checks the requests to path (produceHealth's events: per key,
// increasing seq): the first attempt of each event comes after the previous event of its
// key was delivered (2xx). Duplicates of delivered events may come at any time.
func assertKeyOrderAfterSuccess(t *testing.T, reqs []*testkit.Request, path string) {
	t.Helper()
	order := map[string][]int{} // key → seqs in production order
	for seq := 0; seq < 400; seq++ {
		k := keyOf(seq)
		order[k] = append(order[k], seq)
	}
	prev := map[int]int{} // seq → the previous seq of its key, -1 for the first
	for _, seqs := range order {
		for i, s := range seqs {
			prev[s] = -1
			if i > 0 {
				prev[s] = seqs[i-1]
			}
		}
	}
	ok, tried := map[int]bool{}, map[int]bool{}
	for _, r := range reqs {
		if r.Path != path {
			continue
		}
		s := seqOf(r.Body)
		if !tried[s] && prev[s] >= 0 && !ok[prev[s]] {
			t.Fatalf("%s: first attempt of seq %d before seq %d of its key was delivered", path, s, prev[s])
		}
		tried[s] = true
		if r.Status/100 == 2 {
			ok[s] = true
		}
	}
}

// keyOf is produceHealth's key of seq (50 keys).
func keyOf(seq int) string {
	return "u-" + strconv.Itoa(seq%50)
}

// TestFlakyEndpointUnderDefaultBreakers: with the service's default breaker settings (5 s
// cooldown doubling to 60 s), a receiver that answers 503 twice then 200 per event gets
// all 50 events of 5 keys, each key in order, within seconds: HTTP status failures trip
// only the hook, and never for longer than its max_backoff_ms (300 ms).
func TestFlakyEndpointUnderDefaultBreakers(t *testing.T) {
	emb := testkit.Broker(t, 2)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	var mu sync.Mutex
	seen := map[int]int{}
	rc.Respond = func(_ int, r *testkit.Request) int {
		mu.Lock()
		defer mu.Unlock()
		seq := seqOf(r.Body)
		seen[seq]++
		if seen[seq] <= 2 {
			return 503
		}
		return 200
	}
	p := start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers)
	p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","retry":{"initial_backoff_ms":50,"max_backoff_ms":300},"config":{"url":"`+rc.URL+`/f"}}`)
	produceHealthFrom(t, brokers, 0, 50, 5)
	testkit.Eventually(t, 60*time.Second, "every flaky event delivered", func() bool { return len(delivered(rc, "/f")) == 50 })
	byKey := map[string][]int{}
	for _, r := range rc.Requests() {
		if r.Status == 200 {
			k := "u-" + strconv.Itoa(seqOf(r.Body)%5)
			byKey[k] = append(byKey[k], seqOf(r.Body))
		}
	}
	for k, seqs := range byKey {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Fatalf("key %s delivered seq %d after %d", k, seqs[i], seqs[i-1])
			}
		}
	}
}
