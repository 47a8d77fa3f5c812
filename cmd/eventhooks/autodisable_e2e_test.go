package main

import (
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestHookFailingForItsAutoDisableAfterIsDisabled: a hook whose receiver answers 500 to
// everything is disabled once its attempts have failed for auto_disable_after, with the
// reason on the entity and in the metrics; a hook beside it on a healthy receiver keeps
// delivering, and enabling the hook again clears the reason.
func TestHookFailingForItsAutoDisableAfterIsDisabled(t *testing.T) {
	emb := testkit.Broker(t, 4)
	brokers := emb.Addrs()[0]
	broken, _ := brokenReceiver(t, 500)
	healthy := testkit.NewReceiver(t)
	p := start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers)
	hook := p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","auto_disable_after":2,
		"retry":{"initial_backoff_ms":100,"max_backoff_ms":300},"config":{"url":"`+broken.URL+`"}}`)
	p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+healthy.URL+`"}}`)
	id := hook["id"].(string)

	var got map[string]any
	for seq := 0; ; seq += 10 {
		produceHealthFrom(t, brokers, seq, 10, 5)
		if _, got = p.call(t, "GET", "/event-hooks/"+id, ""); got["enabled"] == false {
			break
		}
		if seq > 2000 {
			t.Fatalf("the hook was not disabled after %d events failing for over 2 s: %v", seq, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	reason, _ := got["disabled_reason"].(string)
	if !strings.Contains(reason, "auto_disable_after 2 s") || !strings.Contains(reason, "status 500") {
		t.Fatalf("disabled_reason = %q, want why (auto_disable_after, the last error)", reason)
	}
	if first := broken.Requests()[0].At; time.Since(first) < 2*time.Second {
		t.Fatalf("disabled %v after its first failure: before its auto_disable_after", time.Since(first))
	}
	metricsText := string(p.scrape(t))
	if !strings.Contains(metricsText, `eventhooks_hook_auto_disabled_total{hook_id="`+id+`"} 1`) {
		t.Fatal("the auto-disable is not in the metrics")
	}
	produced := endOffsets(t, brokers, "eventhooks-events")
	healthy.WaitFor(t, int(produced), 60*time.Second)

	if code, h := p.call(t, "PATCH", "/event-hooks/"+id, `{"enabled":true}`); code != 200 || h["disabled_reason"] != nil {
		t.Fatalf("enable again: %d %v, want the reason cleared", code, h)
	}
}
