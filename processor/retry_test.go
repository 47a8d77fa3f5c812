package processor_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// dlqEntry is what a DLQ record says, as a consumer of the DLQ reads it: the original
// key and value, and the eh-* headers.
type dlqEntry struct {
	HookID     string
	Reason     string
	Attempts   int   `json:"attempts"`
	LastStatus int   `json:"last_status"`
	Offset     int64 `json:"offset"`
	Key        []byte
	Value      []byte
	Truncated  string // eh-truncated: the size the value was cut from
}

func readDLQEntry(t *testing.T, r *kgo.Record) dlqEntry {
	t.Helper()
	e := dlqEntry{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		switch h.Key {
		case "eh-hook-id":
			e.HookID = string(h.Value)
		case "eh-reason":
			e.Reason = string(h.Value)
		case "eh-delivery":
			mustJSON(t, h.Value, &e)
		case "eh-truncated":
			e.Truncated = string(h.Value)
		}
	}
	return e
}

func readDLQ(t *testing.T, addrs []string, want int) []dlqEntry {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []dlqEntry
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("DLQ has %d entries, want %d", len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, readDLQEntry(t, r)) })
	}
	return out
}

// byKeyStatus answers per key from a script of statuses, then 200.
func byKeyStatus(script ...int) func(int, *testkit.Request) int {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(_ int, r *testkit.Request) int {
		upstream, seq, _ := healthBody(r.Body)
		k := upstream + "/" + strconv.Itoa(seq)
		mu.Lock()
		defer mu.Unlock()
		n := seen[k]
		seen[k]++
		if n < len(script) {
			return script[n]
		}
		return 200
	}
}

func TestRetryableFailuresAreRetriedInOrderWithStableID(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	rc.Respond = byKeyStatus(503, 503)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","retry":{"initial_backoff_ms":5,"max_backoff_ms":20},
		"config":{"url":"`+rc.URL+`","secret":"s3cret"}}`)
	const keys, perKey = 3, 5
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)
	reqs := rc.WaitFor(t, keys*perKey*3, 30*time.Second)

	ids := map[string]map[string]bool{} // event → webhook-ids seen
	last := map[string]int{}
	for _, r := range reqs {
		upstream, seq, err := healthBody(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		ev := upstream + "/" + strconv.Itoa(seq)
		if ids[ev] == nil {
			ids[ev] = map[string]bool{}
		}
		ids[ev][r.Headers["Webhook-Id"]] = true
		if prev, ok := last[upstream]; ok && seq < prev {
			t.Fatalf("key %s: seq %d attempted after %d: a failing delivery did not block its key", upstream, seq, prev)
		}
		last[upstream] = seq
	}
	for ev, set := range ids {
		if len(set) != 1 {
			t.Errorf("event %s had webhook-ids %v across attempts", ev, set)
		}
	}
	if len(ids) != keys*perKey {
		t.Fatalf("%d events attempted, want %d", len(ids), keys*perKey)
	}
}

func TestPermanentFailureIsDeadLetteredAtOnce(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	rc.Respond = func(int, *testkit.Request) int { return 400 }
	in := startInstance(t, emb.Addrs())
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvent("u-1", 1), &kgo.Record{Key: []byte("u-2"), Value: []byte("garbage")})
	entries := readDLQ(t, emb.Addrs(), 2)
	var delivery, malformed *dlqEntry
	for i := range entries {
		if entries[i].HookID == h.ID {
			delivery = &entries[i]
		} else {
			malformed = &entries[i]
		}
	}
	if delivery == nil || delivery.Reason != "permanent" || delivery.Attempts != 1 || delivery.LastStatus != 400 ||
		string(delivery.Key) != "u-1" || !strings.Contains(string(delivery.Value), `"seq":1`) {
		t.Fatalf("DLQ delivery entry = %+v", delivery)
	}
	if malformed == nil || !strings.HasPrefix(malformed.Reason, "malformed") || string(malformed.Value) != "garbage" {
		t.Fatalf("DLQ malformed entry = %+v", malformed)
	}
	if n := len(rc.Requests()); n != 1 {
		t.Fatalf("a 400 was attempted %d times", n)
	}
	testkit.Eventually(t, 20*time.Second, "offsets committed past the dead letters", func() bool {
		return committed(t, emb.Addrs()) == 2
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	rc.RespondHeaders = func(n int) map[string]string {
		if n == 0 {
			return map[string]string{"Retry-After": "1"}
		}
		return nil
	}
	rc.Respond = func(n int, _ *testkit.Request) int {
		if n == 0 {
			return 429
		}
		return 200
	}
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","retry":{"initial_backoff_ms":1,"max_backoff_ms":5000},"config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvent("u-1", 1))
	reqs := rc.WaitFor(t, 2, 20*time.Second)
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
		t.Fatalf("retried %v after a 429 with Retry-After: 1", gap)
	}
}

func TestOrderingNoneParksAndTheRetryWorkerRedelivers(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	rc.Respond = byKeyStatus(500, 500, 500, 500, 500)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none","retry":{"initial_backoff_ms":10,"max_backoff_ms":50},"config":{"url":"`+rc.URL+`"}}`)
	const n = 20
	produce(t, producer(t, emb.Addrs()), healthEvents(4, n/4)...)
	testkit.Eventually(t, 30*time.Second, "all events delivered after parking", func() bool {
		ok := 0
		for _, r := range rc.Requests() {
			if r.Status == 200 {
				ok++
			}
		}
		return ok == n
	})
	if parked := readRetryTopic(t, emb.Addrs()); parked < n {
		t.Fatalf("%d entries were parked in the retry topic, want at least %d", parked, n)
	}
}

