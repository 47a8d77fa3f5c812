package sinks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/eventhooks/eventhooks/hooks"
)

func TestWebhookKongBody(t *testing.T) {
	ts := startServer(t, nil)
	s := mustCompile(t, webhookHook(t, ts.url+"/hook", "", ""), newPool(t, PoolConfig{}))
	ev := newEvent(t, "crud", "consumers", consumerData)

	res := s.Deliver(context.Background(), ev, nil)
	if !res.Delivered || res.Err != nil || res.Status != 200 {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	if r.method != "POST" || r.uri != "/hook" {
		t.Errorf("request line = %s %s", r.method, r.uri)
	}
	want := `{"source":"crud","event":"consumers","operation":"create","schema":"consumers",` +
		`"entity":{"id":"0fd2b1c6-0d5c-4a8a-9c1e-0f2d2a9c3e11","username":"Ada Lovelace",` +
		`"created_at":1627581878,"type":0,"custom_id":null,"tags":["a","b"],"ratio":1.5e3}}`
	assertSameJSON(t, r.body, []byte(want))
	if !strings.HasPrefix(string(r.body), `{"source":"crud","event":"consumers",`) {
		t.Errorf("body does not start with source and event: %s", r.body)
	}
	if r.header("X-Kong-Signature") != "" || r.header("webhook-signature") != "" {
		t.Errorf("unsigned hook sent signature headers: %v", r.headers)
	}
}

func TestWebhookBodyReplacesSourceAndEvent(t *testing.T) {
	ev := newEvent(t, "balancer", "health", `{"source":"spoofed","upstream_id":"u-1","event":"x","n":1}`)
	got := appendWebhookBody(nil, ev.Source, ev.Event, ev.Data())
	want := `{"source":"balancer","event":"health","upstream_id":"u-1","n":1}`
	if string(got) != want {
		t.Fatalf("body = %s, want %s", got, want)
	}
}

func TestWebhookBodyEscaping(t *testing.T) {
	// Inputs fastjson accepts but would re-marshal as invalid JSON.
	ev := handBuiltEvent(t, "s\"rc", "ev\n", "{\"k\\u0001\":\"a\\u0000b\\u0007\\u000b\u2028\",\"nan\":NaN,\"weird\":1-2,\"raw\":\"\x01\",\"bad\":\"\xff\"}")
	got := appendWebhookBody(nil, ev.Source, ev.Event, ev.Data())
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %q", got)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"source": "s\"rc", "event": "ev\n",
		"k\x01": "a\x00b\a\v\u2028", "nan": "NaN", "weird": "1-2", "raw": "\x01", "bad": "\ufffd",
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("decoded = %#v\nwant      %#v", m, want)
	}
}

func TestWebhookHeaders(t *testing.T) {
	ts := startServer(t, nil)
	h := webhookHook(t, ts.url+"/in?x=1", `,"headers":{"X-Custom":"v 1","authorization":"Bearer t",`+
		`"Content-Type":"text/plain","Content-Length":"3","Host":"receiver.example"}`, "")
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	if res := s.Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	for name, want := range map[string]string{
		"X-Custom":      "v 1",
		"Authorization": "Bearer t",
		"Content-Type":  "application/json",
		"User-Agent":    "eventhooks",
	} {
		if got := r.headers[strings.ToLower(name)]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly [%q]", name, got, want)
		}
	}
	if r.uri != "/in?x=1" {
		t.Errorf("uri = %q", r.uri)
	}
	if r.host != "receiver.example" {
		t.Errorf("host = %q, want the configured Host header", r.host)
	}
	if got := r.header("Content-Length"); got != strconv.Itoa(len(r.body)) {
		t.Errorf("Content-Length = %q for a %d-byte body", got, len(r.body))
	}
}

func TestCompileRejectsHeaderInjection(t *testing.T) {
	p := newPool(t, PoolConfig{})
	for _, hdr := range []string{
		`{"X-A":"v\r\nX-Injected: 1"}`,
		`{"X-A\nB":"v"}`,
		`{"X A":"v"}`,
		`{"":"v"}`,
	} {
		h := webhookHook(t, "http://127.0.0.1:1/", `,"headers":`+hdr, "")
		if _, err := Compile(h, p, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("headers %s: err = %v, want ErrInvalidConfig", hdr, err)
		}
	}
}

