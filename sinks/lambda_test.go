package sinks

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/scripting"
)

// lambdaHook returns a validated lambda hook running fns (JavaScript sources); extra is
// spliced into config.
func lambdaHook(t testing.TB, extraConfig string, fns ...string) *hooks.Hook {
	t.Helper()
	list := make([]string, len(fns))
	for i, f := range fns {
		list[i] = quote(f)
	}
	return mustHook(t, `{"source":"crud","event":"admins","handler":"lambda","config":{"functions":[`+
		strings.Join(list, ",")+`]`+extraConfig+`}}`)
}

// newLog returns a logger writing text to the returned buffer, which the test may read
// while deliveries still log.
func newLog() (*slog.Logger, *testkit.Buffer) {
	lb := &testkit.Buffer{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

func compileWithLog(t testing.TB, h *hooks.Hook, p *Pool, log *slog.Logger) Sink {
	t.Helper()
	s, err := Compile(h, p, log)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func TestLambdaReturnsASignedRequest(t *testing.T) {
	ts := startServer(t, nil)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := lambdaHook(t, `,"secret":"`+secret+`"`, `(data, event, source) => ({
  url: "`+ts.url+`/lambda/" + source + "/" + event,
  method: "put",
  headers: { "X-User": data.entity.username, "X-N": 7 },
  body: { text: "Admin " + data.entity.username + " " + data.operation + "d" },
})`)
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	ev := newEvent(t, "crud", "admins", adminData)
	var lane Lane
	res := s.Deliver(context.Background(), ev, &lane)
	if !res.Delivered || res.Dropped || res.Status != 200 {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	if r.method != "PUT" || r.uri != "/lambda/crud/admins" || r.header("X-User") != "ada" || r.header("X-N") != "7" {
		t.Errorf("request = %s %s %v", r.method, r.uri, r.headers)
	}
	if string(r.body) != `{"text":"Admin ada created"}` || r.header("Content-Type") != "application/json" {
		t.Errorf("body %s, Content-Type %q", r.body, r.header("Content-Type"))
	}
	if r.header("webhook-id") != MessageID(h.ID, ev) {
		t.Errorf("webhook-id = %q, want the event's stable id", r.header("webhook-id"))
	}
	verifySignatures(t, secret, r)

	// Runtimes are reused from the pool, not built per delivery.
	for range 5 {
		if res := s.Deliver(context.Background(), ev, &lane); !res.Delivered {
			t.Fatalf("delivery: %+v", res)
		}
	}
	if n := s.(*lambdaSink).pool.js.created.Load(); n != 1 {
		t.Errorf("%d runtimes built for 6 sequential deliveries, want 1", n)
	}
}

// TestLambdaRuntimesAreBounded: concurrent lanes share at most LambdaRuntimes runtimes.
func TestLambdaRuntimesAreBounded(t *testing.T) {
	ts := startServer(t, nil)
	h := lambdaHook(t, ``, `(d) => ({ url: "`+ts.url+`/x", body: "b" })`)
	// No breaker: its first request to a new destination goes alone, and this test is
	// about runtimes.
	p := newPool(t, PoolConfig{LambdaRuntimes: 2, DisableBreaker: true})
	s := mustCompile(t, h, p)
	var wg sync.WaitGroup
	for range 8 {
		ev := newEvent(t, "crud", "admins", adminData) // fastjson values are read-modify: one per goroutine
		wg.Go(func() {
			var lane Lane
			for range 20 {
				if res := s.Deliver(context.Background(), ev, &lane); !res.Delivered {
					t.Errorf("delivery: %+v", res)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := p.js.created.Load(); n > 2 {
		t.Errorf("%d runtimes built, want at most 2", n)
	}
}

func TestLambdaArrayInOrderWithDistinctIDs(t *testing.T) {
	ts := startServer(t, nil)
	h := lambdaHook(t, `,"secret":"k"`, `(d) => [
  { url: "`+ts.url+`/first", body: "one" },
  { url: "`+ts.url+`/second", method: "PATCH", body: "two", headers: { "Content-Type": "text/plain" } },
]`)
	ev := newEvent(t, "crud", "admins", adminData)
	if res := mustCompile(t, h, newPool(t, PoolConfig{})).Deliver(context.Background(), ev, nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	first, second := ts.next(t), ts.next(t)
	if first.uri != "/first" || second.uri != "/second" || string(first.body) != "one" || second.method != "PATCH" {
		t.Fatalf("requests = %s %s, %s %s", first.method, first.uri, second.method, second.uri)
	}
	id := MessageID(h.ID, ev)
	if first.header("webhook-id") != id+"_0" || second.header("webhook-id") != id+"_1" {
		t.Errorf("webhook-ids = %q, %q", first.header("webhook-id"), second.header("webhook-id"))
	}
	if first.header("Content-Type") != "" || second.header("Content-Type") != "text/plain" {
		t.Errorf("Content-Types = %q, %q", first.header("Content-Type"), second.header("Content-Type"))
	}
	verifySignatures(t, "k", first)
	verifySignatures(t, "k", second)
}

func TestLambdaArrayStopsAtFirstFailure(t *testing.T) {
	ts := statusServer(t, nil)
	h := lambdaHook(t, "", `(d) => [{ url: "`+ts.url+`/200" }, { url: "`+ts.url+`/503" }, { url: "`+ts.url+`/200" }]`)
	res := mustCompile(t, h, newPool(t, PoolConfig{})).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
	if res.Delivered || !res.Retryable || res.Status != 503 || !strings.Contains(res.Err.Error(), "lambda request 2 of 3") {
		t.Errorf("result = %+v", res)
	}
	ts.next(t)
	ts.next(t)
	select {
	case r := <-ts.reqs:
		t.Errorf("a request after the failure was sent: %s", r.uri)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestLambdaOutcomesThatSendNothing(t *testing.T) {
	ts := startServer(t, nil)
	p := newPool(t, PoolConfig{})
	for _, tc := range []struct {
		name, fn string
		dropped  bool
		logged   string
	}{
		{"null drops", `(d) => null`, true, ""},
		{"undefined drops", `function (d) { if (d.operation === "create") return; return 1 }`, true, ""},
		{"empty array drops", `(d) => []`, true, ""},
		{"a string is logged", `(d) => "admin " + d.entity.username + " seen"`, false, `result="\"admin ada seen\""`},
		{"an object without url is logged", `(d) => ({ user: d.entity.username })`, false, `result="{\"user\":\"ada\"}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, lb := newLog()
			res := compileWithLog(t, lambdaHook(t, "", tc.fn), p, log).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
			if !res.Delivered || res.Dropped != tc.dropped || res.Err != nil {
				t.Errorf("result = %+v, want delivered, dropped %v", res, tc.dropped)
			}
			if tc.logged != "" && (!strings.Contains(lb.String(), "lambda result") || !strings.Contains(lb.String(), tc.logged)) {
				t.Errorf("log = %s, want %s", lb, tc.logged)
			}
			if tc.logged == "" && lb.String() != "" {
				t.Errorf("unexpected log: %s", lb)
			}
		})
	}
	select {
	case r := <-ts.reqs:
		t.Errorf("something was sent: %s %s", r.method, r.uri)
	default:
	}
}

func TestLambdaErrors(t *testing.T) {
	ts := startServer(t, nil)
	p := newPool(t, PoolConfig{LambdaTimeout: 30 * time.Millisecond})
	for _, tc := range []struct {
		name, fn  string
		retryable bool
		want      string
	}{
		{"throw", `(d) => { throw new Error("no admin for " + d.entity.username) }`, true, "functions[0]: Error: no admin for ada (line 1:16)"},
		{"type error", `(d) => d.missing.field`, true, "TypeError"},
		{"infinite loop", `(d) => { for (;;) {} }`, true, "timed out"},
		{"unknown request field", `(d) => ({ url: "` + ts.url + `", header: {} })`, false, `unknown field "header"`},
		{"url not a string", `(d) => ({ url: 7 })`, false, `"url" must be a non-empty string`},
		{"GET with a body", `(d) => ({ url: "` + ts.url + `", method: "GET", body: "x" })`, false, "a GET request cannot carry a body"},
		{"header injection", `(d) => ({ url: "` + ts.url + `", headers: { "X-A": "a\r\nX-B: b" } })`, false, "CR, LF or NUL"},
		{"mixed array", `(d) => [{ url: "` + ts.url + `" }, 5]`, false, "request 1: not a request object"},
		{"not http", `(d) => ({ url: "file:///etc/passwd" })`, false, "scheme must be http or https"},
		{"too many requests", `(d) => Array.from({ length: 65 }, () => ({ url: "` + ts.url + `" }))`, false, "more than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustCompile(t, lambdaHook(t, "", tc.fn), p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
			if res.Delivered || res.Retryable != tc.retryable || res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Fatalf("result = %+v, want retryable %v and an error containing %q", res, tc.retryable, tc.want)
			}
			// Script failures are retryable and say which they are (the processor caps
			// them); the other failures are permanent.
			timeout := errors.Is(res.Err, scripting.ErrTimeout)
			if tc.retryable && !timeout && !errors.Is(res.Err, scripting.ErrThrown) {
				t.Errorf("script failure wraps neither scripting.ErrThrown nor scripting.ErrTimeout: %v", res.Err)
			}
			if timeout && !errors.Is(res.Err, ErrTimeout) {
				t.Errorf("timeout does not wrap ErrTimeout: %v", res.Err)
			}
			if !tc.retryable && !errors.Is(res.Err, ErrPermanent) {
				t.Errorf("permanent error does not wrap ErrPermanent: %v", res.Err)
			}
		})
	}
	select {
	case r := <-ts.reqs:
		t.Errorf("something was sent: %s %s", r.method, r.uri)
	default:
	}
}

func TestLambdaDestinationsAreBounded(t *testing.T) {
	a, b := startServer(t, nil), startServer(t, nil)
	s := mustCompile(t, lambdaHook(t, "", `(d) => ({ url: d.target })`), newPool(t, PoolConfig{MaxDestinations: 1}))
	deliver := func(target string) Result {
		return s.Deliver(context.Background(), newEvent(t, "crud", "admins", `{"target":"`+target+`"}`), nil)
	}
	if res := deliver(a.url + "/1"); !res.Delivered {
		t.Fatalf("first destination: %+v", res)
	}
	if res := deliver(a.url + "/2"); !res.Delivered {
		t.Fatalf("same destination again: %+v", res)
	}
	res := deliver(b.url)
	if res.Delivered || res.Retryable || !errors.Is(res.Err, ErrTooManyDestinations) || !strings.Contains(res.Err.Error(), "limit of 1") {
		t.Errorf("new destination over the bound: %+v", res)
	}
}

func TestLambdaSSLVerifyDefaultsOn(t *testing.T) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}, Logger: quietLogger{}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	url := "https://" + ln.Addr().String()
	p := newPool(t, PoolConfig{})
	res := mustCompile(t, lambdaHook(t, "", `(d) => ({ url: "`+url+`/v" })`), p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
	if res.Delivered {
		t.Errorf("self-signed certificate accepted by default: %+v", res)
	}
	res = mustCompile(t, lambdaHook(t, "", `(d) => ({ url: "`+url+`/v", ssl_verify: false })`), p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
	if !res.Delivered {
		t.Errorf("ssl_verify false: %+v", res)
	}
}

func TestLambdaCompileErrorsAreSchemaViolations(t *testing.T) {
	p := newPool(t, PoolConfig{})
	for _, tc := range []struct {
		name  string
		fns   []string
		field string
		want  string
	}{
		{"syntax error in the second function", []string{`(d) => d`, "(d) => {\n  return d +\n}"}, "config.functions.2", "SyntaxError: Unexpected token } (line 3:1)"},
		{"not a function", []string{`42`}, "config.functions.1", "does not evaluate to a function"},
		{"top level throws", []string{`throw new Error("boom")`}, "config.functions.1", "Error: boom (line 1:7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(lambdaHook(t, "", tc.fns...), p, nil)
			var se *hooks.SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *hooks.SchemaError", err)
			}
			if got := se.Fields[tc.field]; got != tc.want {
				t.Errorf("fields = %q, want %s: %q", se.Fields, tc.field, tc.want)
			}
		})
	}
}

// policyLambda is the policy-enforcement example of docs/transformations.md: it deletes,
// through Kong's Admin API, an admin whose email is outside the allowed domain.
const policyLambda = `(data, event, source) => {
  const allowed = "corp.example";
  const admin = data.entity || {};
  if (data.operation === "delete" || typeof admin.email !== "string") return null;
  const domain = admin.email.slice(admin.email.lastIndexOf("@") + 1).toLowerCase();
  if (domain === allowed) return null;
  console.log("removing admin " + admin.username + ": " + admin.email + " is outside " + allowed);
  return {
    method: "DELETE",
    url: "http://kong-admin:8001/admins/" + encodeURIComponent(admin.id),
    headers: { "Kong-Admin-Token": "change-me" },
  };
}`

func TestLambdaPolicyEnforcementExample(t *testing.T) {
	kongAdmin := startServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) })
	fn := strings.ReplaceAll(policyLambda, "http://kong-admin:8001", kongAdmin.url)
	log, lb := newLog()
	s := compileWithLog(t, lambdaHook(t, "", fn), newPool(t, PoolConfig{Logger: log}), log)
	var lane Lane
	for _, tc := range []struct {
		data   string
		delete bool
	}{
		{`{"operation":"create","entity":{"id":"a 1","username":"ada","email":"ada@evil.example"}}`, true},
		{`{"operation":"update","entity":{"id":"a2","username":"bob","email":"Bob@Corp.Example"}}`, false},
		{`{"operation":"create","entity":{"id":"a3","username":"eve"}}`, false},
		{`{"operation":"delete","entity":{"id":"a4","username":"mal","email":"mal@evil.example"}}`, false},
	} {
		res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", tc.data), &lane)
		if !res.Delivered || res.Dropped == tc.delete {
			t.Errorf("%s: result %+v, want a DELETE: %v", tc.data, res, tc.delete)
		}
	}
	r := kongAdmin.next(t)
	if r.method != "DELETE" || r.uri != "/admins/a%201" || r.header("Kong-Admin-Token") != "change-me" {
		t.Errorf("request = %s %s %v", r.method, r.uri, r.headers)
	}
	select {
	case r := <-kongAdmin.reqs:
		t.Errorf("unexpected request %s %s", r.method, r.uri)
	case <-time.After(100 * time.Millisecond):
	}
	if !strings.Contains(lb.String(), "removing admin ada: ada@evil.example is outside corp.example") {
		t.Errorf("console.log did not reach the service log: %s", lb)
	}
}

// TestScriptFailureSentinels: a lambda or a webhook-custom template that throws or runs
// out of time fails retryably with an error the processor tells apart with errors.Is
// (scripting.ErrThrown: script_error; scripting.ErrTimeout: script_timeout), never
// ErrPermanent; and such failures count against the hook's own breaker.
func TestScriptFailureSentinels(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		name     string
		hook     func(t *testing.T) *hooks.Hook
		sentinel error
	}{
		{"lambda throws", func(t *testing.T) *hooks.Hook {
			return lambdaHook(t, "", `(d) => { throw new Error("no") }`)
		}, scripting.ErrThrown},
		{"lambda type error", func(t *testing.T) *hooks.Hook { return lambdaHook(t, "", `(d) => d.missing.field`) }, scripting.ErrThrown},
		{"lambda stack overflow", func(t *testing.T) *hooks.Hook {
			return lambdaHook(t, "", `(d) => { const f = (n) => f(n + 1) + 1; return f(0) }`)
		}, scripting.ErrThrown},
		{"lambda rejected promise", func(t *testing.T) *hooks.Hook {
			return lambdaHook(t, "", `async (d) => { throw new TypeError("async no") }`)
		}, scripting.ErrThrown},
		{"lambda infinite loop", func(t *testing.T) *hooks.Hook { return lambdaHook(t, "", `(d) => { for (;;) {} }`) }, scripting.ErrTimeout},
		{"lambda catastrophic regexp", func(t *testing.T) *hooks.Hook {
			return lambdaHook(t, "", `(d) => /(a+)+\1b/.test('a'.repeat(40)) ? null : { url: "`+ts.url+`/sent" }`)
		}, scripting.ErrTimeout},
		{"template helper error", func(t *testing.T) *hooks.Hook {
			return customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","body":"{{ index .entity 1 }}"`)
		}, scripting.ErrThrown},
		{"templated header helper error", func(t *testing.T) *hooks.Hook {
			return customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","headers_format":true,"headers":{"X-A":"{{ index .entity 1 }}"}`)
		}, scripting.ErrThrown},
		{"template runaway loop", func(t *testing.T) *hooks.Hook {
			return customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","body":"{{ range 9999999999 }}{{ end }}"`)
		}, scripting.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(t, PoolConfig{LambdaTimeout: 30 * time.Millisecond, BreakerThreshold: 2, BreakerCooldown: time.Minute})
			h := tc.hook(t)
			s := mustCompile(t, h, p)
			ev := newEvent(t, "crud", "admins", adminData)
			for attempt := range 2 {
				res := s.Deliver(context.Background(), ev, nil)
				if res.Delivered || !res.Retryable || !errors.Is(res.Err, tc.sentinel) || errors.Is(res.Err, ErrPermanent) {
					t.Fatalf("attempt %d: %+v, want a retryable error wrapping %v", attempt, res, tc.sentinel)
				}
				other := scripting.ErrTimeout
				if tc.sentinel == scripting.ErrTimeout {
					other = scripting.ErrThrown
				}
				if errors.Is(res.Err, other) {
					t.Errorf("attempt %d: %v wraps %v too", attempt, res.Err, other)
				}
				if tc.sentinel == scripting.ErrTimeout && !errors.Is(res.Err, ErrTimeout) {
					t.Errorf("attempt %d: timeout %v does not wrap ErrTimeout", attempt, res.Err)
				}
			}
			res := s.Deliver(context.Background(), ev, nil)
			if !errors.Is(res.Err, ErrCircuitOpen) || !strings.Contains(res.Err.Error(), "hook "+h.ID) || !res.Retryable {
				t.Errorf("after 2 script failures: %+v, want the hook's breaker open", res)
			}
		})
	}
	select {
	case r := <-ts.reqs:
		t.Errorf("something was sent: %s %s", r.method, r.uri)
	default:
	}
}
