package sinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// metricValue returns the value of series name in p's metrics, or -1 when absent.
func metricValue(t *testing.T, p *Pool, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	p.metrics.WritePrometheus(&buf)
	for line := range strings.Lines(buf.String()) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

func breakerState(t *testing.T, p *Pool, addr string) float64 {
	t.Helper()
	return metricValue(t, p, `eventhooks_breaker_state{destination="`+addr+`"}`)
}

// switchServer answers with the status held in code, counting the requests it gets.
type switchServer struct {
	*testServer
	code atomic.Int32
	hits atomic.Int32
}

func startSwitchServer(t *testing.T, code int) *switchServer {
	s := &switchServer{}
	s.code.Store(int32(code))
	s.testServer = startServer(t, func(ctx *fasthttp.RequestCtx) {
		s.hits.Add(1)
		ctx.SetStatusCode(int(s.code.Load()))
	})
	return s
}

// flakyDialer dials 127.0.0.1 addresses for a Pool, refusing every connection while down
// (a connection-level failure, the destination's fault) and counting the dials.
type flakyDialer struct {
	down  atomic.Bool
	dials atomic.Int32
}

func (d *flakyDialer) dial(addr string) (net.Conn, error) {
	d.dials.Add(1)
	if d.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	return net.Dial("tcp", addr)
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	ts := startSwitchServer(t, 200)
	var fd flakyDialer
	fd.down.Store(true)
	const cooldown = 100 * time.Millisecond
	p := newPool(t, PoolConfig{BreakerCooldown: cooldown, BreakerMaxCooldown: 10 * cooldown, Dial: fd.dial})
	// Connection: close makes every attempt dial.
	s := mustCompile(t, webhookHook(t, ts.url+"/hook", `,"headers":{"Connection":"close"}`, ""), p)
	ev := newEvent(t, "crud", "consumers", consumerData)
	deliver := func() Result { return s.Deliver(context.Background(), ev, nil) }

	if got := breakerState(t, p, ts.addr); got != 0 {
		t.Fatalf("state gauge = %v at creation, want 0 (closed)", got)
	}
	for i := range DefaultBreakerThreshold {
		if res := deliver(); res.Status != 0 || !res.Retryable || errors.Is(res.Err, ErrCircuitOpen) {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if got := breakerState(t, p, ts.addr); got != 2 {
		t.Fatalf("state gauge = %v after %d failures, want 2 (open)", got, DefaultBreakerThreshold)
	}

	// Open: fail fast, nothing sent (the dials below), whatever the clock says.
	res := deliver()
	if res.Delivered || !res.Retryable || res.Status != 0 || !errors.Is(res.Err, ErrCircuitOpen) || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("open breaker: result = %+v", res)
	}
	if !strings.Contains(res.Err.Error(), "destination "+ts.addr) {
		t.Errorf("err %q does not name the destination", res.Err)
	}
	if res.RetryAfter <= 0 || res.RetryAfter > cooldown {
		t.Errorf("RetryAfter = %v, want the rest of the %v cooldown", res.RetryAfter, cooldown)
	}
	if got := fd.dials.Load(); got != DefaultBreakerThreshold {
		t.Errorf("%d dials, want %d", got, DefaultBreakerThreshold)
	}
	if got := metricValue(t, p, `eventhooks_breaker_rejections_total{destination="`+ts.addr+`"}`); got != 1 {
		t.Errorf("rejections = %v, want 1", got)
	}

	// After the cooldown one probe goes through; it fails and the cooldown doubles.
	time.Sleep(cooldown + 10*time.Millisecond)
	if res := deliver(); res.Status != 0 || errors.Is(res.Err, ErrCircuitOpen) {
		t.Fatalf("probe: result = %+v", res)
	}
	if got := fd.dials.Load(); got != DefaultBreakerThreshold+1 {
		t.Fatalf("%d dials, want the probe too", got)
	}
	res = deliver()
	if !errors.Is(res.Err, ErrCircuitOpen) || res.RetryAfter <= cooldown {
		t.Fatalf("after a failed probe: result = %+v, want open for about %v", res, 2*cooldown)
	}

	// The destination recovers: the next probe closes the breaker.
	fd.down.Store(false)
	time.Sleep(res.RetryAfter + 10*time.Millisecond)
	if res := deliver(); !res.Delivered {
		t.Fatalf("probe after recovery: %+v", res)
	}
	if got := breakerState(t, p, ts.addr); got != 0 {
		t.Errorf("state gauge = %v after a good probe, want 0", got)
	}
	for range 3 {
		if res := deliver(); !res.Delivered {
			t.Fatalf("closed again: %+v", res)
		}
	}

	// Closed resets the count: it takes a full threshold of failures to open again.
	fd.down.Store(true)
	for i := range DefaultBreakerThreshold {
		if res := deliver(); res.Status != 0 || errors.Is(res.Err, ErrCircuitOpen) {
			t.Fatalf("attempt %d after recovery: %+v", i, res)
		}
	}
	if res := deliver(); !errors.Is(res.Err, ErrCircuitOpen) || res.RetryAfter > cooldown {
		t.Errorf("re-opened: result = %+v, want the base cooldown again", res)
	}

	// The series are in the global registry until the pool closes.
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	if !strings.Contains(buf.String(), `eventhooks_breaker_state{destination="`+ts.addr+`"} 2`) {
		t.Errorf("global metrics lack the breaker state:\n%s", buf.String())
	}
	p.Close()
	buf.Reset()
	metrics.WritePrometheus(&buf, false)
	if strings.Contains(buf.String(), ts.addr) {
		t.Error("a closed pool's series are still exported")
	}
}

// TestHookBreakerOpensAndRecovers: HTTP status failures open the hook's own breaker,
// which names the hook, leaves the destination's alone and recovers like it.
func TestHookBreakerOpensAndRecovers(t *testing.T) {
	ts := startSwitchServer(t, 503)
	const cooldown = 100 * time.Millisecond
	p := newPool(t, PoolConfig{BreakerCooldown: cooldown, BreakerMaxCooldown: 10 * cooldown})
	h := webhookHook(t, ts.url+"/hook", "", "")
	s := mustCompile(t, h, p)
	ev := newEvent(t, "crud", "consumers", consumerData)
	deliver := func() Result { return s.Deliver(context.Background(), ev, nil) }
	for i := range DefaultBreakerThreshold {
		if res := deliver(); res.Status != 503 || !res.Retryable {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	res := deliver()
	if res.Delivered || !res.Retryable || res.Status != 0 || !errors.Is(res.Err, ErrCircuitOpen) {
		t.Fatalf("open hook breaker: result = %+v", res)
	}
	if !strings.Contains(res.Err.Error(), "hook "+h.ID) || strings.Contains(res.Err.Error(), "destination") {
		t.Errorf("err %q does not name the hook", res.Err)
	}
	if res.RetryAfter <= 0 || res.RetryAfter > cooldown {
		t.Errorf("RetryAfter = %v, want the rest of the %v cooldown", res.RetryAfter, cooldown)
	}
	if got := ts.hits.Load(); got != DefaultBreakerThreshold {
		t.Errorf("receiver saw %d requests, want %d", got, DefaultBreakerThreshold)
	}
	if got := breakerState(t, p, ts.addr); got != 0 {
		t.Errorf("destination state gauge = %v, want 0: the destination answered", got)
	}
	if got := metricValue(t, p, `eventhooks_breaker_rejections_total{destination="`+ts.addr+`"}`); got != 0 {
		t.Errorf("destination rejections = %v, want 0", got)
	}

	// A failed probe doubles the cooldown; a good one closes the breaker.
	time.Sleep(res.RetryAfter + 10*time.Millisecond)
	if res := deliver(); res.Status != 503 {
		t.Fatalf("probe: %+v", res)
	}
	if res = deliver(); !errors.Is(res.Err, ErrCircuitOpen) || res.RetryAfter <= cooldown {
		t.Fatalf("after a failed probe: %+v, want open for about %v", res, 2*cooldown)
	}
	ts.code.Store(200)
	time.Sleep(res.RetryAfter + 10*time.Millisecond)
	for i := range 3 {
		if res := deliver(); !res.Delivered {
			t.Fatalf("delivery %d after recovery: %+v", i, res)
		}
	}
}

// TestHookBreakerSparesOtherPaths: hook A's path answers 503 until its breaker opens;
// hook B, on the same host:port, still delivers every request.
func TestHookBreakerSparesOtherPaths(t *testing.T) {
	var aHits, bHits atomic.Int32
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/a" {
			aHits.Add(1)
			ctx.SetStatusCode(503)
			return
		}
		bHits.Add(1)
	})
	p := newPool(t, PoolConfig{BreakerThreshold: 3, BreakerCooldown: time.Minute, BreakerMaxCooldown: time.Minute})
	a := mustCompile(t, webhookHook(t, ts.url+"/a", "", ""), p)
	b := mustCompile(t, webhookHook(t, ts.url+"/b", "", ""), p)
	ev := newEvent(t, "crud", "consumers", consumerData)
	lane := &Lane{AvoidProbes: true} // the processor's lanes that park
	const rounds = 20
	opened := false
	for i := range rounds {
		ra := a.Deliver(context.Background(), ev, lane)
		if ra.Delivered {
			t.Fatalf("round %d: hook a delivered", i)
		}
		if errors.Is(ra.Err, ErrCircuitOpen) {
			opened = true
			if !strings.Contains(ra.Err.Error(), "for hook") {
				t.Errorf("round %d: hook a rejected by %q, want its own breaker", i, ra.Err)
			}
		}
		if rb := b.Deliver(context.Background(), ev, lane); !rb.Delivered {
			t.Fatalf("round %d (a's breaker open: %v): hook b: %+v", i, opened, rb)
		}
	}
	// A hook starts unproven: its first request probes; once it failed, a lane that
	// avoids probes is turned away (the retry scheduler probes).
	if !opened || aHits.Load() != 1 {
		t.Errorf("hook a: breaker opened %v after %d requests, want turned away after its first", opened, aHits.Load())
	}
	if bHits.Load() != rounds {
		t.Errorf("hook b: %d requests received, want %d", bHits.Load(), rounds)
	}
	if got := breakerState(t, p, ts.addr); got != 0 {
		t.Errorf("destination state = %v, want 0", got)
	}
}

func TestBreakerFailureKinds(t *testing.T) {
	ev := newEvent(t, "crud", "consumers", consumerData)
	for _, tc := range []struct {
		code  int
		trips bool
	}{
		{400, false},
		{401, false},
		{404, false},
		{408, false},
		{429, true},
		{500, true},
		{503, true},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			ts := startSwitchServer(t, tc.code)
			p := newPool(t, PoolConfig{})
			s := mustCompile(t, webhookHook(t, ts.url, "", ""), p)
			for range 2 * DefaultBreakerThreshold {
				s.Deliver(context.Background(), ev, nil)
			}
			want := int32(2 * DefaultBreakerThreshold)
			switch {
			case tc.code == 429: // the hook's rate limiter obeys it at once, before its breaker counts
				want = 1
			case tc.trips:
				want = DefaultBreakerThreshold
			}
			if got := ts.hits.Load(); got != want {
				t.Errorf("receiver saw %d requests, want %d", got, want)
			}
		})
	}

	t.Run("healthy answer resets the count", func(t *testing.T) {
		ts := startSwitchServer(t, 503)
		p := newPool(t, PoolConfig{})
		s := mustCompile(t, webhookHook(t, ts.url, "", ""), p)
		for i := range 3 * DefaultBreakerThreshold {
			ts.code.Store(503)
			if i%DefaultBreakerThreshold == DefaultBreakerThreshold-1 {
				ts.code.Store(400)
			}
			if res := s.Deliver(context.Background(), ev, nil); errors.Is(res.Err, ErrCircuitOpen) {
				t.Fatalf("attempt %d: opened, though no %d failures were consecutive", i, DefaultBreakerThreshold)
			}
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := newPool(t, PoolConfig{})
		s := mustCompile(t, webhookHook(t, "http://"+addr+"/", "", ""), p)
		for i := range DefaultBreakerThreshold {
			if res := s.Deliver(context.Background(), ev, nil); errors.Is(res.Err, ErrCircuitOpen) {
				t.Fatalf("attempt %d: opened early", i)
			}
		}
		if res := s.Deliver(context.Background(), ev, nil); !errors.Is(res.Err, ErrCircuitOpen) {
			t.Errorf("after %d refused connections: %+v", DefaultBreakerThreshold, res)
		}
	})

	t.Run("disabled", func(t *testing.T) {
		ts := startSwitchServer(t, 503)
		p := newPool(t, PoolConfig{DisableBreaker: true})
		s := mustCompile(t, webhookHook(t, ts.url, "", ""), p)
		for range 2 * DefaultBreakerThreshold {
			if res := s.Deliver(context.Background(), ev, nil); errors.Is(res.Err, ErrCircuitOpen) {
				t.Fatal("disabled breaker opened")
			}
		}
		if got := ts.hits.Load(); got != 2*DefaultBreakerThreshold {
			t.Errorf("receiver saw %d requests", got)
		}
		if p.metrics != nil {
			t.Error("disabled breakers still have metrics")
		}
	})
}

