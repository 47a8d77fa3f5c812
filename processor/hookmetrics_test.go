package processor_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// metricsText is what /metrics would show of the default set.
func metricsText() string {
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, false)
	return buf.String()
}

// TestPerHookSeriesGoWithTheHook: a hook's rate limit gauge and breaker state, and the
// auto-disable counter of a hook that was auto-disabled, are exported while the hook
// exists (the counter also while it is disabled: it says why) and go when it is deleted.
func TestPerHookSeriesGoWithTheHook(t *testing.T) {
	emb := testkit.Broker(t, 1)
	broken := testkit.NewReceiver(t)
	broken.Respond = func(int, *testkit.Request) int { return 500 }
	healthy := testkit.NewReceiver(t)
	var in *instance
	in = startInstance(t, emb.Addrs(), func(cfg *processor.Config) {
		cfg.DisableHook = func(ctx context.Context, id, reason string) error {
			h, ok := in.store.Snapshot().Get(id)
			if !ok {
				return nil
			}
			return in.store.Put(ctx, h.AutoDisabled(reason, time.Now()))
		}
	})
	limited := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","rate_limit":{"per_second":250},
		"config":{"url":"`+healthy.URL+`"}}`)
	failing := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","auto_disable_after":1,
		"retry":{"initial_backoff_ms":50,"max_backoff_ms":100},"config":{"url":"`+broken.URL+`"}}`)
	cl := producer(t, emb.Addrs())
	seq := 0
	testkit.Eventually(t, 60*time.Second, "the failing hook auto-disabled", func() bool {
		seq++ // attempts must keep failing for its auto_disable_after: keep sending
		produce(t, cl, healthEvent("u-1", seq))
		h, ok := in.store.Snapshot().Get(failing.ID)
		return ok && !h.IsEnabled()
	})

	series := []string{
		`eventhooks_hook_rate_limit_per_second{hook_id="` + limited.ID + `"} 250`,
		`eventhooks_hook_breaker_state{hook_id="` + limited.ID + `"} 0`,
		`eventhooks_hook_auto_disabled_total{hook_id="` + failing.ID + `"} 1`,
	}
	// The counter follows the store's write of the disabled hook, which the wait above saw.
	var text string
	testkit.Eventually(t, 10*time.Second, "the hooks' series while they exist", func() bool {
		text = metricsText()
		return !slices.ContainsFunc(series, func(s string) bool { return !strings.Contains(text, s) })
	})
	for _, id := range []string{limited.ID, failing.ID} {
		if err := in.store.Delete(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	text = metricsText()
	for _, s := range series {
		if name, _, _ := strings.Cut(s, "} "); strings.Contains(text, name) {
			t.Errorf("%s} is still exported after the hook was deleted", name)
		}
	}
}
