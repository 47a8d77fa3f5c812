package sinks_test

// A pipelined hook through the processor, on the embedded broker and a real receiver:
// in its own package because the processor imports sinks.

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
	"github.com/eventhooks/eventhooks/sinks"
)

const e2eSecret = "pipeline-secret"

// orderReceiver records the (key, seq) of every request it answers 200, in the order it
// answers them, and checks its Kong signature. With dropEvery, every n-th request closes
// its connection unanswered, with whatever was pipelined behind it.
type orderReceiver struct {
	url       string
	dropEvery int
	mu        sync.Mutex
	n         int
	seqs      map[string][]int
	distinct  map[string]bool
	badSig    int
}

func startOrderReceiver(t *testing.T, dropEvery int) *orderReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &orderReceiver{url: "http://" + ln.Addr().String() + "/in", dropEvery: dropEvery, seqs: map[string][]int{}, distinct: map[string]bool{}}
	srv := &fasthttp.Server{Handler: r.handle}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return r
}

func (r *orderReceiver) handle(ctx *fasthttp.RequestCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.dropEvery > 0 && r.n%r.dropEvery == 0 {
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { _ = c.Close() })
		return
	}
	body := ctx.PostBody()
	m := hmac.New(sha1.New, []byte(e2eSecret))
	m.Write(body)
	if string(ctx.Request.Header.Peek("X-Kong-Signature")) != "sha1="+hex.EncodeToString(m.Sum(nil)) {
		r.badSig++
	}
	var ev struct {
		Key string `json:"upstream_id"`
		Seq int    `json:"seq"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	r.seqs[ev.Key] = append(r.seqs[ev.Key], ev.Seq)
	r.distinct[fmt.Sprint(ev.Key, "/", ev.Seq)] = true
}

func (r *orderReceiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.distinct)
}

// TestPipelinedHookThroughTheProcessor: every event reaches a pipelined hook, signed,
// in order per key — also when the receiver drops connections mid-pipeline (the
// failed attempts are retried, parked behind their key when the quick retries fail).
func TestPipelinedHookThroughTheProcessor(t *testing.T) {
	const keys, perKey = 12, 20
	for _, tc := range []struct {
		name      string
		dropEvery int
	}{
		{"healthy receiver", 0},
		{"receiver drops connections mid-pipeline", 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emb := testkit.Broker(t, 4)
			rcv := startOrderReceiver(t, tc.dropEvery)
			store := startProcessor(t, emb.Addrs())
			putHook(t, store, `{"source":"balancer","event":"health","handler":"webhook",`+
				`"retry":{"initial_backoff_ms":20,"max_backoff_ms":200,"max_attempts":100},`+
				`"config":{"url":"`+rcv.url+`","secret":"`+e2eSecret+`","pipeline":true,"pipeline_max_conns":1}}`)
			produceInterleaved(t, emb.Addrs(), keys, perKey)

			testkit.Eventually(t, 90*time.Second, "every event delivered", func() bool { return rcv.delivered() == keys*perKey })
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if rcv.badSig > 0 {
				t.Errorf("%d requests with a wrong X-Kong-Signature", rcv.badSig)
			}
			for k, seqs := range rcv.seqs {
				if got := collapse(seqs); len(got) != perKey || !ascending(got) {
					t.Errorf("key %s arrived in the order %v", k, seqs)
				}
			}
			if tc.dropEvery > 0 && rcv.n <= keys*perKey {
				t.Errorf("%d requests for %d events: no delivery was retried", rcv.n, keys*perKey)
			}
		})
	}
}

// collapse drops consecutive repeats (a redelivery right after its first delivery).
func collapse(seqs []int) []int {
	var out []int
	for i, s := range seqs {
		if i == 0 || s != seqs[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func ascending(seqs []int) bool {
	for i, s := range seqs {
		if s != i {
			return false
		}
	}
	return true
}

// startProcessor runs a processor with its hook store on addrs until the test ends, and
// returns the store.
func startProcessor(t *testing.T, addrs []string) *hooks.Store {
	t.Helper()
	topics := broker.NewTopics("", nil)
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool := sinks.NewPool(sinks.PoolConfig{BreakerCooldown: 20 * time.Millisecond, BreakerMaxCooldown: 100 * time.Millisecond})
	t.Cleanup(pool.Close)
	cat := hooks.NewCatalogue()
	proc, err := processor.New(processor.Config{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(addrs...)}, Topics: topics.Events,
		CommitInterval: 100 * time.Millisecond, Catalogue: cat, Logger: log,
		Compile:    func(h *hooks.Hook) (sinks.Sink, error) { return sinks.Compile(h, pool, log) },
		RetryTopic: topics.Retry, DLQTopic: topics.DLQ, StateTopic: topics.State,
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...)}, hooks.StoreClientOpts(topics.Hooks)...)...)
	if err != nil {
		t.Fatal(err)
	}
	store := hooks.NewStore(cl, topics.Hooks, cat, log, proc.ApplyHooks)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = store.Run(ctx) }()
	<-store.Loaded()
	go func() {
		defer close(done)
		defer cl.Close()
		if err := proc.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; proc.Close() })
	testkit.Eventually(t, 30*time.Second, "group join", proc.Joined)
	return store
}

func putHook(t *testing.T, store *hooks.Store, body string) {
	t.Helper()
	h, err := hooks.ParseHook([]byte(body))
	if err == nil {
		err = hooks.Validate(h, nil, time.Now())
	}
	if err == nil {
		err = store.Put(context.Background(), h)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// produceInterleaved produces perKey health events for each of keys keys: seq 0 of every
// key, then seq 1, and so on.
func produceInterleaved(t *testing.T, addrs []string, keys, perKey int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(broker.NewTopics("", nil).Events[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for seq := range perKey {
		for k := range keys {
			key := fmt.Sprintf("u-%d", k)
			v := fmt.Sprintf(`{"source":"balancer","event":"health","data":{"upstream_id":%q,"health":"unhealthy","seq":%d}}`, key, seq)
			recs = append(recs, &kgo.Record{Key: []byte(key), Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
