package processor_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestMetricsParseAsPrometheusText runs traffic through an instance, then parses /metrics'
// output with Prometheus's own text parser (and promtool, when installed).
func TestMetricsParseAsPrometheusText(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","snooze":60,"config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvent("u-1", 1), healthEvent("u-1", 2))
	rc.WaitFor(t, 1, 20*time.Second)
	testkit.Eventually(t, 10*time.Second, "both events processed", func() bool { return committed(t, emb.Addrs()) == 2 })

	var buf bytes.Buffer
	metrics.ExposeMetadata(true) // as admin.New does for /metrics
	metrics.WritePrometheus(&buf, true)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v", err)
	}
	for _, name := range []string{
		"eventhooks_records_consumed_total", "eventhooks_consumer_lag_records", "eventhooks_delivery_attempts_total",
		"eventhooks_delivery_duration_seconds", "eventhooks_gated_total", "eventhooks_commit_duration_seconds",
		"eventhooks_gate_entries", "eventhooks_partitions_assigned",
	} {
		if families[name] == nil {
			t.Errorf("missing metric family %s", name)
		}
	}
	if hist := families["eventhooks_delivery_duration_seconds"]; hist != nil && hist.GetType().String() != "HISTOGRAM" {
		t.Errorf("delivery latency is a %s, want a Prometheus histogram", hist.GetType())
	}
	text := buf.String()
	if !strings.Contains(text, `eventhooks_gated_total{hook="`+h.ID+`",handler="webhook",reason="snooze"} 1`) {
		t.Errorf("gated counter missing or wrong:\n%s", testkit.GrepLines(text, "eventhooks_gated_total"))
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("SKIP promtool check: promtool is not installed (.ci/run installs the prometheus package)")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	// promtool exits non-zero on lint warnings too; only parse errors fail this test.
	if err != nil && strings.Contains(string(out), "error while linting") {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	t.Logf("promtool check metrics:\n%s", out)
}
