package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/bench"
)

// TestBenchFaults runs `bench --faults` small and checks the report's shape: one pair, B
// got every event in both phases, and each failing hook failed (A's 503s seen by the
// receiver and not counted as B's). It asserts no speed.
func TestBenchFaults(t *testing.T) {
	const events = 1000
	r, out := runBench(t, events, "--faults")
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

// runBench runs `bench --json` small (events over 50 keys, 2 partitions, 4 lanes, a
// 2 m timeout) with the extra flags, and returns its report decoded and as printed.
func runBench(t *testing.T, events int64, extra ...string) (bench.Report, []byte) {
	t.Helper()
	args := append([]string{"--log-level", "error", "bench", "--json", "--events", strconv.FormatInt(events, 10),
		"--keys", "50", "--partitions", "2", "--lanes", "4", "--timeout", "2m"}, extra...)
	out, err := exec.Command(binPath, args...).Output()
	if err != nil {
		t.Fatalf("bench %v: %v\n%s", extra, err, out)
	}
	var r bench.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench %v: report: %v\n%s", extra, err, out)
	}
	return r, out
}

// smallBenchCmd is the smallest bench command validate accepts, for the flag tests to
// change one thing of.
func smallBenchCmd() BenchCmd {
	return BenchCmd{Pairs: 1, Events: 10, Keys: 1, Partitions: 1, Hooks: 1, Lanes: 1, MaxConns: 1, Handler: "webhook"}
}

// TestBenchFaultsFlags: --faults refuses what it does not measure.
func TestBenchFaultsFlags(t *testing.T) {
	valid := func() BenchCmd {
		c := smallBenchCmd()
		c.Faults = true
		return c
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

// TestBenchProcesses runs the default, separate-process bench small and checks the
// report's shape: every row counted every event, each row names the processes it read,
// and none of those processes outlives the bench. It asserts no speed.
func TestBenchProcesses(t *testing.T) {
	const events = 2000
	prof, drainProf := filepath.Join(t.TempDir(), "run.prof"), filepath.Join(t.TempDir(), "drain.prof")
	for _, tc := range []struct {
		name  string
		extra []string
		rows  []string
	}{
		{"drain, profiled", []string{"--baseline", "--cpuprofile", drainProf}, []string{"produce", "eventhooks run (webhook)", benchRawConsume, benchRawHTTP, benchBare}},
		{"lambda", []string{"--handler", "lambda"}, []string{"produce", "eventhooks run (lambda)"}},
		{"rate", []string{"--baseline", "--rate", "4000"}, []string{"eventhooks run (webhook)", benchRawConsume, benchRawHTTP, benchBare}},
		// A dead hook beside the bench's: every event still reaches the receiver.
		{"dead hook, profiled", []string{"--dead-hooks", "1", "--cpuprofile", prof}, []string{"produce", "eventhooks run (webhook)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, out := runBench(t, events, tc.extra...)
			if r.Info.Shape != bench.ShapeProcesses || len(r.Results) != len(tc.rows) {
				t.Fatalf("want %d rows of shape %q:\n%s", len(tc.rows), bench.ShapeProcesses, out)
			}
			if want := map[bool]int{true: 3, false: 0}[slices.Contains(tc.extra, "--baseline")]; len(r.Ratios) != want {
				t.Errorf("%d ratios, want %d", len(r.Ratios), want)
			}
			for i, res := range r.Results {
				checkProcessRow(t, res, tc.rows[i], events)
			}
		})
	}
	for _, f := range []string{prof, drainProf, drainProf + ".bare"} { // .bare: the bare pipeline's
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("--cpuprofile: no profile at %s (%v)", f, err)
		}
	}
}

// wantProcs names the processes each row of the separate-process bench reads, its own
// first.
var wantProcs = map[string][]string{
	"produce":       {"bench (producer)", "broker"},
	benchRawConsume: {benchRawConsume, "broker"},
	benchRawHTTP:    {benchRawHTTP, "receiver"},
	benchBare:       {benchBare, "broker", "receiver"},
}

// checkProcessRow checks one row: its name, its counts (deliveries for the rows that
// send to the receiver), its processes and that they have all exited.
func checkProcessRow(t *testing.T, res bench.Result, name string, events int64) {
	t.Helper()
	procs := wantProcs[name]
	if procs == nil {
		procs = []string{"eventhooks run", "broker", "receiver"}
	}
	delivers := slices.Contains(procs, "receiver")
	if res.Name != name || res.Events != events || res.Errors != 0 || res.PerSec <= 0 ||
		(delivers && (res.Deliveries != events || res.Samples != events)) {
		t.Errorf("row %q (want %q): %d events, %d deliveries, %d latency samples, %d errors, %.0f events/s",
			res.Name, name, res.Events, res.Deliveries, res.Samples, res.Errors, res.PerSec)
	}
	if len(res.Procs) != len(procs) {
		t.Fatalf("%s: processes %+v, want %v", name, res.Procs, procs)
	}
	for i, p := range res.Procs {
		if p.Name != procs[i] || p.PID <= 0 || p.PeakRSSBytes <= 0 || p.CPUSeconds < 0 {
			t.Errorf("%s: process %d is %+v, want %s", name, i, p, procs[i])
		}
		if p.Name != "bench (producer)" && alive(p.PID) {
			t.Errorf("%s: process %s (%d) outlived the bench", name, p.Name, p.PID)
		}
	}
	if res.CPUSeconds != res.Procs[0].CPUSeconds || res.PeakRSSBytes != res.Procs[0].PeakRSSBytes {
		t.Errorf("%s: the row's CPU and RSS are not its process's: %+v", name, res)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// TestBenchProcessesDie: the bench's processes end with it, whether it fails (its
// deliveries refused by the SSRF guard, until --timeout) or is killed.
func TestBenchProcessesDie(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		kill bool
	}{
		{"timeout", []string{"--allow-destinations", "192.0.2.1/32", "--timeout", "10s"}, false},
		{"killed", []string{"--timeout", "2m", "--events", "2000000"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, append([]string{"--log-level", "error", "bench", "--events", "2000",
				"--keys", "50", "--partitions", "2", "--lanes", "4"}, tc.args...)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			seen := map[int]bool{}
			var err error
		watch:
			for {
				for _, pid := range childrenOf(cmd.Process.Pid) {
					seen[pid] = true
				}
				select {
				case err = <-exited:
					break watch
				case <-time.After(10 * time.Millisecond):
				}
				if tc.kill && len(seen) >= 3 { // broker, receiver, run
					_ = cmd.Process.Kill()
				}
			}
			if err == nil {
				t.Fatal("the bench succeeded; want it to fail")
			}
			if len(seen) < 2 {
				t.Fatalf("saw %d processes of the bench; want the broker and the receiver at least", len(seen))
			}
			deadline := time.Now().Add(time.Minute)
			for pid := range seen {
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if alive(pid) {
					t.Errorf("process %d outlived the bench", pid)
				}
			}
		})
	}
}

// childrenOf returns the processes whose parent is pid.
func childrenOf(pid int) []int {
	dirs, _ := os.ReadDir("/proc")
	var kids []int
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				kids = append(kids, child)
			}
		}
	}
	return kids
}