func TestBreakerPerDestination(t *testing.T) {
	// Two hooks on one unreachable destination share its breaker; another destination
	// is unaffected.
	bad, good := startSwitchServer(t, 200), startSwitchServer(t, 200)
	var fd flakyDialer
	p := newPool(t, PoolConfig{BreakerThreshold: 2, Dial: func(addr string) (net.Conn, error) {
		if addr == bad.addr {
			fd.down.Store(true)
		} else {
			fd.down.Store(false)
		}
		return fd.dial(addr)
	}})
	ev := newEvent(t, "crud", "consumers", consumerData)
	a := mustCompile(t, webhookHook(t, bad.url+"/a", "", ""), p)
	b := mustCompile(t, webhookHook(t, bad.url+"/b", "", ""), p)
	c := mustCompile(t, webhookHook(t, good.url+"/c", "", ""), p)
	a.Deliver(context.Background(), ev, nil)
	b.Deliver(context.Background(), ev, nil)
	if res := a.Deliver(context.Background(), ev, nil); !errors.Is(res.Err, ErrCircuitOpen) || !strings.Contains(res.Err.Error(), "destination") {
		t.Errorf("hook a: %+v", res)
	}
	if res := c.Deliver(context.Background(), ev, nil); !res.Delivered {
		t.Errorf("other destination: %+v", res)
	}
	if got := breakerState(t, p, good.addr); got != 0 {
		t.Errorf("other destination's state = %v", got)
	}
}