// independent verification of both signatures, straight from crypto/hmac.
func verifyKong(secret string, body []byte, header string) bool {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return header == "sha1="+hex.EncodeToString(m.Sum(nil))
}

func verifyStandard(secret string, id, ts string, body []byte, header string) (bool, error) {
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return false, err
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(header), []byte(want)), nil
}

func TestWebhookSignatures(t *testing.T) {
	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "kong-secret"} {
		t.Run(secret, func(t *testing.T) {
			ts := startServer(t, nil)
			h := webhookHook(t, ts.url, `,"secret":`+quote(secret), "")
			s := mustCompile(t, h, newPool(t, PoolConfig{}))
			ev := newEvent(t, "crud", "consumers", consumerData)
			before := time.Now().Unix()
			if res := s.Deliver(context.Background(), ev, nil); !res.Delivered {
				t.Fatalf("result = %+v", res)
			}
			r := ts.next(t)
			if !verifyKong(secret, r.body, r.header("X-Kong-Signature")) {
				t.Errorf("X-Kong-Signature %q does not verify", r.header("X-Kong-Signature"))
			}
			id, tsHdr := r.header("webhook-id"), r.header("webhook-timestamp")
			ok, err := verifyStandard(secret, id, tsHdr, r.body, r.header("webhook-signature"))
			if err != nil || !ok {
				t.Errorf("webhook-signature %q does not verify (%v)", r.header("webhook-signature"), err)
			}
			if id != MessageID(h.ID, ev) {
				t.Errorf("webhook-id = %q, want MessageID %q", id, MessageID(h.ID, ev))
			}
			sec, err := strconv.ParseInt(tsHdr, 10, 64)
			if err != nil || sec < before || sec > time.Now().Unix() {
				t.Errorf("webhook-timestamp = %q, want the attempt's unix seconds", tsHdr)
			}

			// A retry of the same event keeps the id; the signature covers the new timestamp.
			if res := s.Deliver(context.Background(), ev, nil); !res.Delivered {
				t.Fatalf("second result = %+v", res)
			}
			r2 := ts.next(t)
			if r2.header("webhook-id") != id {
				t.Errorf("retry webhook-id = %q, want %q", r2.header("webhook-id"), id)
			}
			if ok, _ := verifyStandard(secret, id, r2.header("webhook-timestamp"), r2.body, r2.header("webhook-signature")); !ok {
				t.Error("retry signature does not verify")
			}
		})
	}
}

