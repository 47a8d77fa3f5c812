package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// page returns the HTML of a console page (dev has no token: no login).
func (p *proc) page(t *testing.T, path string) string {
	t.Helper()
	return string(p.get(t, path))
}

// TestHookBreakerStateInMetricsAndConsole: of two hooks on one receiver (one host:port),
// the one whose path answers 503 opens its own breaker (eventhooks_hook_breaker_state 2,
// "hook open" on the console) while the other hook's and the destination's stay closed;
// deleting the hook removes its gauge.
func TestHookBreakerStateInMetricsAndConsole(t *testing.T) {
	rc := testkit.NewReceiver(t)
	rc.Respond = func(_ int, r *testkit.Request) int {
		if strings.HasPrefix(r.Path, "/broken") {
			return 503
		}
		return 200
	}
	kafka := testkit.FreeAddr(t)
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "2")
	hookOn := func(path string) string {
		return p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook",
			"retry":{"initial_backoff_ms":20,"max_backoff_ms":100},"config":{"url":"`+rc.URL+path+`"}}`)["id"].(string)
	}
	broken, healthy := hookOn("/broken"), hookOn("/ok")
	gauge := func(id string) string { return `eventhooks_hook_breaker_state{hook_id="` + id + `"} ` }
	produceHealthFrom(t, kafka, 0, 50, 10)

	testkit.Eventually(t, 2*time.Minute, "the 503 hook's breaker open, in the metrics", func() bool {
		return strings.Contains(string(p.scrape(t)), gauge(broken)+"2\n")
	})
	dest, _ := url.Parse(rc.URL)
	scrape := string(p.scrape(t))
	for _, want := range []string{gauge(healthy) + "0\n", `eventhooks_breaker_state{destination="` + dest.Host + `"} 0` + "\n"} {
		if !strings.Contains(scrape, want) {
			t.Errorf("no %q in /metrics:\n%s", want, testkit.GrepLines(scrape, "breaker_state"))
		}
	}
	// The broken hook's probes turn it half-open for a moment: look until it reads open.
	for path, want := range map[string][]string{
		"/ui/":                 {">hook open<", ">hook closed<", ">destination closed<"},
		"/ui/hooks/" + broken:  {">hook open<", ">destination closed<"},
		"/ui/hooks/" + healthy: {">hook closed<", ">destination closed<"},
	} {
		testkit.Eventually(t, time.Minute, path+" shows the breakers "+strings.Join(want, " "), func() bool {
			html := p.page(t, path)
			for _, w := range want {
				if !strings.Contains(html, w) {
					return false
				}
			}
			return true
		})
	}

	if code, _ := p.call(t, "DELETE", "/event-hooks/"+broken, ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if scrape := string(p.scrape(t)); strings.Contains(scrape, gauge(broken)) {
		t.Errorf("the deleted hook's breaker gauge is still exported:\n%s", testkit.GrepLines(scrape, "hook_breaker_state"))
	}
}