func readRetryTopic(t *testing.T, addrs []string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return int(testkit.EndOffsets(t, cl, topics.Retry))
}

// TestOrderingNoneWaitsForANewDestinationsFirstAnswer: lanes that start together on a
// healthy but not instant receiver wait for its first answer instead of parking.
func TestOrderingNoneWaitsForANewDestinationsFirstAnswer(t *testing.T) {
	emb := testkit.Broker(t, 4)
	rc := testkit.NewReceiver(t)
	rc.Respond = testkit.AnswerAfter(10 * time.Millisecond)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none","config":{"url":"`+rc.URL+`"}}`)
	const n = 64
	produce(t, producer(t, emb.Addrs()), healthEvents(n, 1)...) // a key each: every lane at once
	rc.WaitFor(t, n, 30*time.Second)
	if parked := readRetryTopic(t, emb.Addrs()); parked != 0 {
		t.Fatalf("%d deliveries to a healthy receiver were parked", parked)
	}
}

// TestDeadLetterWaitsForItsTopic: a dead letter kgo cannot write (its topic is missing)
// is written again until it can; its record is committed only then.
func TestDeadLetterWaitsForItsTopic(t *testing.T) {
	emb := testkit.Broker(t, 1)
	const late = "eventhooks-late-dlq"
	startInstance(t, emb.Addrs(), func(c *processor.Config) { c.DLQTopic = late })
	failed := metrics.GetOrCreateCounter(`eventhooks_park_produce_errors_total`)
	before := failed.Get()
	produce(t, producer(t, emb.Addrs()), &kgo.Record{Key: []byte("u-1"), Value: []byte("garbage")})
	testkit.Eventually(t, 30*time.Second, "the dead letter to fail", func() bool { return failed.Get() > before })
	if n := committed(t, emb.Addrs()); n > 0 {
		t.Fatalf("committed %d before the dead letter was written", n)
	}
	cl := producer(t, emb.Addrs())
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, nil, late); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the dead letter written and the record committed", func() bool {
		return testkit.EndOffsets(t, cl, late) == 1 && committed(t, emb.Addrs()) == 1
	})
}
