package sinks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// pipelineSecret signs every request of these tests.
const pipelineSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// httpHook returns a validated hook of handler (webhook or webhook-custom, a JSON POST)
// to url, pipelined when pipeline is set; extra is spliced into config, hook into the
// hook. Both versions of a test share one id, so they sign alike.
func httpHook(t testing.TB, handler, url string, pipeline bool, extra, hook string) *hooks.Hook {
	t.Helper()
	cfg := `"url":` + quote(url) + `,"secret":"` + pipelineSecret + `"` + extra
	if handler == hooks.HandlerWebhookCustom {
		cfg += `,"method":"POST","headers":{"Content-Type":"application/json"},"body":"{\"u\":\"{{ entity.username }}\"}"`
	}
	if pipeline {
		cfg += `,"pipeline":true`
	}
	return mustHook(t, `{"id":"4a8c2b1e-0000-4000-8000-00000000000a","source":"crud","event":"consumers",`+
		`"handler":"`+handler+`","config":{`+cfg+`}`+hook+`}`)
}

// TestPipelineSignsAsKeepAlive delivers one event with and without pipelining: the
// receiver gets the same body, headers and signatures (timestamps aside).
func TestPipelineSignsAsKeepAlive(t *testing.T) {
	for _, handler := range []string{hooks.HandlerWebhook, hooks.HandlerWebhookCustom} {
		t.Run(handler, func(t *testing.T) {
			ts := startServer(t, nil)
			p := newPool(t, PoolConfig{})
			ev := newEvent(t, "crud", "consumers", consumerData)
			var got [2]received
			for i, pipelined := range []bool{false, true} {
				s := mustCompile(t, httpHook(t, handler, ts.url+"/in", pipelined, "", ""), p)
				if res := s.Deliver(context.Background(), ev, nil); !res.Delivered {
					t.Fatalf("pipeline=%v: %+v", pipelined, res)
				}
				got[i] = ts.next(t)
			}
			plain, piped := got[0], got[1]
			if string(piped.body) != string(plain.body) || piped.uri != plain.uri || piped.method != plain.method {
				t.Errorf("pipelined request %s %s %s, keep-alive %s %s %s", piped.method, piped.uri, piped.body, plain.method, plain.uri, plain.body)
			}
			for _, name := range []string{"x-kong-signature", "webhook-id", "content-type", "user-agent", "content-length"} {
				if piped.header(name) != plain.header(name) || piped.header(name) == "" {
					t.Errorf("%s: pipelined %q, keep-alive %q", name, piped.header(name), plain.header(name))
				}
			}
			ok, err := verifyStandard(pipelineSecret, piped.header("webhook-id"), piped.header("webhook-timestamp"), piped.body, piped.header("webhook-signature"))
			if err != nil || !ok {
				t.Errorf("webhook-signature of the pipelined request does not verify: %v", err)
			}
		})
	}
}

// connServer is a fasthttp receiver that answers 200 after delay and counts the
// connections it was sent requests on, and those open.
type connServer struct {
	url   string
	mu    sync.Mutex
	conns map[uint64]int // requests per connection id
	open  atomic.Int64
	seen  sync.Map // body → true, every request answered 200
	hits  atomic.Int64
	// hijackEvery, when set, makes every n-th request close its connection unanswered
	// (and with it the requests pipelined behind it).
	hijackEvery int64
	delay       time.Duration
}

func startConnServer(t testing.TB, delay time.Duration, hijackEvery int64) *connServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &connServer{url: "http://" + ln.Addr().String(), conns: map[uint64]int{}, delay: delay, hijackEvery: hijackEvery}
	srv := &fasthttp.Server{Handler: cs.handle, ConnState: func(_ net.Conn, s fasthttp.ConnState) {
		switch s {
		case fasthttp.StateNew:
			cs.open.Add(1)
		case fasthttp.StateClosed, fasthttp.StateHijacked:
			cs.open.Add(-1)
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return cs
}

func (cs *connServer) handle(ctx *fasthttp.RequestCtx) {
	if n := cs.hits.Add(1); cs.hijackEvery > 0 && n%cs.hijackEvery == 0 {
		ctx.HijackSetNoResponse(true) // unanswered
		ctx.Hijack(func(c net.Conn) { _ = c.Close() })
		return
	}
	time.Sleep(cs.delay)
	cs.mu.Lock()
	cs.conns[ctx.ConnID()]++
	cs.mu.Unlock()
	cs.seen.Store(string(ctx.PostBody()), true)
}

func (cs *connServer) connections() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.conns)
}