func TestBreakerConcurrent(t *testing.T) {
	// While open and half-open, many lanes delivering at once let exactly one probe
	// reach the receiver at a time.
	var healthy atomic.Bool
	var hits atomic.Int32
	var inflight testkit.Peak
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) {
		hits.Add(1)
		if healthy.Load() {
			return
		}
		inflight.Enter()
		defer inflight.Leave()
		time.Sleep(10 * time.Millisecond)
		ctx.SetStatusCode(503)
	})
	p := newPool(t, PoolConfig{BreakerCooldown: 30 * time.Millisecond, BreakerMaxCooldown: 60 * time.Millisecond})
	s := mustCompile(t, webhookHook(t, ts.url, "", ""), p)

	ev := newEvent(t, "crud", "consumers", consumerData)
	for range DefaultBreakerThreshold {
		s.Deliver(context.Background(), ev, nil)
	}
	inflight.Reset()
	hits.Store(0)

	const lanes = 16
	run := func(until func(Result) bool, d time.Duration) (rejected, sent int64) {
		var wg sync.WaitGroup
		var rej, snt atomic.Int64
		stop := time.Now().Add(d)
		for range lanes {
			wg.Go(func() {
				ev := newEvent(t, "crud", "consumers", consumerData) // lanes own their events
				for time.Now().Before(stop) {
					res := s.Deliver(context.Background(), ev, nil)
					if errors.Is(res.Err, ErrCircuitOpen) {
						rej.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					snt.Add(1)
					if until != nil && until(res) {
						return
					}
				}
			})
		}
		wg.Wait()
		return rej.Load(), snt.Load()
	}

	rejected, sent := run(nil, 300*time.Millisecond)
	if got := inflight.Max(); got != 1 {
		t.Errorf("%d requests in flight at once while open, want 1 probe", got)
	}
	if sent < 1 || sent > 10 || int64(hits.Load()) != sent {
		t.Errorf("%d probes sent (%d received) in 300ms with a 30-60ms cooldown", sent, hits.Load())
	}
	if rejected == 0 {
		t.Error("nothing was rejected")
	}

	healthy.Store(true)
	run(func(res Result) bool { return res.Delivered }, 2*time.Second)
	if got := breakerState(t, p, ts.addr); got != 0 {
		t.Errorf("state = %v after recovery, want 0", got)
	}
	if res := s.Deliver(context.Background(), ev, nil); !res.Delivered {
		t.Errorf("after recovery: %+v", res)
	}
}

