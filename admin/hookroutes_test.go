package admin

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/sinks"
)

// newSinksEnv is an Admin API wired to the real sinks, as cmd/eventhooks wires it:
// Compile as the create-time check, Tester for /test and /ping.
func newSinksEnv(t *testing.T) *testEnv {
	t.Helper()
	pool := sinks.NewPool(sinks.PoolConfig{})
	t.Cleanup(pool.Close)
	tester := sinks.Tester{Pool: pool}
	return newEnv(t, func(c *Config) {
		c.Check = func(h *hooks.Hook) error { _, err := sinks.Compile(h, pool, nil); return err }
		c.Test, c.Ping = tester.Test, tester.Ping
	})
}

// field walks a decoded JSON object along path.
func field(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func TestCreateReportsTemplateAndScriptErrors(t *testing.T) {
	e := newSinksEnv(t)
	for _, tc := range []struct {
		name, body string
		path       []string
		want       string
	}{
		{"template", `{"source":"crud","event":"admins","handler":"webhook-custom","config":{"url":"http://x.test/","method":"POST",` +
			`"payload":{"text":"Admin {{ entity.username }}\n{{ .operation )}}"}}}`,
			[]string{"config", "payload", "text"}, "invalid template: line 2: unexpected right paren"},
		{"lua block", `{"source":"crud","event":"admins","handler":"webhook-custom","config":{"url":"http://x.test/","method":"POST",` +
			`"body":"{% if entity then %}x{% end %}"}}`,
			[]string{"config", "body"}, "invalid template: line 1: Lua blocks {% … %} are not supported; use Go template actions such as {{ if .x }}…{{ end }}"},
		{"javascript", `{"source":"crud","event":"admins","handler":"lambda","config":{"functions":["(d) => d","(d) => {\n  return d +\n}"]}}`,
			[]string{"config", "functions", "2"}, "SyntaxError: Unexpected token } (line 3:1)"},
		{"not a function", `{"source":"crud","event":"admins","handler":"lambda","config":{"functions":["\"just a string\""]}}`,
			[]string{"config", "functions", "1"}, "does not evaluate to a function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.expect(http.StatusBadRequest, "POST", "/event-hooks", tc.body).json(t)
			if got["code"] != 2.0 || field(got["fields"], tc.path...) != tc.want {
				t.Errorf("answer = %v, want fields.%s = %q", got, strings.Join(tc.path, "."), tc.want)
			}
		})
	}
	if n := len(e.store.Snapshot().Hooks); n != 0 {
		t.Errorf("%d hooks stored after rejected creates", n)
	}
}

func TestTestRunsTheHookNow(t *testing.T) {
	e := newSinksEnv(t)
	rc := testkit.NewReceiver(t)
	rc.RespondHeaders = func(int) map[string]string { return map[string]string{"X-Receiver": "yes"} }

	id := e.create(`{"source":"crud","event":"admins","handler":"webhook-custom","config":{"url":"` + rc.URL + `/slack","method":"POST",` +
		`"headers":{"content-type":"application/json"},"secret":"s3cret",` +
		`"payload":{"text":"Admin account ` + "`{{ entity.username }}`" + ` {{ operation }}d"}}}`)
	got := e.expect(http.StatusOK, "POST", "/event-hooks/"+id+"/test", `{"operation":"create","entity":{"username":"ada"}}`).json(t)
	if field(got, "data", "source") != "crud" || field(got, "data", "event") != "admins" || field(got, "data", "entity", "username") != "ada" {
		t.Errorf("data = %v", got["data"])
	}
	if field(got, "result", "status") != 200.0 || field(got, "result", "headers", "X-Receiver") != "yes" || field(got, "result", "body") != "" {
		t.Errorf("result = %v", got["result"])
	}
	want := "{\"text\":\"Admin account `ada` created\"}"
	if field(got, "result", "request", "body") != want {
		t.Errorf("request = %v", field(got, "result", "request"))
	}
	req := rc.WaitFor(t, 1, 30*time.Second)[0]
	if string(req.Body) != want || !strings.HasPrefix(req.Headers["X-Kong-Signature"], "sha1=") {
		t.Errorf("received %s %v", req.Body, req.Headers)
	}

	// A lambda: the chain's value, and the responses of the requests it made.
	lid := e.create(`{"source":"crud","event":"admins","handler":"lambda","config":{"functions":[` +
		`"(d, event) => ({ url: \"` + rc.URL + `/lambda\", body: { user: d.entity.username, event } })"]}}`)
	got = e.expect(http.StatusOK, "POST", "/event-hooks/"+lid+"/test", `{"entity":{"username":"ada"}}`).json(t)
	if field(got, "result", "url") != rc.URL+"/lambda" || field(got, "result", "body", "user") != "ada" {
		t.Errorf("lambda result = %v", got["result"])
	}
	if rs, _ := got["responses"].([]any); len(rs) != 1 || field(rs[0], "status") != 200.0 ||
		field(rs[0], "request", "body") != `{"user":"ada","event":"admins"}` {
		t.Errorf("lambda responses = %v", got["responses"])
	}

	// The real error, which Kong loses.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	did := e.create(`{"source":"crud","event":"admins","handler":"webhook","config":{"url":"` + closed + `/hook"}}`)
	if got := e.expect(http.StatusBadGateway, "POST", "/event-hooks/"+did+"/test", `{}`).json(t); !strings.Contains(got["message"].(string), "connection refused") {
		t.Errorf("502 body %v", got)
	}
	tid := e.create(`{"source":"crud","event":"admins","handler":"lambda","config":{"functions":["(d) => d.entity.email.toLowerCase()"]}}`)
	if got := e.expect(http.StatusBadGateway, "POST", "/event-hooks/"+tid+"/test", `{"entity":{}}`).json(t); !strings.Contains(got["message"].(string), "TypeError") {
		t.Errorf("502 body %v", got)
	}
}

func TestPingNeverSendsTheSecret(t *testing.T) {
	e := newSinksEnv(t)
	rc := testkit.NewReceiver(t)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id := e.create(`{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"` + rc.URL + `/ping","secret":"` + secret + `"}}`)
	got := e.expect(http.StatusOK, "GET", "/event-hooks/"+id+"/ping", "").json(t)
	if field(got, "result", "status") != 200.0 || field(got, "data", "event") != "ping" {
		t.Errorf("answer = %v", got)
	}
	req := rc.WaitFor(t, 1, 30*time.Second)[0]
	if strings.Contains(string(req.Body), secret) || strings.Contains(string(req.Body), `"secret"`) {
		t.Fatalf("ping body carries the secret: %s", req.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["source"] != "kong:event_hooks" || body["event"] != "ping" || field(body, "event_hooks", "id") != id ||
		field(body, "event_hooks", "config", "url") != rc.URL+"/ping" {
		t.Errorf("ping body = %s", req.Body)
	}
	if req.Headers["X-Kong-Signature"] == "" || req.Headers["Webhook-Signature"] == "" {
		t.Errorf("ping not signed: %v", req.Headers)
	}

	lid := e.create(`{"source":"crud","event":"consumers","handler":"lambda","config":{"functions":["(d) => null"]}}`)
	e.expect(http.StatusBadRequest, "GET", "/event-hooks/"+lid+"/ping", "")
}