// deliverAll delivers n events (data {"i": …}) with senders goroutines, each retrying a
// retryable failure until delivered, as the processor would. It returns the failures
// seen; a permanent one fails t.
func deliverAll(t *testing.T, s Sink, n, senders int) (failures int64) {
	t.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			lane := &Lane{}
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				ev, err := decodeEvent("crud", "consumers", `{"i":`+strconv.FormatInt(i, 10)+`}`)
				if err != nil {
					t.Error(err)
					return
				}
				for attempt := 0; ; attempt++ {
					res := s.Deliver(context.Background(), ev, lane)
					if res.Delivered {
						break
					}
					failed.Add(1)
					if !res.Retryable || attempt == 50 {
						t.Errorf("event %d, attempt %d: %+v", i, attempt, res)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return failed.Load()
}

// TestPipelineSharesConnections: many concurrent deliveries go over the hook's
// pipeline_max_conns connections, every one of them arriving.
func TestPipelineSharesConnections(t *testing.T) {
	cs := startConnServer(t, time.Millisecond, 0)
	p := newPool(t, PoolConfig{DisableBreaker: true})
	s := mustCompile(t, httpHook(t, hooks.HandlerWebhook, cs.url, true, `,"pipeline_max_conns":2`, ""), p)
	const n = 400
	if f := deliverAll(t, s, n, 32); f != 0 {
		t.Errorf("%d failed attempts against a healthy receiver", f)
	}
	if got := cs.connections(); got < 1 || got > 2 {
		t.Errorf("32 concurrent senders used %d connections, want 1 or 2 (pipeline_max_conns)", got)
	}
	assertAllSeen(t, cs, n)
}

func assertAllSeen(t *testing.T, cs *connServer, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		body := `{"source":"crud","event":"consumers","i":` + strconv.Itoa(i) + `}`
		if _, ok := cs.seen.Load(body); !ok {
			t.Errorf("event %d never answered 200 (want %s)", i, body)
			return
		}
	}
}

// TestPipelineConnectionClosedMidPipeline: a receiver that drops its connection with
// requests pipelined behind the one it was answering gives retryable failures, and once
// retried every event has arrived.
func TestPipelineConnectionClosedMidPipeline(t *testing.T) {
	cs := startConnServer(t, 200*time.Microsecond, 25)
	p := newPool(t, PoolConfig{DisableBreaker: true})
	s := mustCompile(t, httpHook(t, hooks.HandlerWebhook, cs.url, true, `,"pipeline_max_conns":1`, ""), p)
	const n = 300
	failures := deliverAll(t, s, n, 16)
	if failures == 0 {
		t.Errorf("no failed attempt although the receiver dropped %d connections", cs.hits.Load()/25)
	}
	assertAllSeen(t, cs, n)
	t.Logf("%d retryable failures over %d requests", failures, cs.hits.Load())
}

// TestPipelineClassifiesAsKeepAlive: what cannot be delivered is classified the same
// with and without pipelining — refused connection, the SSRF guard, a timeout, a 503.
func TestPipelineClassifiesAsKeepAlive(t *testing.T) {
	refused := closedPort(t)
	hang := startServer(t, func(*fasthttp.RequestCtx) { time.Sleep(time.Second) })
	unavailable := statusServer(t, nil)
	guard := NewGuard([]netip.Prefix{})
	for _, tc := range []struct {
		name             string
		url              string
		guard            *Guard
		retryable        bool
		permanent, timed bool
		status           int
	}{
		{"refused", "http://" + refused + "/", nil, true, false, false, 0},
		{"guard", "http://" + refused + "/", guard, false, true, false, 0},
		{"timeout", hang.url + "/", nil, true, false, true, 0},
		{"503", unavailable.url + "/503", nil, true, false, false, 503},
		{"404", unavailable.url + "/404", nil, false, true, false, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, PoolConfig{Guard: tc.guard, DisableBreaker: true})
			ev := newEvent(t, "crud", "consumers", consumerData)
			for _, pipelined := range []bool{false, true} {
				s := mustCompile(t, httpHook(t, hooks.HandlerWebhook, tc.url, pipelined, "", `,"timeout_ms":300`), p)
				res := s.Deliver(context.Background(), ev, nil)
				if res.Delivered || res.Retryable != tc.retryable || errors.Is(res.Err, ErrPermanent) != tc.permanent ||
					errors.Is(res.Err, ErrTimeout) != tc.timed || res.Status != tc.status {
					t.Errorf("pipeline=%v: %+v (%v)", pipelined, res, res.Err)
				}
				if !tc.timed && res.Duration >= 300*time.Millisecond { // the hook's timeout_ms
					t.Errorf("pipeline=%v: took %v: a dial error must not wait for the timeout", pipelined, res.Duration)
				}
			}
		})
	}
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestPipelineClosedWithItsHookVersion: once a compiled sink is garbage (its hook
// version replaced), its pipelined connections close.
func TestPipelineClosedWithItsHookVersion(t *testing.T) {
	cs := startConnServer(t, 0, 0)
	p := newPool(t, PoolConfig{})
	func() {
		s := mustCompile(t, httpHook(t, hooks.HandlerWebhook, cs.url, true, "", ""), p)
		if res := s.Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), nil); !res.Delivered {
			t.Fatal(res)
		}
	}()
	if cs.open.Load() == 0 {
		t.Fatal("no connection open after a delivery")
	}
	testkit.Eventually(t, 20*time.Second, "the replaced hook's connection to close", func() bool {
		runtime.GC()
		return cs.open.Load() == 0
	})
}

