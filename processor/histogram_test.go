package processor

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLatencyHistogram(t *testing.T) {
	h := latencies.get("h-test", "webhook")
	defer latencies.remove("h-test")
	for _, d := range []time.Duration{100 * time.Microsecond, time.Millisecond, 30 * time.Second} {
		h.observe(d)
	}
	var buf bytes.Buffer
	latencies.write(&buf)
	out := buf.String()
	for _, want := range []string{
		`eventhooks_delivery_duration_seconds_bucket{hook="h-test",handler="webhook",le="0.0005"} 1`,
		`eventhooks_delivery_duration_seconds_bucket{hook="h-test",handler="webhook",le="0.001"} 2`,
		`eventhooks_delivery_duration_seconds_bucket{hook="h-test",handler="webhook",le="10"} 2`,
		`eventhooks_delivery_duration_seconds_bucket{hook="h-test",handler="webhook",le="+Inf"} 3`,
		`eventhooks_delivery_duration_seconds_sum{hook="h-test",handler="webhook"} 30.0011`,
		`eventhooks_delivery_duration_seconds_count{hook="h-test",handler="webhook"} 3`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
	if n := testing.AllocsPerRun(100, func() { h.observe(time.Millisecond) }); n != 0 {
		t.Errorf("observe allocates %.0f times", n)
	}
}
