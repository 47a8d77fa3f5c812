package main

import (
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/eventhooks/eventhooks/bench"
)

// TestBenchFaults runs `bench --faults` small and checks the report's shape: one pair, B
// got every event in both phases, and each failing hook failed (A's 503s seen by the
// receiver and not counted as B's). It asserts no speed.
func TestBenchFaults(t *testing.T) {
	const events = 1000
	out, err := exec.Command(binPath, "--log-level", "error", "bench", "--faults", "--json",
		"--events", "1000", "--keys", "50", "--partitions", "2", "--lanes", "4", "--timeout", "2m").Output()
	if err != nil {
		t.Fatalf("bench --faults: %v\n%s", err, out)
	}
	var r bench.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if r.Faults == nil || len(r.Faults.Pairs) != 1 || len(r.Results) != 2 {
		t.Fatalf("want one pair and two rows:\n%s", out)
	}
	for _, res := range r.Results {
		if res.Events != events || res.Deliveries < events || res.PerSec <= 0 {
			t.Errorf("%s: %d events, %d deliveries to B, %.0f events/s", res.Name, res.Events, res.Deliveries, res.PerSec)
		}
	}
	p := r.Faults.Pairs[0]
	if p.Ratio <= 0 || r.Faults.Ratio != p.Ratio || len(p.FaultHooks) != 3 {
		t.Fatalf("pair %+v, median %v", p, r.Faults.Ratio)
	}
	for _, h := range p.FaultHooks {
		if h.Delivered != 0 || h.Failed == 0 {
			t.Errorf("failing hook %s: %+v", h.Name, h)
		}
	}
	if a := p.FaultHooks[0]; a.Name != "A" || a.ReceiverFailed == 0 {
		t.Errorf("the receiver answered no request of A with 503: %+v", a)
	}
}

// TestBenchFaultsFlags: --faults refuses what it does not measure.
func TestBenchFaultsFlags(t *testing.T) {
	valid := func() BenchCmd {
		return BenchCmd{Faults: true, Pairs: 1, Events: 10, Keys: 1, Partitions: 1, Hooks: 1, Lanes: 1, MaxConns: 1, Handler: "webhook"}
	}
	if c := valid(); c.validate() != nil {
		t.Fatalf("validate refused %+v: %v", c, c.validate())
	}
	for _, change := range []func(*BenchCmd){
		func(c *BenchCmd) { c.Baseline = true },
		func(c *BenchCmd) { c.Rate = 1000 },
		func(c *BenchCmd) { c.Hooks = 2 },
		func(c *BenchCmd) { c.DeadHooks = 1 },
		func(c *BenchCmd) { c.Handler = "log" },
		func(c *BenchCmd) { c.Pairs = 0 },
	} {
		c := valid()
		change(&c)
		if err := c.validate(); err == nil {
			t.Errorf("validate accepted %+v", c)
		}
	}
}
