package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	transformations = "docs/transformations.md"
	slackSection    = "Example: Slack alert for unhealthy upstream targets"
	policySection   = "Example: enforce the admins' email domain"
	testingSection  = "Testing hooks: `/test` and `/ping`"
)

// TestDocsTransformations runs the shell blocks of docs/transformations.md in order
// against dev, the receiver standing in for Slack and for Kong's Admin API: each hook is
// created with jq from the file the doc says to save and with the full request body —
// the same hook, and the second gets 409 as the doc warns —, /test and the emitted event
// send what the doc shows, and the policy lambda deletes only the outsider.
func TestDocsTransformations(t *testing.T) {
	b := shellBlocks(t, slackKey(1), slackKey(2), slackKey(3), slackKey(4), slackKey(5),
		policyKey(1), policyKey(2), policyKey(3), testingKey(1))
	e := newDocEnv(t, 2)
	e.save(t, "slack-alert.tmpl", docBlockOf(t, transformations, slackSection, "gotemplate", 1))
	e.save(t, "enforce-admin-domain.js", docBlockOf(t, transformations, policySection, "js", 1))

	slack := e.sameHookTwoWays(t, b[slackKey(1)], b[slackKey(2)])
	t.Run("slack /test", func(t *testing.T) {
		out := jsonOut(t, e.run(t, b[slackKey(3)], "ID="+slack))
		req, _ := field(out, "result", "request").(map[string]any)
		var msg map[string]any
		if body, _ := req["body"].(string); field(out, "result", "status") != 200.0 || json.Unmarshal([]byte(body), &msg) != nil ||
			msg["text"] != "Target api.internal:8000 of upstream u-1 is unhealthy" {
			t.Errorf("/test answered %v", out)
		}
		e.expectDeliveries(t, 0, delivery{"/services/T000/B000/XXXX", map[string]any{"text": msg["text"]}})
	})
	t.Run("slack emit", func(t *testing.T) {
		from := len(e.rc.Requests())
		e.run(t, b[slackKey(4)])
		got := e.rc.WaitFor(t, from+1, 60*time.Second)[from]
		// The context line ends with the time of rendering; the doc shows one.
		body := regexp.MustCompile(`· [0-9T:.-]+Z"`).ReplaceAll(got.Body, []byte(`· 2026-11-27T08:00:00Z"`))
		var gotMsg, wantMsg any
		if err := json.Unmarshal(body, &gotMsg); err != nil {
			t.Fatalf("Slack got %s: %v", got.Body, err)
		}
		if err := json.Unmarshal([]byte(docBlockOf(t, transformations, slackSection, "json", 1)), &wantMsg); err != nil {
			t.Fatal(err)
		}
		if got.Path != "/services/T000/B000/XXXX" || !reflect.DeepEqual(gotMsg, wantMsg) {
			t.Errorf("Slack got %s %s, the doc shows\n%s", got.Path, got.Body, docBlockOf(t, transformations, slackSection, "json", 1))
		}
	})

	t.Run("Kong's Slack example and /test", func(t *testing.T) {
		kongSlack := hookID(t, jsonOut(t, e.run(t, b[slackKey(5)])))
		from := len(e.rc.Requests())
		out := jsonOut(t, e.run(t, b[testingKey(1)], "ID="+kongSlack))
		var want map[string]any
		if err := json.Unmarshal([]byte(e.addrs.Replace(docBlockOf(t, transformations, testingSection, "json", 1))), &want); err != nil {
			t.Fatal(err)
		}
		if !contains(out["data"], want["data"]) || field(out, "result", "status") != 200.0 ||
			!contains(field(out, "result", "request"), field(want, "result", "request")) {
			t.Errorf("/test answered %v, the doc shows %v", out, want)
		}
		e.expectDeliveries(t, from, delivery{"/services/T000/B000/XXXX",
			map[string]any{"text": "Admin account `ada` created; email address set to `ada@corp.example`"}})
	})

	policy := e.sameHookTwoWays(t, b[policyKey(1)], b[policyKey(2)])
	t.Run("policy /test", func(t *testing.T) {
		from := len(e.rc.Requests())
		out := jsonOut(t, e.run(t, b[policyKey(3)], "ID="+policy))
		const path = "/admins/4f2c%E2%80%A6" // encodeURIComponent("4f2c…")
		if !contains(out["result"], map[string]any{"method": "DELETE", "url": e.rc.URL + path}) ||
			!contains(out["responses"], []any{map[string]any{"status": 200.0}}) {
			t.Errorf("/test of the outsider answered %v", out)
		}
		got := e.rc.WaitFor(t, from+1, 60*time.Second)[from]
		if got.Method != "DELETE" || got.Path != path || got.Headers["Kong-Admin-Token"] != "change-me" {
			t.Errorf("Kong got %s %s %v", got.Method, got.Path, got.Headers)
		}
		inside := strings.Replace(b[policyKey(3)], "ada@evil.example", "ada@corp.example", 1)
		if out := jsonOut(t, e.run(t, inside, "ID="+policy)); out["result"] != nil || len(e.rc.Requests()) != from+1 {
			t.Errorf("/test of ada@corp.example answered %v, want result null and nothing sent", out)
		}
	})
}

// slackKey, policyKey and testingKey name the n-th shell block of their section.
func slackKey(n int) string   { return transKey(slackSection, n) }
func policyKey(n int) string  { return transKey(policySection, n) }
func testingKey(n int) string { return transKey(testingSection, n) }
func transKey(section string, n int) string {
	return fmt.Sprintf("%s: %s #%d", transformations, section, n)
}

// save writes a file the doc says to save into the blocks' working directory, its
// addresses replaced as in the blocks.
func (e *docEnv) save(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(e.addrs.Replace(content)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sameHookTwoWays runs a jq block and the full-body block that the doc says create the
// same hook: the second gets 409 (the name is taken), and, once the first is deleted,
// creates a hook equal to it. It returns the id of the hook left.
func (e *docEnv) sameHookTwoWays(t *testing.T, jq, full string) string {
	t.Helper()
	first := jsonOut(t, e.run(t, jq))
	if out := e.run(t, full); !strings.Contains(out, "UNIQUE violation") {
		t.Errorf("the full body after jq answered %s, want the doc's 409", out)
	}
	if code, _ := e.p.call(t, "DELETE", "/event-hooks/"+hookID(t, first), ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	second := jsonOut(t, e.run(t, full))
	for _, k := range []string{"name", "source", "event", "handler", "on_change", "config"} {
		if !reflect.DeepEqual(first[k], second[k]) {
			t.Errorf("%s: jq gave %v, the full body %v", k, first[k], second[k])
		}
	}
	return hookID(t, second)
}

// hookID returns the id of the hook an Admin API answer shows.
func hookID(t *testing.T, answer map[string]any) string {
	t.Helper()
	id, _ := answer["id"].(string)
	if id == "" {
		t.Fatalf("no hook created: %v", answer)
	}
	return id
}

// field walks a path of object members.
func field(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}
