package sinks

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

// The examples of docs/transformations.md are run as written: each is the fenced block
// after a "<!-- test:NAME -->" marker.
const docsPath = "../docs/transformations.md"

func docBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- test:"+name+" -->\n")
	if !ok {
		t.Fatalf("%s has no example %q", docsPath, name)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the opening fence
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("example %q: unterminated block", name)
	}
	return block + "\n"
}

// docHook parses the hook of a curl example (the heredoc body) as the Admin API would.
func docHook(t *testing.T, name string) *hooks.Hook {
	t.Helper()
	block := docBlock(t, name)
	_, body, ok := strings.Cut(block, "<<'EOF'\n")
	if !ok {
		t.Fatalf("example %q is not a curl with a heredoc body", name)
	}
	body, _, _ = strings.Cut(body, "\nEOF\n")
	return mustHook(t, body)
}

// withConfig returns h with config key set to value.
func withConfig(t *testing.T, h *hooks.Hook, key string, value any) *hooks.Hook {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(h.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg[key] = value
	c := h.Clone()
	c.Config, _ = json.Marshal(cfg)
	return c
}

func TestDocsSlackAlert(t *testing.T) {
	h := docHook(t, "slack-hook")
	var cfg hooks.WebhookCustomConfig
	if err := json.Unmarshal(h.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if *cfg.Body != docBlock(t, "slack-template") {
		t.Fatalf("the curl body's template differs from the template shown:\n%s", *cfg.Body)
	}
	ts := startServer(t, nil)
	s := mustCompile(t, withConfig(t, h, "url", ts.url+"/services/T000/B000/XXXX"), newPool(t, PoolConfig{}))
	type message struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string              `json:"type"`
			Text     map[string]string   `json:"text"`
			Fields   []map[string]string `json:"fields"`
			Elements []map[string]string `json:"elements"`
		} `json:"blocks"`
	}
	for _, tc := range []struct{ data, text, header, target string }{
		{`{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":"unhealthy"}`,
			"Target api.internal:8000 of upstream u-1 is unhealthy", ":rotating_light: Target unhealthy", "*Target*\napi.internal:8000 (10.0.0.7)"},
		// Values that would break JSON if they were not quoted.
		{`{"upstream_id":"u\"2","ip":"::1","port":80,"hostname":"a\\b\n","health":"healthy"}`,
			"Target a\\b\n:80 of upstream u\"2 is healthy", ":white_check_mark: Target healthy again", "*Target*\na\\b\n:80 (::1)"},
	} {
		if res := s.Deliver(context.Background(), newEvent(t, "balancer", "health", tc.data), nil); !res.Delivered {
			t.Fatalf("result = %+v", res)
		}
		r := ts.next(t)
		var m message
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("Slack would get invalid JSON: %v\n%s", err, r.body)
		}
		if m.Text != tc.text || len(m.Blocks) != 3 || m.Blocks[0].Text["text"] != tc.header ||
			m.Blocks[1].Fields[1]["text"] != tc.target || !strings.HasPrefix(m.Blocks[2].Elements[0]["text"], "balancer/health · ") {
			t.Errorf("message = %+v", m)
		}
		if r.header("Content-Type") != "application/json" {
			t.Errorf("Content-Type = %q", r.header("Content-Type"))
		}
	}
}

func TestDocsKongSlackExample(t *testing.T) {
	ts := startServer(t, nil)
	h := withConfig(t, docHook(t, "kong-slack-hook"), "url", ts.url)
	if res := mustCompile(t, h, newPool(t, PoolConfig{})).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	if got := string(ts.next(t).body); got != "{\"text\":\"Admin account `ada` created; email address set to `ada@corp.example`\"}" {
		t.Errorf("body = %s", got)
	}
}

func TestDocsPolicyEnforcement(t *testing.T) {
	h := docHook(t, "policy-hook")
	var cfg hooks.LambdaConfig
	if err := json.Unmarshal(h.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Functions) != 1 || cfg.Functions[0] != docBlock(t, "policy-js") || strings.TrimSpace(cfg.Functions[0]) != policyLambda {
		t.Fatalf("the curl body's function differs from the one shown (or from the tests'):\n%s", cfg.Functions)
	}
	kongAdmin := startServer(t, func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) })
	fn := strings.ReplaceAll(cfg.Functions[0], "http://kong-admin:8001", kongAdmin.url)
	log, _ := newLog()
	s := compileWithLog(t, withConfig(t, h, "functions", []string{fn}), newPool(t, PoolConfig{}), log)
	var lane Lane
	evil := `{"operation":"create","entity":{"id":"4f2c","username":"ada","email":"ada@evil.example"}}`
	corp := `{"operation":"create","entity":{"id":"4f2d","username":"ada","email":"ada@corp.example"}}`
	if res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", corp), &lane); !res.Delivered || !res.Dropped {
		t.Errorf("corp.example admin: %+v, want nothing sent", res)
	}
	if res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", evil), &lane); !res.Delivered || res.Dropped || res.Status != 204 {
		t.Errorf("evil.example admin: %+v, want a delivered DELETE", res)
	}
	r := kongAdmin.next(t)
	if r.method != "DELETE" || r.uri != "/admins/4f2c" {
		t.Errorf("request = %s %s", r.method, r.uri)
	}
	select {
	case r := <-kongAdmin.reqs:
		t.Errorf("unexpected request %s %s", r.method, r.uri)
	case <-time.After(50 * time.Millisecond):
	}
}
