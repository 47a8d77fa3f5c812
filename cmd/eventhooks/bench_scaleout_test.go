package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/eventhooks/eventhooks/bench"
)

// scaleOutEvents is the backlog of the small scale-out runs: with the receiver answering
// after 5 ms and one lane per partition it drains for seconds, long enough for the group
// to rebalance mid-drain even on an idle machine.
const scaleOutEvents = 10000

// TestBenchScaleOut runs `bench --scale-out` small, the second instance joining or
// leaving on SIGTERM mid-drain, and checks the report's shape, that every event id
// arrived, and that the second instance took part in the drain. With two CPUs or more
// the instances are pinned: by taskset (if installed) when joining, by
// sched_setaffinity (taskset out of PATH) when leaving. It asserts no speed.
func TestBenchScaleOut(t *testing.T) {
	pin := runtime.GOOS == "linux" && runtime.NumCPU() >= 2
	for _, tc := range []struct {
		rebalance string
		path      string // PATH of the bench, "" for the test's
	}{{rebalanceJoin, ""}, {rebalanceLeave, t.TempDir()}} {
		t.Run(tc.rebalance, func(t *testing.T) {
			args := []string{"--log-level", "warn", "bench", "--scale-out", "--json", "--events", strconv.Itoa(scaleOutEvents),
				"--keys", "50", "--partitions", "8", "--lanes", "1", "--receiver-delay", "5ms",
				"--rebalance", tc.rebalance, "--rebalance-at", "0.05", "--timeout", "5m"}
			if pin {
				args = append(args, "--pin")
			}
			cmd := exec.Command(binPath, args...)
			if tc.path != "" {
				cmd.Env = append(os.Environ(), "PATH="+tc.path)
			}
			out, err := cmd.Output()
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				t.Fatalf("bench %s: %v\n%s\n%s", strings.Join(args, " "), err, out, ee.Stderr)
			} else if err != nil {
				t.Fatal(err)
			}
			var r bench.Report
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("report: %v\n%s", err, out)
			}
			s := r.ScaleOut
			if s == nil || len(s.Pairs) != 1 || len(r.Results) != 2 {
				t.Fatalf("want one pair and two rows:\n%s", out)
			}
			p := s.Pairs[0]
			if p.Ratio <= 0 || s.Ratio != p.Ratio || p.One.PerSec <= 0 || p.Two.PerSec <= 0 {
				t.Errorf("pair %+v, median %v", p, s.Ratio)
			}
			for i, ph := range []bench.ScalePhase{p.One, p.Two} {
				checkScalePhase(t, r.Results[i], ph, i+1, pin)
			}
			checkRebalanced(t, p.Two, tc.rebalance)
			if how := map[bool]string{true: "sched_setaffinity", false: "taskset"}[tc.path != ""]; pin && !strings.Contains(s.Setup, how) {
				if _, err := exec.LookPath("taskset"); err == nil || tc.path != "" {
					t.Errorf("setup %q, want the instances pinned by %s", s.Setup, how)
				}
			}
		})
	}
}

