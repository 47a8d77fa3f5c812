package main

import (
	"encoding/json"
	"testing"
)

// TestBenchPipelineFlags: --pipeline goes with webhook and webhook-custom hooks in
// separate processes, --pipeline-max-conns with --pipeline and within the hook's bound.
func TestBenchPipelineFlags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*BenchCmd)
		ok     bool
	}{
		{"webhook", func(c *BenchCmd) {}, true},
		{"webhook-custom", func(c *BenchCmd) { c.Handler = "webhook-custom" }, true},
		{"max conns", func(c *BenchCmd) { c.PipelineMaxConns = 64 }, true},
		{"lambda", func(c *BenchCmd) { c.Handler = "lambda" }, false},
		{"in process", func(c *BenchCmd) { c.InProcess = true }, false},
		{"max conns over the bound", func(c *BenchCmd) { c.PipelineMaxConns = 65 }, false},
		{"max conns without --pipeline", func(c *BenchCmd) { c.Pipeline, c.PipelineMaxConns = false, 2 }, false},
	} {
		c := smallBenchCmd()
		c.Pipeline = true
		tc.change(&c)
		if err := c.validate(); (err == nil) != tc.ok {
			t.Errorf("%s: validate = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestPipelinedBody: the bench's hook body with the pipeline set (TestBenchPipelined
// creates hooks from it through the Admin API).
func TestPipelinedBody(t *testing.T) {
	body, err := benchHookBody("webhook-custom", "http://127.0.0.1:9/in", 0)
	if err == nil {
		body, err = pipelined(body, 3)
	}
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Handler string         `json:"handler"`
		Config  map[string]any `json:"config"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Handler != "webhook-custom" || h.Config["pipeline"] != true || h.Config["pipeline_max_conns"] != 3.0 || h.Config["body"] == nil {
		t.Errorf("pipelined body %s", body)
	}
	if _, err := pipelined([]byte(`{"handler":"webhook"}`), 0); err == nil {
		t.Error("a body without config was pipelined")
	}
}

// TestBenchPipelined runs the separate-process bench small with --pipeline --baseline:
// the processor's row is the pipelined hook's and got every event, beside the
// keep-alive raw HTTP loop. It asserts no speed.
func TestBenchPipelined(t *testing.T) {
	const events = 2000
	r, out := runBench(t, events, "--pipeline", "--baseline")
	rows := []string{"produce", "eventhooks run (webhook, pipelined)", benchRawConsume, benchRawHTTP, benchBare}
	if len(r.Results) != len(rows) {
		t.Fatalf("want rows %v:\n%s", rows, out)
	}
	for i, res := range r.Results {
		checkProcessRow(t, res, rows[i], events)
	}
}
