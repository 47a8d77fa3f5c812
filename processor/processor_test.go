package processor_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
	"github.com/eventhooks/eventhooks/sinks"
)

var topics = broker.NewTopics("", nil)

// instance is one eventhooks processor with its hook store, as `run` wires them.
type instance struct {
	cat    *hooks.Catalogue
	store  *hooks.Store
	proc   *processor.Processor
	cancel context.CancelFunc
	done   chan struct{}
}

func startInstance(t *testing.T, addrs []string, opts ...func(*processor.Config)) *instance {
	t.Helper()
	return startInstanceWithPool(t, addrs, sinks.PoolConfig{}, opts...)
}

// startInstanceWithPool is startInstance with the sinks' pool configured by pc (its
// breaker cooldowns are the tests' short ones).
func startInstanceWithPool(t *testing.T, addrs []string, pc sinks.PoolConfig, opts ...func(*processor.Config)) *instance {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pc.BreakerCooldown, pc.BreakerMaxCooldown = 20*time.Millisecond, 100*time.Millisecond
	pool := sinks.NewPool(pc)
	t.Cleanup(pool.Close)
	cat := hooks.NewCatalogue()
	cfg := processor.Config{
		ClientOpts:     []kgo.Opt{kgo.SeedBrokers(addrs...)},
		Topics:         topics.Events,
		CommitInterval: 100 * time.Millisecond,
		MaxEventBytes:  4096,
		Compile:        func(h *hooks.Hook) (sinks.Sink, error) { return sinks.Compile(h, pool, log) },
		Catalogue:      cat,
		Logger:         log,
		RetryTopic:     topics.Retry,
		DLQTopic:       topics.DLQ,
		StateTopic:     topics.State,
	}
	for _, o := range opts {
		o(&cfg)
	}
	proc, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Close)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, hooks.StoreClientOpts(topics.Hooks)...)...)
	if err != nil {
		t.Fatal(err)
	}
	store := hooks.NewStore(cl, topics.Hooks, cat, log, proc.ApplyHooks)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cat: cat, store: store, proc: proc, cancel: cancel, done: make(chan struct{})}
	go func() { _ = store.Run(ctx) }()
	<-store.Loaded()
	go func() {
		defer close(in.done)
		defer cl.Close()
		if err := proc.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(in.stop)
	testkit.Eventually(t, 20*time.Second, "group join", proc.Joined)
	return in
}

func (in *instance) stop() {
	in.cancel()
	<-in.done
}