func TestSignatureVectors(t *testing.T) {
	for _, c := range signatureCases(t) {
		t.Run(c.Secret, func(t *testing.T) {
			key, err := StandardKey(c.Secret)
			if err != nil {
				t.Fatal(err)
			}
			ts, err := strconv.ParseInt(c.Timestamp, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := SignStandard(key, c.ID, ts, []byte(c.Body)); got != c.Signature {
				t.Errorf("SignStandard = %s, want %s", got, c.Signature)
			}
			if got := SignKong(c.Secret, []byte(c.Body)); got != c.Kong {
				t.Errorf("SignKong = %s, want %s", got, c.Kong)
			}
			// The pooled signer the sink uses agrees with the exported functions.
			sg := newSigner(c.Secret, key)
			if got := string(sg.appendStandard(nil, []byte(c.ID), []byte(c.Timestamp), []byte(c.Body))); got != c.Signature {
				t.Errorf("signer.appendStandard = %s", got)
			}
			if got := string(sg.appendKong(nil, []byte(c.Body))); got != c.Kong {
				t.Errorf("signer.appendKong = %s", got)
			}
		})
	}
}

func TestStandardKey(t *testing.T) {
	key, err := StandardKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	want, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil || string(key) != string(want) {
		t.Errorf("whsec key = %x, %v", key, err)
	}
	if key, err := StandardKey("whsec_dGVzdA"); err != nil || string(key) != "test" { // unpadded
		t.Errorf("unpadded whsec key = %q, %v", key, err)
	}
	if key, err := StandardKey("plain secret"); err != nil || string(key) != "plain secret" {
		t.Errorf("raw key = %q, %v", key, err)
	}
	for _, bad := range []string{"whsec_", "whsec_!!!not base64"} {
		if _, err := StandardKey(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("StandardKey(%q) err = %v, want ErrInvalidConfig", bad, err)
		}
		h := webhookHook(t, "http://127.0.0.1:1/", `,"secret":`+quote(bad), "")
		if _, err := Compile(h, newPool(t, PoolConfig{}), nil); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Compile with secret %q: err = %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestMessageID(t *testing.T) {
	ev := newEvent(t, "crud", "consumers", consumerData)
	id := MessageID("hook-a", ev)
	if len(id) != messageIDLen || !strings.HasPrefix(id, "msg_") {
		t.Fatalf("MessageID = %q", id)
	}
	if _, err := hex.DecodeString(id[4:]); err != nil {
		t.Fatalf("MessageID %q is not msg_<hex>: %v", id, err)
	}
	if MessageID("hook-a", ev) != id {
		t.Error("not stable across calls")
	}
	// A replay of the same event (same id, read again at another offset) keeps it.
	replay := newEvent(t, "crud", "consumers", consumerData)
	replay.Record.Offset = 9999
	if MessageID("hook-a", replay) != id {
		t.Error("changes with the record when the event has an id")
	}
	if MessageID("hook-b", ev) == id {
		t.Error("same for two hooks")
	}
	other := newEvent(t, "crud", "consumers", consumerData)
	other.ID = []byte("01JDQ4Z9X8Y7W6V5T4S3R2Q1P1")
	if MessageID("hook-a", other) == id {
		t.Error("same for two events")
	}

	// Without an id: the record's coordinates identify the event.
	a, b := newEvent(t, "crud", "consumers", consumerData), newEvent(t, "crud", "consumers", `{"x":1}`)
	a.ID, b.ID = nil, nil
	if MessageID("hook-a", a) != MessageID("hook-a", b) {
		t.Error("same record coordinates give different ids")
	}
	b.Record.Offset++
	if MessageID("hook-a", a) == MessageID("hook-a", b) {
		t.Error("different offsets give the same id")
	}
	if MessageID("hook-a", a) == MessageID("hook-b", a) {
		t.Error("record-derived id is the same for two hooks")
	}

	// No id, no record, no event: no panic, still the right shape.
	a.Record = nil
	for _, e := range []*hooks.Event{a, nil} {
		if got := MessageID("hook-a", e); len(got) != messageIDLen {
			t.Errorf("MessageID(%v) = %q", e, got)
		}
	}
}

func TestDeliverStatuses(t *testing.T) {
	ts := statusServer(t, nil)
	p := newPool(t, PoolConfig{})
	ev := newEvent(t, "crud", "consumers", consumerData)
	for _, tc := range []struct {
		status               int
		delivered, retryable bool
	}{
		{200, true, false},
		{201, true, false},
		{204, true, false},
		{301, false, false},
		{400, false, false},
		{401, false, false},
		{404, false, false},
		{410, false, false},
		{408, false, true},
		{425, false, true},
		{429, false, true},
		{500, false, true},
		{502, false, true},
		{503, false, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			s := mustCompile(t, webhookHook(t, fmt.Sprintf("%s/%d", ts.url, tc.status), "", ""), p)
			res := s.Deliver(context.Background(), ev, nil)
			if res.Status != tc.status || res.Delivered != tc.delivered || res.Retryable != tc.retryable {
				t.Fatalf("result = %+v, want delivered=%v retryable=%v", res, tc.delivered, tc.retryable)
			}
			switch {
			case tc.delivered:
				if res.Err != nil {
					t.Errorf("delivered with err %v", res.Err)
				}
			case tc.retryable:
				if res.Err == nil || errors.Is(res.Err, ErrPermanent) {
					t.Errorf("err = %v, want a non-permanent error", res.Err)
				}
			default:
				if !errors.Is(res.Err, ErrPermanent) {
					t.Errorf("err = %v, want ErrPermanent", res.Err)
				}
			}
			if !tc.delivered && !strings.Contains(res.Err.Error(), "status body") {
				t.Errorf("err %q lacks the response body", res.Err)
			}
			if res.Duration <= 0 {
				t.Error("no duration")
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		status               int
		err                  error
		delivered, retryable bool
	}{
		{"200", 200, nil, true, false},
		{"299", 299, nil, true, false},
		{"304", 304, nil, false, false},
		{"403", 403, nil, false, false},
		{"422", 422, nil, false, false},
		{"408", 408, nil, false, true},
		{"425", 425, nil, false, true},
		{"429", 429, nil, false, true},
		{"500", 500, nil, false, true},
		{"599", 599, nil, false, true},
		{"101 final", 101, nil, false, true},
		{"timeout", 0, fasthttp.ErrTimeout, false, true},
		{"dial timeout", 0, fasthttp.ErrDialTimeout, false, true},
		{"refused", 0, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, true},
		{"closed", 0, fasthttp.ErrConnectionClosed, false, true},
		{"no free conns", 0, fasthttp.ErrNoFreeConns, false, true},
		{"tls", 0, x509.UnknownAuthorityError{}, false, true},
		{"canceled", 0, context.Canceled, false, true},
		{"guard", 0, fmt.Errorf("dial: %w: private address", ErrPermanent), false, false},
		{"2xx body too large", 200, fasthttp.ErrBodyTooLarge, true, false},
		{"404 body too large", 404, fasthttp.ErrBodyTooLarge, false, false},
		{"503 body too large", 503, fasthttp.ErrBodyTooLarge, false, true},
	} {
		d, r := classify(tc.status, tc.err)
		if d != tc.delivered || r != tc.retryable {
			t.Errorf("%s: classify = (%v, %v), want (%v, %v)", tc.name, d, r, tc.delivered, tc.retryable)
		}
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := webhookHook(t, "http://"+addr+"/", "", "")
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	res := s.Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), nil)
	if res.Delivered || !res.Retryable || res.Status != 0 || res.Err == nil || errors.Is(res.Err, ErrPermanent) {
		t.Fatalf("result = %+v, want a retryable transport error", res)
	}
	if !strings.Contains(res.Err.Error(), "deliver hook "+h.ID) {
		t.Errorf("err = %v", res.Err)
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) {
		select {
		case <-release:
		case <-time.After(3 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's shutdown
	s := mustCompile(t, webhookHook(t, ts.url, "", `,"timeout_ms":200`), newPool(t, PoolConfig{}))
	res := s.Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), nil)
	if res.Delivered || !res.Retryable || !errors.Is(res.Err, ErrTimeout) {
		t.Fatalf("result = %+v, want a retryable ErrTimeout", res)
	}
	if res.Duration < 150*time.Millisecond || res.Duration > 2*time.Second {
		t.Errorf("duration = %v, want about the 200ms timeout", res.Duration)
	}

	// A context deadline earlier than the hook's timeout wins.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s2 := mustCompile(t, webhookHook(t, ts.url, "", `,"timeout_ms":5000`), newPool(t, PoolConfig{}))
	res = s2.Deliver(ctx, newEvent(t, "crud", "consumers", consumerData), nil)
	if !errors.Is(res.Err, ErrTimeout) || !res.Retryable || res.Duration > time.Second {
		t.Fatalf("ctx deadline: result = %+v", res)
	}
}

func TestDeliverCanceledContext(t *testing.T) {
	ts := startServer(t, nil)
	s := mustCompile(t, webhookHook(t, ts.url, "", ""), newPool(t, PoolConfig{}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := s.Deliver(ctx, newEvent(t, "crud", "consumers", consumerData), nil)
	if res.Delivered || !res.Retryable || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("result = %+v", res)
	}
	select {
	case r := <-ts.reqs:
		t.Fatalf("a request was sent: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"120", 120 * time.Second},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"", 0},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"Fri, 27 Nov 2026 08:01:30 GMT", 90 * time.Second},
		{"Friday, 27-Nov-26 08:00:10 GMT", 10 * time.Second}, // RFC 850
		{"Fri Nov 27 08:00:20 2026", 20 * time.Second},       // asctime
		{"Fri, 27 Nov 2026 07:00:00 GMT", 0},                 // past
		{"99999999999999999999999", maxRetryAfter},
	} {
		if got := parseRetryAfter([]byte(tc.in), now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}

	// End to end: seconds on a 429, an HTTP date on a 503.
	date := time.Now().Add(time.Hour).UTC().Format(time.RFC1123)
	date = strings.Replace(date, "UTC", "GMT", 1)
	ts := statusServer(t, func(ctx *fasthttp.RequestCtx) {
		if ctx.Response.StatusCode() == 429 {
			ctx.Response.Header.Set("Retry-After", "7")
		} else {
			ctx.Response.Header.Set("Retry-After", date)
		}
	})
	p := newPool(t, PoolConfig{})
	ev := newEvent(t, "crud", "consumers", consumerData)
	res := mustCompile(t, webhookHook(t, ts.url+"/429", "", ""), p).Deliver(context.Background(), ev, nil)
	if res.Status != 429 || !res.Retryable || res.RetryAfter != 7*time.Second {
		t.Errorf("429: result = %+v", res)
	}
	res = mustCompile(t, webhookHook(t, ts.url+"/503", "", ""), p).Deliver(context.Background(), ev, nil)
	if res.Status != 503 || !res.Retryable || res.RetryAfter < 59*time.Minute || res.RetryAfter > time.Hour {
		t.Errorf("503: result = %+v", res)
	}
}

func TestResponseBodyOverLimit(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/fail" {
			ctx.SetStatusCode(500)
		}
		ctx.SetBodyString(big)
	})
	p := newPool(t, PoolConfig{MaxResponseBodySize: 1024})
	ev := newEvent(t, "crud", "consumers", consumerData)
	res := mustCompile(t, webhookHook(t, ts.url+"/ok", "", ""), p).Deliver(context.Background(), ev, nil)
	if !res.Delivered || res.Status != 200 || res.Err != nil {
		t.Errorf("2xx with a large body: %+v", res)
	}
	res = mustCompile(t, webhookHook(t, ts.url+"/fail", "", ""), p).Deliver(context.Background(), ev, nil)
	if res.Delivered || !res.Retryable || res.Status != 500 {
		t.Errorf("500 with a large body: %+v", res)
	}
	// Error text is bounded.
	ts2 := statusServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(strings.Repeat("é", 1000)) })
	res = mustCompile(t, webhookHook(t, ts2.url+"/400", "", ""), p).Deliver(context.Background(), ev, nil)
	if res.Err == nil || len(res.Err.Error()) > maxErrorBody+200 {
		t.Errorf("error text not bounded: %d bytes", len(res.Err.Error()))
	}
}

func TestStaleKeepAliveIsResent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	srv := &fasthttp.Server{
		Handler:     func(ctx *fasthttp.RequestCtx) { n.Add(1) },
		IdleTimeout: 50 * time.Millisecond,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	s := mustCompile(t, webhookHook(t, "http://"+ln.Addr().String(), "", ""), newPool(t, PoolConfig{}))
	ev := newEvent(t, "crud", "consumers", consumerData)
	for i := range 3 {
		if res := s.Deliver(context.Background(), ev, nil); !res.Delivered {
			t.Fatalf("delivery %d after the server closed the idle connection: %+v", i, res)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if got := n.Load(); got != 3 {
		t.Errorf("server handled %d requests, want 3", got)
	}
}

func TestPoolSharesClients(t *testing.T) {
	p := newPool(t, PoolConfig{})
	get := func(url string, verify bool) any {
		h := webhookHook(t, url, `,"ssl_verify":`+strconv.FormatBool(verify), "")
		s, err := Compile(h, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.(*webhookSink).ep
	}
	a := get("http://example.test/a", false)
	if b := get("http://example.test:80/b", true); a != b {
		t.Error("same plain-HTTP destination got two clients")
	}
	if c := get("http://example.test:8080/", false); a == c {
		t.Error("another port shares the client")
	}
	x, y := get("https://example.test/", false), get("https://example.test:443/", true)
	if x == y {
		t.Error("ssl_verify true and false share a client")
	}
	if z := get("https://example.test/other", true); z != y {
		t.Error("same https destination got two clients")
	}
	p.Close()
	if _, err := Compile(webhookHook(t, "http://new.test/", "", ""), p, nil); err == nil {
		t.Error("a closed pool made a new client")
	}
}

func TestSSLVerify(t *testing.T) {
	cert := selfSignedCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	url := "https://" + ln.Addr().String() + "/"
	p := newPool(t, PoolConfig{})
	ev := newEvent(t, "crud", "consumers", consumerData)

	res := mustCompile(t, webhookHook(t, url, "", ""), p).Deliver(context.Background(), ev, nil)
	if !res.Delivered {
		t.Errorf("ssl_verify false (Kong's default) against a self-signed cert: %+v", res)
	}
	res = mustCompile(t, webhookHook(t, url, `,"ssl_verify":true`, ""), p).Deliver(context.Background(), ev, nil)
	if res.Delivered || !res.Retryable || res.Err == nil {
		t.Errorf("ssl_verify true against a self-signed cert: %+v", res)
	}
}

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestDialSeam(t *testing.T) {
	// An in-memory listener reached through PoolConfig.Dial: the URL's host is never
	// resolved, which is what the SSRF guard will rely on.
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	var dialed atomic.Value
	p := newPool(t, PoolConfig{Dial: func(addr string) (net.Conn, error) {
		dialed.Store(addr)
		if strings.HasPrefix(addr, "blocked.") {
			return nil, fmt.Errorf("ssrf guard: %w: %s resolves to a private address", ErrPermanent, addr)
		}
		return ln.Dial()
	}})
	ev := newEvent(t, "crud", "consumers", consumerData)
	res := mustCompile(t, webhookHook(t, "http://receiver.test/hook", "", ""), p).Deliver(context.Background(), ev, nil)
	if !res.Delivered || dialed.Load() != "receiver.test:80" {
		t.Errorf("result = %+v, dialed %v", res, dialed.Load())
	}
	res = mustCompile(t, webhookHook(t, "http://blocked.test/", "", ""), p).Deliver(context.Background(), ev, nil)
	if res.Delivered || res.Retryable || !errors.Is(res.Err, ErrPermanent) {
		t.Errorf("guard refusal: result = %+v, want permanent", res)
	}
}

func TestCompile(t *testing.T) {
	p := newPool(t, PoolConfig{})
	for _, body := range []string{
		`{"source":"crud","handler":"webhook-custom","config":{"url":"http://x.test/","method":"POST"}}`,
		`{"source":"crud","handler":"lambda","config":{"functions":["(d) => d"]}}`,
	} {
		h := mustHook(t, body)
		if s, err := Compile(h, p, nil); err != nil || s.Handler() != h.Handler {
			t.Errorf("%s: sink %v, err %v", h.Handler, s, err)
		}
	}
	// Kong's Lua does not compile as JavaScript: a schema violation naming the element.
	lua := mustHook(t, `{"source":"crud","handler":"lambda","config":{"functions":["return function(d) return d end"]}}`)
	var se *hooks.SchemaError
	if _, err := Compile(lua, p, nil); !errors.As(err, &se) || !strings.Contains(err.Error(), lua.ID) ||
		!strings.Contains(se.Fields["config.functions.1"], "SyntaxError") {
		t.Errorf("Lua lambda: err = %v, want a schema violation on config.functions.1 naming the hook", err)
	}
	h := webhookHook(t, "http://x.test/", "", "")
	unknown := *h
	unknown.Handler = "carrier-pigeon"
	if _, err := Compile(&unknown, p, nil); !errors.Is(err, ErrUnsupportedHandler) {
		t.Errorf("unknown handler: err = %v", err)
	}
	if _, err := Compile(h, nil, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil pool: err = %v", err)
	}
	if _, err := Compile(nil, p, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil hook: err = %v", err)
	}
	bad := *h
	bad.Config = []byte(`{"url":"ftp://x.test/"}`)
	if _, err := Compile(&bad, p, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ftp url: err = %v", err)
	}
	s, err := Compile(h, p, nil)
	if err != nil || s.Handler() != hooks.HandlerWebhook {
		t.Errorf("webhook: %v, %v", s, err)
	}
	if res := s.Deliver(context.Background(), nil, nil); res.Delivered || res.Retryable || !errors.Is(res.Err, ErrPermanent) {
		t.Errorf("nil event: %+v", res)
	}
}

func assertSameJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
}