// TestPipelineDeliveryAllocs: a pipelined delivery allocates no more than a keep-alive
// one, once the pools are warm.
func TestPipelineDeliveryAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	url := startConnServer(t, 0, 0).url
	p := newPool(t, PoolConfig{})
	ev := benchEvent(t)
	lane := &Lane{}
	var allocs [2]float64
	for i, pipelined := range []bool{false, true} {
		s := mustCompile(t, httpHook(t, hooks.HandlerWebhook, url, pipelined, "", ""), p)
		allocs[i] = testing.AllocsPerRun(200, func() {
			if res := s.Deliver(context.Background(), ev, lane); !res.Delivered {
				t.Fatal(res)
			}
		})
	}
	if allocs[1] > allocs[0] {
		t.Errorf("pipelined delivery: %v allocs/op, keep-alive %v", allocs[1], allocs[0])
	}
}

// BenchmarkDeliverPipelined compares a pipelined hook with a keep-alive one, both
// signed POSTs to a local receiver from parallel senders (as lanes send).
func BenchmarkDeliverPipelined(b *testing.B) {
	url := benchReceiver(b) + "/hook"
	ctx := context.Background()
	for _, tc := range []struct{ name, extra string }{
		{"keep-alive", ""},
		{"pipelined", `,"pipeline":true`},
		{"pipelined-1conn", `,"pipeline":true,"pipeline_max_conns":1`},
	} {
		s := mustCompile(b, webhookHook(b, url, `,"secret":"`+benchSecret+`"`+tc.extra, ""), newPool(b, PoolConfig{}))
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				ev := benchEvent(b) // one event per goroutine, as lanes own theirs
				lane := &Lane{}
				for pb.Next() {
					if res := s.Deliver(ctx, ev, lane); !res.Delivered {
						b.Error(res.Err)
						return
					}
				}
			})
		})
	}
}