// checkScalePhase checks a phase of n instances: every event id arrived, its row names
// the instances, the broker and the receiver, which all exited, and with pin each
// instance ran on a core of its own with GOMAXPROCS=1.
func checkScalePhase(t *testing.T, res bench.Result, ph bench.ScalePhase, n int, pin bool) {
	t.Helper()
	if res.Name != ph.Name || res.Events != scaleOutEvents || res.Deliveries < scaleOutEvents || res.PerSec != ph.PerSec {
		t.Errorf("row %+v for phase %s", res, ph.Name)
	}
	if ph.IDs.Expected != scaleOutEvents || ph.IDs.Distinct != scaleOutEvents || ph.IDs.Unknown != 0 || ph.IDs.CompleteAt == 0 {
		t.Errorf("%s: event ids %+v", ph.Name, ph.IDs)
	}
	if len(ph.Members) != n || len(res.Procs) != n+2 {
		t.Fatalf("%s: instances %+v, processes %+v; want %d instances", ph.Name, ph.Members, res.Procs, n)
	}
	var delivered int64 // a leaving instance's is read before its SIGTERM: it may deliver more
	left := false
	for i, m := range ph.Members {
		delivered += m.Delivered
		left = left || m.StoppedAt > 0
		wantCPUs, wantProcs := strconv.Itoa(i), "1"
		if !pin {
			wantCPUs, wantProcs = m.CPUs, ""
		}
		if m.PID != res.Procs[i].PID || m.CPUs != wantCPUs || m.GOMAXPROCS != wantProcs {
			t.Errorf("%s: instance %+v, process %+v; want CPUs %q", ph.Name, m, res.Procs[i], wantCPUs)
		}
	}
	if (!left && delivered < scaleOutEvents) || delivered > ph.IDs.Distinct+ph.IDs.Duplicates {
		t.Errorf("%s: the instances delivered %d, the receiver counted %+v", ph.Name, delivered, ph.IDs)
	}
	for i, want := range append(make([]string, n), "broker", "receiver") {
		pr := res.Procs[i]
		if (want != "" && pr.Name != want) || pr.PID <= 0 || pr.PeakRSSBytes <= 0 || alive(pr.PID) {
			t.Errorf("%s: process %d is %+v (alive %v), want %q", ph.Name, i, pr, alive(pr.PID), want)
		}
	}
}

// checkRebalanced checks that the second instance joined or left mid-drain, and that it
// delivered part of the backlog meanwhile.
func checkRebalanced(t *testing.T, ph bench.ScalePhase, rebalance string) {
	t.Helper()
	second := ph.Members[1]
	at := second.ReadyAt
	if rebalance == rebalanceLeave {
		at = second.StoppedAt
	}
	if at <= 0 || at >= scaleOutEvents || second.Delivered <= 0 || !midDrain(ph) {
		t.Errorf("%s: the second instance %+v did not %s mid-drain of %d events", ph.Name, second, rebalance, scaleOutEvents)
	}
}

// TestBenchScaleOutFlags: --scale-out refuses what it does not measure, and its flags
// are refused without it.
func TestBenchScaleOutFlags(t *testing.T) {
	valid := func() BenchCmd {
		c := smallBenchCmd()
		c.ScaleOut, c.Rebalance, c.RebalanceAt = true, rebalanceJoin, defaultRebalanceAt
		return c
	}
	if c := valid(); c.validate() != nil {
		t.Fatalf("validate refused %+v: %v", c, c.validate())
	}
	for flag, change := range map[string]func(*BenchCmd){
		"--scale-out":      func(c *BenchCmd) { c.InProcess = true },
		"--faults":         func(c *BenchCmd) { c.Faults = true },
		"--baseline":       func(c *BenchCmd) { c.Baseline = true },
		"--rate":           func(c *BenchCmd) { c.Rate = 100 },
		"--hooks":          func(c *BenchCmd) { c.Hooks = 2 },
		"--handler":        func(c *BenchCmd) { c.Handler = "webhook-custom" },
		"--rebalance-at":   func(c *BenchCmd) { c.RebalanceAt = 1 },
		"--receiver-delay": func(c *BenchCmd) { c.ReceiverDelay = -1 },
		"--pin":            func(c *BenchCmd) { c.ScaleOut, c.Pin = false, true },
		"--rebalance":      func(c *BenchCmd) { c.ScaleOut, c.Rebalance = false, rebalanceLeave },
	} {
		c := valid()
		change(&c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: validate said %v, want an error naming %s", flag, err, flag)
		}
	}
}

// TestLostError: a phase that lost events says how many, which and why.
func TestLostError(t *testing.T) {
	err := lostError(bench.IDStats{Expected: 10, Distinct: 8, Duplicates: 3}, []int64{2, 7}, "none arrived for 1m30s")
	want := "lost 2 of 10 event ids (none arrived for 1m30s): seq 2, 7…; 3 duplicates, 0 requests without an id"
	if err == nil || err.Error() != want {
		t.Errorf("lostError = %v, want %q", err, want)
	}
}