func TestBreakerStateMachine(t *testing.T) {
	rej := metrics.NewSet().NewCounter("r")
	b := newBreaker(breakerConfig{threshold: 3, cooldown: 20 * time.Millisecond, maxCooldown: 50 * time.Millisecond}, "x:1", rej)
	pass := func() ticket {
		t.Helper()
		return b.allow(false, 0).ticket
	}
	for range 2 {
		b.record(pass(), verdictFailure)
	}
	b.record(pass(), verdictNeutral) // neither counts nor resets
	b.record(pass(), verdictFailure)
	if b.state.Load() != breakerOpen {
		t.Fatalf("state %d after 3 failures", b.state.Load())
	}
	if tk := pass(); tk != ticketRejected {
		t.Fatalf("open: ticket %d", tk)
	}

	cooldowns := []time.Duration{40 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
	for _, want := range cooldowns {
		time.Sleep(time.Duration(b.openUntil.Load() - b.now()))
		probe := pass()
		if probe != ticketProbe || b.state.Load() != breakerHalfOpen {
			t.Fatalf("after cooldown: ticket %d state %d", probe, b.state.Load())
		}
		if a := b.allow(false, 0); a.ticket != ticketRejected || a.wait != 0 || a.probeDone == nil {
			t.Fatalf("second request while probing: %+v", a)
		}
		b.record(ticketPass, verdictHealthy) // a request from before the trip: ignored
		b.record(probe, verdictFailure)
		b.mu.Lock()
		got := b.cooldown
		b.mu.Unlock()
		if got != want || b.state.Load() != breakerOpen {
			t.Fatalf("failed probe: cooldown %v state %d, want %v open", got, b.state.Load(), want)
		}
	}

	// A neutral probe (say, the guard refused it) lets the next request probe.
	time.Sleep(time.Duration(b.openUntil.Load() - b.now()))
	b.record(pass(), verdictNeutral)
	probe := pass()
	if probe != ticketProbe {
		t.Fatalf("after a neutral probe: ticket %d", probe)
	}
	b.record(probe, verdictHealthy)
	if b.state.Load() != breakerClosed || b.failures.Load() != 0 || b.cooldown != 20*time.Millisecond {
		t.Fatalf("healthy probe: state %d failures %d cooldown %v", b.state.Load(), b.failures.Load(), b.cooldown)
	}
	if rej.Get() != 4 {
		t.Errorf("rejections = %d, want 4", rej.Get())
	}

	var nilBreaker *breaker
	if a := nilBreaker.allow(true, 0); a.ticket != ticketPass {
		t.Error("nil breaker rejected")
	}
	nilBreaker.record(ticketPass, verdictFailure)
}

func TestBreakerVerdict(t *testing.T) {
	const (
		n = verdictNeutral
		h = verdictHealthy
		f = verdictFailure
	)
	for _, tc := range []struct {
		name       string
		status     int
		err        error
		dest, hook verdict
	}{
		{"200", 200, nil, h, h},
		{"301", 301, nil, h, h},
		{"400", 400, nil, h, h},
		{"404", 404, nil, h, h},
		{"408", 408, nil, h, h},
		// Status failures are the hook's, never the destination's.
		{"429", 429, nil, h, f},
		{"500", 500, nil, h, f},
		{"503", 503, nil, h, f},
		{"101 final", 101, nil, h, f},
		// Connection-level failures are the destination's, and say nothing of the hook.
		{"timeout", 0, fasthttp.ErrTimeout, f, n},
		{"dial timeout", 0, fasthttp.ErrDialTimeout, f, n},
		{"refused", 0, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, f, n},
		{"closed", 0, fasthttp.ErrConnectionClosed, f, n},
		{"dns", 0, &net.DNSError{Err: "no such host", IsNotFound: true}, f, n},
		{"no free conns", 0, fasthttp.ErrNoFreeConns, n, n},
		{"canceled", 0, context.Canceled, n, n},
		{"guard", 0, &refusedError{msg: "refused"}, n, n},
		{"dial permanent", 0, fmt.Errorf("x: %w", ErrPermanent), n, n},
		{"2xx body too large", 200, fasthttp.ErrBodyTooLarge, h, h},
		{"503 body too large", 503, fasthttp.ErrBodyTooLarge, h, f},
	} {
		if dest, hook := breakerVerdict(tc.status, tc.err); dest != tc.dest || hook != tc.hook {
			t.Errorf("%s: verdicts (dest %d, hook %d), want (%d, %d)", tc.name, dest, hook, tc.dest, tc.hook)
		}
	}
}

func TestMetricLabel(t *testing.T) {
	if got := metricLabel(`a"b\c` + "\n:1"); got != `{destination="a\"b\\c\n:1"}` {
		t.Errorf("metricLabel = %s", got)
	}
	if err := metrics.ValidateMetric("x" + metricLabel(`we"ird\:80`)); err != nil {
		t.Error(err)
	}
}

// TestBreakerUnproven: a new destination gets one request at a time until it answers;
// a caller that can park is not made the probe of one that failed last time.
func TestBreakerUnproven(t *testing.T) {
	for _, tc := range []struct {
		name        string
		verdict     verdict
		wantState   int32
		avoiderGets ticket // what a request that avoids probes gets afterwards
	}{
		{"healthy first answer closes", verdictHealthy, breakerClosed, ticketPass},
		{"failed first answer counts", verdictFailure, breakerHalfOpen, ticketRejected},
		{"neutral first answer lets the next probe", verdictNeutral, breakerHalfOpen, ticketProbe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const firstAnswerWait = 100 * time.Millisecond
			b := newBreaker(breakerConfig{threshold: 3, cooldown: time.Hour, maxCooldown: time.Hour, firstAnswerWait: firstAnswerWait}, "x:1", nil)
			first := b.allow(true, 0) // nothing failed yet: even an avoider may find out
			if first.ticket != ticketProbe {
				t.Fatalf("first request: %+v, want the probe", first)
			}
			second := b.allow(false, 0)
			if second.ticket != ticketRejected || second.probeDone == nil || second.wait != 0 {
				t.Fatalf("second request while the first is out: %+v", second)
			}
			// One that would park waits a little for the first answer, not for ever.
			if a := b.allow(true, 0); a.ticket != ticketRejected || a.probeDone == nil || a.wait <= 0 || a.wait > firstAnswerWait {
				t.Fatalf("avoider while the first is out: %+v", a)
			}
			if tc.verdict == verdictNeutral { // the slow case: the first answer takes too long
				time.Sleep(firstAnswerWait)
				if a := b.allow(true, 0); a.ticket != ticketRejected || a.probeDone != nil || a.wait != 0 {
					t.Fatalf("avoider after firstAnswerWait: %+v, want turned away to park", a)
				}
			}
			b.record(first.ticket, tc.verdict)
			select {
			case <-second.probeDone:
			default:
				t.Fatal("probeDone not closed when the probe was recorded")
			}
			if got := b.state.Load(); got != tc.wantState {
				t.Fatalf("state %d, want %d", got, tc.wantState)
			}
			a := b.allow(true, 0)
			if a.ticket != tc.avoiderGets || (a.ticket == ticketRejected && (a.probeDone != nil || a.wait != 0)) {
				t.Fatalf("avoider after the first answer: %+v, want ticket %d", a, tc.avoiderGets)
			}
			if a.ticket == ticketRejected && b.allow(false, 0).ticket != ticketProbe {
				t.Fatal("a caller that waits was not made the probe")
			}
		})
	}
}

