package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

// roundTrip encodes v as the Admin API would and decodes it generically.
func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestTesterWebhook(t *testing.T) {
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("X-Receiver", "yes")
		ctx.SetStatusCode(202)
		ctx.SetBodyString(`{"ok":true}`)
	})
	tr := Tester{Pool: newPool(t, PoolConfig{})}
	h := webhookHook(t, ts.url+"/hook", `,"secret":"s3cret"`, "")
	v, err := tr.Test(context.Background(), h, []byte(`{"operation":"create","entity":{"username":"ada"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, v)
	data := got["data"].(map[string]any)
	if data["source"] != "crud" || data["event"] != "consumers" || data["operation"] != "create" {
		t.Errorf("data = %v", data)
	}
	res := got["result"].(map[string]any)
	headers := res["headers"].(map[string]any)
	if res["status"] != 202.0 || res["body"] != `{"ok":true}` || headers["X-Receiver"] != "yes" || res["error"] != nil {
		t.Errorf("result = %v", res)
	}
	req := res["request"].(map[string]any)
	reqHeaders := req["headers"].(map[string]any)
	if req["method"] != "POST" || req["url"] != ts.url+"/hook" || reqHeaders["X-Kong-Signature"] == nil || !strings.Contains(req["body"].(string), `"username":"ada"`) {
		t.Errorf("request = %v", req)
	}
	r := ts.next(t)
	verifySignatures(t, "s3cret", r)
}

func TestTesterReportsFailures(t *testing.T) {
	tr := Tester{Pool: newPool(t, PoolConfig{})}
	ts := statusServer(t, nil)

	// A response, even a failing one, is the result; the error says why.
	v, err := tr.Test(context.Background(), webhookHook(t, ts.url+"/500", "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	res := roundTrip(t, v)["result"].(map[string]any)
	if res["status"] != 500.0 || res["body"] != "status body" || !strings.Contains(res["error"].(string), "status 500") {
		t.Errorf("result = %v", res)
	}

	// No response: the real error.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := tr.Test(context.Background(), webhookHook(t, closed, "", ""), nil); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: err = %v, want the connection error", err)
	}
	// A template that fails on this data.
	h := customHook(t, `"url":`+quote(ts.url+"/200")+`,"method":"POST","body":"{{ index .entity 1 }}"`)
	if _, err := tr.Test(context.Background(), h, []byte(`{"entity":{}}`)); err == nil || !strings.Contains(err.Error(), "config.body") {
		t.Errorf("render error: err = %v", err)
	}
	// Data that is not an object.
	var se *hooks.SchemaError
	if _, err := tr.Test(context.Background(), h, []byte(`[1]`)); !errors.As(err, &se) {
		t.Errorf("array data: err = %v, want a schema violation", err)
	}
}

func TestTesterCustomShowsRenderedRequest(t *testing.T) {
	ts := startServer(t, nil)
	tr := Tester{Pool: newPool(t, PoolConfig{})}
	h := customHook(t, `"url":`+quote(ts.url+"/slack")+`,"method":"POST","headers":{"content-type":"application/json"},"payload":{"text":`+quote(slackText)+`}`)
	v, err := tr.Test(context.Background(), h, []byte(adminData))
	if err != nil {
		t.Fatal(err)
	}
	req := roundTrip(t, v)["result"].(map[string]any)["request"].(map[string]any)
	if req["body"] != "{\"text\":\"Admin account `ada` created; email address set to `ada@corp.example`\"}" {
		t.Errorf("request = %v", req)
	}
}

func TestTesterLambda(t *testing.T) {
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("seen " + string(ctx.Path())) })
	tr := Tester{Pool: newPool(t, PoolConfig{})}
	h := lambdaHook(t, "", `(d, event, source) => [{ url: "`+ts.url+`/a", body: event }, { url: "`+ts.url+`/b", body: source }]`)
	v, err := tr.Test(context.Background(), h, []byte(adminData))
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, v)
	value := got["result"].([]any)
	responses := got["responses"].([]any)
	if len(value) != 2 || value[0].(map[string]any)["body"] != "admins" || len(responses) != 2 ||
		responses[1].(map[string]any)["body"] != "seen /b" || responses[1].(map[string]any)["status"] != 200.0 {
		t.Errorf("result = %v, responses = %v", value, responses)
	}

	for _, tc := range []struct{ fn, want string }{
		{`(d) => ({ user: d.entity.username })`, `{"user":"ada"}`},
		{`(d) => null`, `null`},
	} {
		v, err := tr.Test(context.Background(), lambdaHook(t, "", tc.fn), []byte(adminData))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(roundTrip(t, v)["result"]); string(b) != tc.want {
			t.Errorf("%s: result %s, want %s", tc.fn, b, tc.want)
		}
	}
	// The second request fails before anything is sent: the error, not the first answer.
	_, err = tr.Test(context.Background(), lambdaHook(t, "", `(d) => [{ url: "`+ts.url+`/a" }, { url: "ftp://x/" }]`), []byte(adminData))
	if err == nil || !strings.Contains(err.Error(), "scheme must be http or https") {
		t.Errorf("failing second request: err = %v", err)
	}
	_, err = tr.Test(context.Background(), lambdaHook(t, "", `(d) => { throw new TypeError("bad " + d.entity.username) }`), []byte(adminData))
	if err == nil || !strings.Contains(err.Error(), "TypeError: bad ada") {
		t.Errorf("throwing lambda: err = %v", err)
	}
}

func TestTesterLogAndEventName(t *testing.T) {
	log, lb := newLog()
	tr := Tester{Logger: log}
	h := mustHook(t, `{"source":"crud","handler":"log"}`)
	v, err := tr.Test(context.Background(), h, []byte(`{"event":"consumers","x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, v)
	if got["result"] != "logged" || got["data"].(map[string]any)["event"] != "consumers" || !strings.Contains(lb.String(), "event hook") {
		t.Errorf("got %v, log %s", got, lb)
	}
	v, _ = tr.Test(context.Background(), h, nil)
	if ev := roundTrip(t, v)["data"].(map[string]any)["event"]; ev != "test" {
		t.Errorf("event of a hook on every event, no data: %v", ev)
	}
}

func TestTesterPing(t *testing.T) {
	ts := startServer(t, nil)
	tr := Tester{Pool: newPool(t, PoolConfig{})}
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := webhookHook(t, ts.url+"/ping", `,"secret":"`+secret+`","headers":{"X-Team":"core"}`, "")
	v, err := tr.Ping(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	if res := roundTrip(t, v)["result"].(map[string]any); res["status"] != 200.0 {
		t.Errorf("result = %v", res)
	}
	r := ts.next(t)
	if strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), `"secret"`) {
		t.Fatalf("ping body carries the secret: %s", r.body)
	}
	var body struct {
		Source     string         `json:"source"`
		Event      string         `json:"event"`
		EventHooks map[string]any `json:"event_hooks"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	cfg := body.EventHooks["config"].(map[string]any)
	if body.Source != "kong:event_hooks" || body.Event != "ping" || body.EventHooks["id"] != h.ID ||
		cfg["url"] != ts.url+"/ping" || cfg["headers"].(map[string]any)["X-Team"] != "core" {
		t.Errorf("ping body = %s", r.body)
	}
	if r.header("X-Team") != "core" || r.header("Content-Type") != "application/json" {
		t.Errorf("headers = %v", r.headers)
	}
	verifySignatures(t, secret, r)

	var se *hooks.SchemaError
	if _, err := tr.Ping(context.Background(), lambdaHook(t, "", `(d) => d`)); !errors.As(err, &se) {
		t.Errorf("ping a lambda: err = %v, want a schema violation", err)
	}
}