func (in *instance) addHook(t *testing.T, body string) *hooks.Hook {
	t.Helper()
	h, err := hooks.ParseHook([]byte(body))
	if err == nil {
		err = hooks.Validate(h, nil, time.Now())
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := in.store.Put(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func producer(t *testing.T, addrs []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topics.Events[0]),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func healthEvent(key string, seq int) *kgo.Record {
	v := fmt.Sprintf(`{"id":"ev-%s-%d","source":"balancer","event":"health","data":{"upstream_id":%q,"ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":"unhealthy","seq":%d}}`, key, seq, key, seq)
	return &kgo.Record{Key: []byte(key), Value: []byte(v)}
}

// healthEvents returns perKey events for each of keys keys "u-0"…, interleaved: seq
// 0 of every key, then seq 1, and so on.
func healthEvents(keys, perKey int) []*kgo.Record { return healthEventsSeq(keys, 0, perKey) }

// healthBody reads the key and seq of a delivered health event's body.
func healthBody(body []byte) (upstream string, seq int, err error) {
	var b struct {
		Upstream string `json:"upstream_id"`
		Seq      int    `json:"seq"`
	}
	err = json.Unmarshal(body, &b)
	return b.Upstream, b.Seq, err
}

// deliverInKeyOrder produces keys×perKey health events (healthEvents) and checks that
// rc gets each key's in order and that every offset is committed.
func deliverInKeyOrder(t *testing.T, addrs []string, rc *testkit.Receiver, keys, perKey int) {
	t.Helper()
	produce(t, producer(t, addrs), healthEvents(keys, perKey)...)
	assertKeyOrder(t, rc.WaitFor(t, keys*perKey, 60*time.Second), keys)
	testkit.Eventually(t, 10*time.Second, "every offset committed", func() bool {
		return committed(t, addrs) == int64(keys*perKey)
	})
}

// assertKeyOrder checks that health events of keys keys arrived each key in seq order,
// from seq 0.
func assertKeyOrder(t *testing.T, reqs []*testkit.Request, keys int) {
	t.Helper()
	last := map[string]int{}
	for _, r := range reqs {
		upstream, seq, err := healthBody(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := last[upstream]; (ok && seq != prev+1) || (!ok && seq != 0) {
			t.Fatalf("key %s: seq %d arrived after %d", upstream, seq, prev)
		}
		last[upstream] = seq
	}
	if len(last) != keys {
		t.Fatalf("got %d keys, want %d", len(last), keys)
	}
}

func TestWebhookDeliversKongBodyWithBothSignatures(t *testing.T) {
	emb := testkit.Broker(t, 4)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := in.addHook(t, `{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"`+rc.URL+`/hook","headers":{"X-Team":"platform"},"secret":"`+secret+`"}}`)

	entity := `{"id":"0fd2","username":"Ada Lovelace","created_at":1627581878,"type":0,"active":true,"tags":null}`
	produce(t, producer(t, emb.Addrs()), &kgo.Record{
		Key:   []byte("0fd2"),
		Value: []byte(`{"id":"01JEVENT","source":"crud","event":"consumers","data":{"operation":"create","schema":"consumers","entity":` + entity + `}}`),
	})
	req := rc.WaitFor(t, 1, 20*time.Second)[0]

	var got, want map[string]any
	mustJSON(t, req.Body, &got)
	mustJSON(t, []byte(`{"source":"crud","event":"consumers","operation":"create","schema":"consumers","entity":`+entity+`}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body = %s", req.Body)
	}
	if req.Method != "POST" || req.Path != "/hook" || req.Headers["Content-Type"] != "application/json" || req.Headers["X-Team"] != "platform" {
		t.Fatalf("request = %s %s %v", req.Method, req.Path, req.Headers)
	}
	// Verify both signatures independently of the sinks package.
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(req.Body)
	if req.Headers["X-Kong-Signature"] != "sha1="+hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("X-Kong-Signature = %q", req.Headers["X-Kong-Signature"])
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	id, ts := req.Headers["Webhook-Id"], req.Headers["Webhook-Timestamp"]
	mac = hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(req.Body)))
	if req.Headers["Webhook-Signature"] != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("webhook-signature = %q for id %q ts %q", req.Headers["Webhook-Signature"], id, ts)
	}
	if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("webhook-timestamp = %q", ts)
	}
	if id == "" || id != sinks.MessageID(h.ID, &hooks.Event{Source: "crud", ID: []byte("01JEVENT")}) {
		t.Errorf("webhook-id = %q is not the stable id of (event, hook)", id)
	}
}

func TestEventsOfOneKeyArriveInOrderAndKeysInParallel(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	var inFlight testkit.Peak
	rc.Respond = func(int, *testkit.Request) int {
		inFlight.Enter()
		defer inFlight.Leave()
		time.Sleep(5 * time.Millisecond)
		return 200
	}
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)

	deliverInKeyOrder(t, emb.Addrs(), rc, 8, 40)
	if inFlight.Max() < 2 {
		t.Fatalf("deliveries of different keys never overlapped (max in flight %d)", inFlight.Max())
	}
}

// TestBacklogPausesFetchingAndLosesNothing: with queues of one batch and one record,
// polled batches overflow into the partition's backlog and fetching is paused; every
// event still arrives, in key order, and is committed.
func TestBacklogPausesFetchingAndLosesNothing(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	rc.Respond = testkit.AnswerAfter(2 * time.Millisecond)
	pauses := metrics.GetOrCreateCounter(`eventhooks_partition_fetch_pauses_total{topic="` + topics.Events[0] + `",partition="0"}`)
	before := pauses.Get()
	in := startInstance(t, emb.Addrs(), func(c *processor.Config) {
		c.Lanes, c.LaneBuffer, c.PartitionBuffer, c.MaxPollRecords = 2, 1, 1, 5
	})
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)

	deliverInKeyOrder(t, emb.Addrs(), rc, 4, 30)
	if pauses.Get() == before {
		t.Fatal("fetching was never paused: the backlog path did not run")
	}
}

// TestPartitionBufferBytesBoundsWhatIsPolled: against a slow receiver the lanes could
// hold every event of the backlog; with a byte budget the partition holds no more than
// the budget and the one poll that crossed it, and still loses nothing.
func TestPartitionBufferBytesBoundsWhatIsPolled(t *testing.T) {
	const budget, perPoll = 2048, 5
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	rc.Respond = testkit.AnswerAfter(2 * time.Millisecond)
	labels := `{topic="` + topics.Events[0] + `",partition="0"}`
	pauses := metrics.GetOrCreateCounter(`eventhooks_partition_fetch_pauses_total` + labels)
	buffered := metrics.GetOrCreateGauge(`eventhooks_partition_buffered_bytes`+labels, nil)
	before := pauses.Get()
	in := startInstance(t, emb.Addrs(), func(c *processor.Config) {
		c.PartitionBufferBytes, c.MaxPollRecords, c.CommitInterval = budget, perPoll, 5*time.Millisecond
	})
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)

	recs := healthEvents(8, 40)
	largest := 0
	for _, r := range recs {
		largest = max(largest, len(r.Key)+len(r.Value))
	}
	stop := make(chan struct{})
	peak := make(chan float64)
	go func() {
		m := 0.0
		for {
			select {
			case <-stop:
				peak <- m
				return
			case <-time.After(time.Millisecond):
				m = max(m, buffered.Get())
			}
		}
	}()
	produce(t, producer(t, emb.Addrs()), recs...)
	assertKeyOrder(t, rc.WaitFor(t, len(recs), 60*time.Second), 8)
	close(stop)
	if m, bound := <-peak, float64(budget+perPoll*largest); m > bound {
		t.Fatalf("the partition held %.0f bytes of polled records, over its budget of %d and one poll (%.0f)", m, budget, bound)
	}
	if pauses.Get() == before {
		t.Fatal("fetching was never paused for the byte budget")
	}
}

func TestMalformedRecordsAreCountedAndSkipped(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	reasons := []string{"not_json", "missing_source", "oversize"}
	before := map[string]uint64{}
	for _, r := range reasons {
		before[r] = malformed(r)
	}
	produce(t, producer(t, emb.Addrs()),
		&kgo.Record{Key: []byte("u-1"), Value: []byte(`not json at all`)},
		&kgo.Record{Key: []byte("u-1"), Value: []byte(`{"event":"health","data":{}}`)},
		&kgo.Record{Key: []byte("u-1"), Value: []byte(`{"source":"balancer","event":"health","data":{"pad":"` + strings.Repeat("x", 5000) + `"}}`)},
		healthEvent("u-1", 7),
	)
	reqs := rc.WaitFor(t, 1, 20*time.Second)
	if !strings.Contains(string(reqs[0].Body), `"seq":7`) {
		t.Fatalf("delivered %s", reqs[0].Body)
	}
	for _, r := range reasons {
		if malformed(r) != before[r]+1 {
			t.Errorf("malformed{reason=%q} = %d, want %d", r, malformed(r), before[r]+1)
		}
	}
	// Each record completes once its dead letter is acknowledged: the commit moves past all.
	testkit.Eventually(t, 20*time.Second, "offsets committed past the malformed records", func() bool {
		return committed(t, emb.Addrs()) == 4
	})
}

func malformed(reason string) uint64 {
	return metrics.GetOrCreateCounter(`eventhooks_records_malformed_total{reason="` + reason + `"}`).Get()
}

func TestTwoInstancesShareHooksAndSplitPartitions(t *testing.T) {
	emb := testkit.Broker(t, 4)
	rc := testkit.NewReceiver(t)
	a := startInstance(t, emb.Addrs())
	b := startInstance(t, emb.Addrs())
	h := a.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	testkit.Eventually(t, 10*time.Second, "second instance sees the hook", func() bool {
		_, ok := b.store.Snapshot().Get(h.ID)
		return ok
	})
	const n = 400
	produce(t, producer(t, emb.Addrs()), healthEvents(50, n/50)...)
	reqs := rc.WaitFor(t, n, 60*time.Second)
	seen := map[string]bool{}
	for _, r := range reqs {
		seen[string(r.Body)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct events delivered, want %d", len(seen), n)
	}
}

// TestRestartResumesFromCommittedOffsets stops an instance part-way and starts another:
// every event is delivered at least once.
func TestRestartResumesFromCommittedOffsets(t *testing.T) {
	emb := testkit.Broker(t, 4)
	rc := testkit.NewReceiver(t)
	var slow atomic.Bool
	slow.Store(true)
	rc.Respond = func(int, *testkit.Request) int {
		if slow.Load() {
			time.Sleep(2 * time.Millisecond)
		}
		return 200
	}
	first := startInstance(t, emb.Addrs())
	first.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	const n = 2000
	produce(t, producer(t, emb.Addrs()), healthEvents(100, n/100)...)
	rc.WaitFor(t, n/4, 60*time.Second)
	first.stop()
	slow.Store(false)
	startInstance(t, emb.Addrs())
	testkit.Eventually(t, 60*time.Second, "every event delivered", func() bool {
		seen := map[string]bool{}
		for _, r := range rc.Requests() {
			seen[string(r.Body)] = true
		}
		return len(seen) == n
	})
}

// committed sums the group's committed offsets on the events topic.
func committed(t *testing.T, addrs []string) int64 { return committedOf(t, addrs, topics.Events[0]) }

// committedOf sums the group's committed offsets on topic.
func committedOf(t *testing.T, addrs []string, topic string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "eventhooks")
	if err != nil {
		return -1
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic { // the group reads the events and the retry topic
			sum += o.At
		}
	})
	return sum
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
}

// TestTransformHandlersDeliverThroughTheBroker runs a webhook-custom hook and a lambda
// hook on the same events, through Kafka: the two share each event's lane (its template
// context and JavaScript runtime), each keeps the key's order, and the lambda's null
// drops events without blocking them.
func TestTransformHandlersDeliverThroughTheBroker(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	custom := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook-custom","config":{`+
		`"url":"`+rc.URL+`/custom/{{ .upstream_id }}","method":"POST","secret":"s3cret",`+
		`"headers":{"Content-Type":"application/json"},`+
		`"payload":{"text":"{{ hostname }}:{{ port }} is {{ health }}","seq":"{{ seq }}"}}}`)
	lambda := in.addHook(t, `{"source":"balancer","event":"health","handler":"lambda","config":{"secret":"s3cret","functions":[`+
		`"(d) => d.seq % 2 === 0 ? null : d",`+
		`"(d, event, source) => d && ({ url: \"`+rc.URL+`/lambda\", method: \"PUT\", body: { up: d.upstream_id, seq: d.seq, event, source } })"]}}`)

	cl := producer(t, emb.Addrs())
	for seq := 1; seq <= 4; seq++ {
		produce(t, cl, healthEvent("u-1", seq))
	}
	reqs := rc.WaitFor(t, 6, 20*time.Second)
	time.Sleep(200 * time.Millisecond) // nothing more may arrive
	reqs = rc.Requests()

	var customBodies, lambdaBodies []string
	for _, r := range reqs {
		switch {
		case r.Path == "/custom/u-1" && r.Method == "POST":
			customBodies = append(customBodies, string(r.Body))
			if r.Headers["Content-Type"] != "application/json" || !strings.HasPrefix(r.Headers["X-Kong-Signature"], "sha1=") {
				t.Errorf("custom request headers %v", r.Headers)
			}
		case r.Path == "/lambda" && r.Method == "PUT":
			lambdaBodies = append(lambdaBodies, string(r.Body))
			if r.Headers["Webhook-Signature"] == "" {
				t.Errorf("lambda request not signed: %v", r.Headers)
			}
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.Path)
		}
	}
	wantCustom := []string{
		`{"seq":"1","text":"api.internal:8000 is unhealthy"}`,
		`{"seq":"2","text":"api.internal:8000 is unhealthy"}`,
		`{"seq":"3","text":"api.internal:8000 is unhealthy"}`,
		`{"seq":"4","text":"api.internal:8000 is unhealthy"}`,
	}
	wantLambda := []string{
		`{"up":"u-1","seq":1,"event":"health","source":"balancer"}`,
		`{"up":"u-1","seq":3,"event":"health","source":"balancer"}`,
	}
	if strings.Join(customBodies, "\n") != strings.Join(wantCustom, "\n") {
		t.Errorf("webhook-custom bodies, in order:\n%s\nwant\n%s", strings.Join(customBodies, "\n"), strings.Join(wantCustom, "\n"))
	}
	if strings.Join(lambdaBodies, "\n") != strings.Join(wantLambda, "\n") {
		t.Errorf("lambda bodies, in order:\n%s\nwant\n%s", strings.Join(lambdaBodies, "\n"), strings.Join(wantLambda, "\n"))
	}
	// Stable ids, one per (event, hook).
	first := &hooks.Event{Source: "balancer", ID: []byte("ev-u-1-1")}
	for _, r := range reqs {
		var want string
		switch {
		case r.Path == "/custom/u-1" && strings.Contains(string(r.Body), `"seq":"1"`):
			want = sinks.MessageID(custom.ID, first)
		case r.Path == "/lambda" && strings.Contains(string(r.Body), `"seq":1,`):
			want = sinks.MessageID(lambda.ID, first)
		default:
			continue
		}
		if r.Headers["Webhook-Id"] != want {
			t.Errorf("%s: webhook-id = %q, want %q", r.Path, r.Headers["Webhook-Id"], want)
		}
	}
}