// TestBreakerUnprovenDeadDestination: lanes starting together against an endpoint that
// never answers hold one connection to it, not one each, and the ones turned away learn
// when the probe is over.
func TestBreakerUnprovenDeadDestination(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	p := newPool(t, PoolConfig{})
	s := mustCompile(t, webhookHook(t, "http://"+ln.Addr().String()+"/dead", "", `,"timeout_ms":300`), p)

	const lanes = 16
	var wg sync.WaitGroup
	var timedOut, waited atomic.Int32
	for range lanes {
		wg.Go(func() {
			ev := newEvent(t, "crud", "consumers", consumerData)
			res := s.Deliver(context.Background(), ev, nil)
			switch {
			case errors.Is(res.Err, ErrCircuitOpen) && res.ProbeDone != nil:
				<-res.ProbeDone
				waited.Add(1)
			case errors.Is(res.Err, ErrTimeout):
				timedOut.Add(1)
			default:
				t.Errorf("result %+v", res)
			}
		})
	}
	wg.Wait()
	if timedOut.Load() != 1 || waited.Load() != lanes-1 || accepted.Load() != 1 {
		t.Errorf("%d timed out, %d waited for the probe, %d connections; want 1, %d, 1",
			timedOut.Load(), waited.Load(), accepted.Load(), lanes-1)
	}
}

