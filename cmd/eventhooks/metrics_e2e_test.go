package main

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestMetricsHaveHelpAndType scrapes /metrics of `run` after real deliveries (one to a
// receiver, one gated by snooze, one refused by a 410): every eventhooks_* family has a
// HELP text and a TYPE, and promtool, when installed, finds nothing to say about them.
func TestMetricsHaveHelpAndType(t *testing.T) {
	emb := testkit.Broker(t, 2)
	brokers := emb.Addrs()[0]
	ok := testkit.NewReceiver(t)
	gone, _ := brokenReceiver(t, 410)
	p := start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers)
	p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","snooze":60,"config":{"url":"`+ok.URL+`"}}`)
	p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+gone.URL+`"}}`)
	const n = 60 // 50 keys: 50 delivered, 10 snoozed
	produceHealth(t, brokers, n)
	ok.WaitFor(t, 50, 60*time.Second)
	testkit.Eventually(t, 60*time.Second, "the 410s dead-lettered", func() bool {
		return endOffsets(t, brokers, "eventhooks-dlq") == n
	})
	scrape := p.scrape(t)

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(scrape))
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v", err)
	}
	want := map[string]string{ // a family the deliveries made, and its type
		"eventhooks_delivery_attempts_total": "COUNTER", "eventhooks_gated_total": "COUNTER",
		"eventhooks_dead_lettered_total": "COUNTER", "eventhooks_records_consumed_total": "COUNTER",
		"eventhooks_delivery_duration_seconds": "HISTOGRAM", "eventhooks_breaker_state": "GAUGE",
		"eventhooks_commit_duration_seconds": "HISTOGRAM", "eventhooks_consumer_lag_records": "GAUGE",
		"eventhooks_admin_requests_total": "COUNTER", "eventhooks_build_info": "GAUGE",
	}
	ours := 0
	for name, f := range families {
		if !strings.HasPrefix(name, "eventhooks_") {
			continue
		}
		ours++
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("%s has no HELP text", name)
		}
		if !bytes.Contains(scrape, []byte("\n# TYPE "+name+" ")) {
			t.Errorf("%s has no TYPE line", name)
		}
		if typ, ok := want[name]; ok && f.GetType().String() != typ {
			t.Errorf("%s is a %s, want a %s", name, f.GetType(), typ)
		}
	}
	for name := range want {
		if families[name] == nil {
			t.Errorf("no family %s after deliveries", name)
		}
	}
	t.Logf("%d eventhooks_* families, each with HELP and TYPE", ours)
	promtoolCheck(t, scrape)
}

// scrape returns the body of GET /metrics.
func (p *proc) scrape(t *testing.T) []byte {
	t.Helper()
	return p.get(t, "/metrics")
}

// get returns the body of GET path on the Admin API, which must answer 200.
func (p *proc) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(p.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return body
}

// promtoolCheck runs `promtool check metrics` on scrape, when promtool is installed, and
// fails on a parse error or any complaint about an eventhooks_* family. Its complaints
// about the Go and process series of the metrics package (names it chose, such as
// go_cgo_calls_count) are logged only.
func promtoolCheck(t *testing.T, scrape []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("SKIP promtool check: promtool is not installed (.ci/run installs the prometheus package)")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, _ := cmd.CombinedOutput() // non-zero on any lint, ours or not: the lines decide
	var others []string
	for line := range strings.Lines(string(out)) {
		switch {
		case strings.HasPrefix(line, "eventhooks_") || strings.Contains(line, "error while linting"):
			t.Errorf("promtool: %s", strings.TrimSpace(line))
		case strings.TrimSpace(line) != "":
			others = append(others, strings.TrimSpace(line))
		}
	}
	t.Logf("promtool check metrics: nothing about eventhooks_*; %d lines about the metrics package's own Go/process series", len(others))
}