// TestBreakerWaitCappedByMaxBackoff: a hook that backs off at most 300 ms is never told
// to wait longer by an open breaker (the destination's or its own) whose cooldown is a
// minute: RetryAfter is at most 300 ms, and once the breaker has been open that long the
// hook's attempt is the probe. A hook with the default max backoff waits the cooldown.
func TestBreakerWaitCappedByMaxBackoff(t *testing.T) {
	const maxBackoff = 300 * time.Millisecond
	retry := `,"retry":{"initial_backoff_ms":100,"max_backoff_ms":300}`
	cfg := PoolConfig{BreakerThreshold: 2, BreakerCooldown: time.Minute, BreakerMaxCooldown: time.Minute}
	ev := newEvent(t, "crud", "consumers", consumerData)
	rejected := func(t *testing.T, res Result, what string, most time.Duration) {
		t.Helper()
		if !errors.Is(res.Err, ErrCircuitOpen) || !res.Retryable || !strings.Contains(res.Err.Error(), what) {
			t.Fatalf("result = %+v, want a rejection by the %s breaker", res, what)
		}
		if res.RetryAfter <= 0 || res.RetryAfter > most {
			t.Fatalf("RetryAfter = %v, want in (0, %v]", res.RetryAfter, most)
		}
	}

	t.Run("destination", func(t *testing.T) {
		ts := startSwitchServer(t, 200)
		var fd flakyDialer
		fd.down.Store(true)
		cfg := cfg
		cfg.Dial = fd.dial
		p := newPool(t, cfg)
		short := mustCompile(t, webhookHook(t, ts.url+"/short", `,"headers":{"Connection":"close"}`, retry), p)
		long := mustCompile(t, webhookHook(t, ts.url+"/long", `,"headers":{"Connection":"close"}`, ""), p)
		for range 2 {
			short.Deliver(context.Background(), ev, nil)
		}
		for round := range 3 {
			res := short.Deliver(context.Background(), ev, nil)
			rejected(t, res, "destination", maxBackoff)
			// A lane that parks is turned away too (RetryAfter 0 once past the cap).
			if r := short.Deliver(context.Background(), ev, &Lane{AvoidProbes: true}); !errors.Is(r.Err, ErrCircuitOpen) || r.RetryAfter > maxBackoff {
				t.Fatalf("round %d: a lane that parks: %+v", round, r)
			}
			rejected(t, long.Deliver(context.Background(), ev, nil), "destination", time.Minute)
			if r := long.Deliver(context.Background(), ev, nil); r.RetryAfter <= maxBackoff {
				t.Fatalf("default max backoff: RetryAfter = %v, want the cooldown", r.RetryAfter)
			}

			// Past the cap, a lane that parks is still never the probe…
			time.Sleep(res.RetryAfter + 10*time.Millisecond)
			dials := fd.dials.Load()
			if r := short.Deliver(context.Background(), ev, &Lane{AvoidProbes: true}); !errors.Is(r.Err, ErrCircuitOpen) || r.RetryAfter > maxBackoff {
				t.Fatalf("round %d: a lane that parks, past the cap: %+v", round, r)
			}
			// …but one that waits is let through as the probe, which fails and re-opens.
			if r := short.Deliver(context.Background(), ev, nil); errors.Is(r.Err, ErrCircuitOpen) || r.Delivered {
				t.Fatalf("round %d: past the cap: %+v, want the probe sent (and refused)", round, r)
			}
			if got := fd.dials.Load(); got != dials+1 {
				t.Fatalf("round %d: %d dials past the cap, want 1 probe", round, got-dials)
			}
		}

		// The destination recovers: the short hook's probe closes the breaker for all.
		fd.down.Store(false)
		res := short.Deliver(context.Background(), ev, nil)
		rejected(t, res, "destination", maxBackoff)
		time.Sleep(res.RetryAfter + 10*time.Millisecond)
		if r := short.Deliver(context.Background(), ev, nil); !r.Delivered {
			t.Fatalf("probe after recovery: %+v", r)
		}
		if r := long.Deliver(context.Background(), ev, nil); !r.Delivered {
			t.Fatalf("other hook after recovery: %+v", r)
		}
	})

	t.Run("hook", func(t *testing.T) {
		ts := startSwitchServer(t, 503)
		p := newPool(t, cfg)
		short := mustCompile(t, webhookHook(t, ts.url+"/short", "", retry), p)
		for range 2 {
			short.Deliver(context.Background(), ev, nil)
		}
		for round := range 3 {
			res := short.Deliver(context.Background(), ev, nil)
			rejected(t, res, "hook", maxBackoff)
			time.Sleep(res.RetryAfter + 10*time.Millisecond)
			hits := ts.hits.Load()
			if r := short.Deliver(context.Background(), ev, nil); r.Status != 503 {
				t.Fatalf("round %d: past the cap: %+v, want the probe sent", round, r)
			}
			if got := ts.hits.Load(); got != hits+1 {
				t.Fatalf("round %d: %d requests past the cap, want 1 probe", round, got-hits)
			}
		}
		ts.code.Store(200)
		res := short.Deliver(context.Background(), ev, nil)
		rejected(t, res, "hook", maxBackoff)
		time.Sleep(res.RetryAfter + 10*time.Millisecond)
		if r := short.Deliver(context.Background(), ev, nil); !r.Delivered {
			t.Fatalf("probe after recovery: %+v", r)
		}
	})
}

// TestBreakerMaxWaitStateMachine checks the cap at the breaker: RetryAfter never
// exceeds it, a probe in flight still holds every other request back (with ProbeDone),
// and a caller that avoids probes is never made one.
func TestBreakerMaxWaitStateMachine(t *testing.T) {
	const maxWait = 30 * time.Millisecond
	b := newHookBreaker(breakerConfig{threshold: 1, cooldown: time.Hour, maxCooldown: time.Hour}, "h")
	if a := b.allow(true, maxWait); a.ticket != ticketProbe {
		t.Fatalf("a hook's breaker starts unproven, its first request the probe: %+v", a)
	}
	b.record(ticketProbe, verdictFailure)
	if b.state.Load() != breakerOpen {
		t.Fatalf("state %d after the threshold", b.state.Load())
	}
	for _, avoid := range []bool{false, true} {
		a := b.allow(avoid, maxWait)
		if a.ticket != ticketRejected || a.wait <= 0 || a.wait > maxWait {
			t.Fatalf("open, avoid %v: %+v, want rejected for at most %v", avoid, a, maxWait)
		}
		if w, away := b.turnsAway(avoid, maxWait); !away || w <= 0 || w > maxWait {
			t.Fatalf("turnsAway(%v) = %v, %v", avoid, w, away)
		}
		if a := b.allow(avoid, 0); a.wait <= time.Minute {
			t.Fatalf("no cap: wait %v, want the cooldown", a.wait)
		}
	}
	time.Sleep(maxWait)
	if a := b.allow(true, maxWait); a.ticket != ticketRejected || a.probeDone != nil || a.wait != 0 {
		t.Fatalf("avoider past the cap: %+v, want turned away to park", a)
	}
	if b.state.Load() != breakerOpen {
		t.Fatal("an avoider turned the breaker half-open")
	}
	probe := b.allow(false, maxWait)
	if probe.ticket != ticketProbe || b.state.Load() != breakerHalfOpen {
		t.Fatalf("past the cap: %+v state %d, want the probe", probe, b.state.Load())
	}
	second := b.allow(false, maxWait)
	if second.ticket != ticketRejected || second.probeDone == nil || second.wait != 0 {
		t.Fatalf("while the probe is out: %+v, want rejected with ProbeDone", second)
	}
	b.record(probe.ticket, verdictFailure)
	<-second.probeDone
	if a := b.allow(false, maxWait); a.ticket != ticketRejected || a.wait <= 0 || a.wait > maxWait {
		t.Fatalf("after a failed probe: %+v, want rejected for at most %v", a, maxWait)
	}
	b.mu.Lock()
	cd := b.cooldown
	b.mu.Unlock()
	if cd != time.Hour {
		t.Errorf("cooldown %v, want the max", cd)
	}
}

// TestAwaitsFirstAnswer: a breaker that has not answered yet and has no probe out says so
// (the processor sends that probe aside); one with a probe out, one that answered, and
// one that failed do not.
func TestAwaitsFirstAnswer(t *testing.T) {
	cfg := breakerConfig{threshold: 1, cooldown: time.Hour, maxCooldown: time.Hour, firstAnswerWait: time.Second}
	for _, tc := range []struct {
		name    string
		verdict verdict
		want    bool // after the first probe's answer
	}{
		{"healthy answer", verdictHealthy, false},
		{"no verdict (a timeout for a hook)", verdictNeutral, true},
		{"failed", verdictFailure, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newHookBreaker(cfg, "h")
			if !b.awaitsFirstAnswer() {
				t.Fatal("new breaker: want awaiting its first answer")
			}
			a := b.allow(true, 0)
			if a.ticket != ticketProbe || b.awaitsFirstAnswer() {
				t.Fatalf("probe out (%+v): want not awaiting", a)
			}
			b.record(a.ticket, tc.verdict)
			if got := b.awaitsFirstAnswer(); got != tc.want {
				t.Fatalf("after the answer: %v, want %v", got, tc.want)
			}
		})
	}
	var none *breaker
	if none.awaitsFirstAnswer() {
		t.Fatal("no breaker: want false")
	}
}

// TestAwaitsFirstAnswerThroughAFailingDestination: a hook version that has not answered
// yet does not make its next attempt a first request while its destination turns that
// attempt away first (the hook's breaker would never be asked, so never proven).
func TestAwaitsFirstAnswerThroughAFailingDestination(t *testing.T) {
	cfg := breakerConfig{threshold: 1, cooldown: time.Hour, maxCooldown: time.Hour, firstAnswerWait: time.Second}
	ep := &endpoint{br: newBreaker(cfg, "x:1", nil)}
	g := &hookGate{br: newHookBreaker(cfg, "h")}
	if !ep.awaitsFirstAnswer(g) {
		t.Fatal("both new: want a first request")
	}
	a := ep.br.allow(true, 0)
	ep.br.record(a.ticket, verdictFailure) // the destination refused its first request
	if ep.awaitsFirstAnswer(g) {
		t.Fatal("destination failed: its attempts are turned away, want no first request")
	}
}
