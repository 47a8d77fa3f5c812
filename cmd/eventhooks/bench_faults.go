package main

// `eventhooks bench --faults`: failure isolation. The healthy hook B drains a backlog
// alone, then beside three failing hooks, alternately, each phase on fresh topics with a
// fresh processor; the figure is B's events/s with the faults over B's alone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

const (
	// faultsTarget is the ratio aimed for: B with the faults / B alone.
	faultsTarget = 0.8
	// faultsHealthyPath and faultsFailingPath are B's and A's paths on the receiver.
	faultsHealthyPath = "/b"
	faultsFailingPath = "/a"
	// faultsStatus is what the receiver answers on A's path, for the whole run.
	faultsStatus = 503
	// faultsLoop is C's lambda.
	faultsLoop = `(d) => { while (true) {} }`
)

// faultHook is a failing hook of the faults phase.
type faultHook struct {
	name, desc string
	body       []byte
	receiver   bool // its requests reach the receiver, on faultsFailingPath
}

// faultHooks returns A, C and D (B is the healthy bench hook), with the default
// ordering, retry policy and timeout: as a user would create them. refused is a
// loopback host:port nothing listens on.
func (b *benchRun) faultHooks(refused string) ([]faultHook, error) {
	mk := func(name, handler string, cfg map[string]any) ([]byte, error) {
		return json.Marshal(map[string]any{
			"name": name, "source": bench.EventSource, "event": bench.EventName, "handler": handler, "config": cfg,
		})
	}
	a, err := mk("A", hooks.HandlerWebhook, map[string]any{"url": b.rcv.URL + faultsFailingPath[1:]})
	if err != nil {
		return nil, err
	}
	c, err := mk("C", hooks.HandlerLambda, map[string]any{"functions": []string{faultsLoop}})
	if err != nil {
		return nil, err
	}
	d, err := mk("D", hooks.HandlerWebhook, map[string]any{"url": "http://" + refused + "/d"})
	if err != nil {
		return nil, err
	}
	return []faultHook{
		{name: "A", body: a, receiver: true,
			desc: fmt.Sprintf("A: webhook to the receiver's %s, answered %d for the whole run (B's host:port, another path)", faultsFailingPath, faultsStatus)},
		{name: "C", body: c, desc: "C: lambda " + faultsLoop},
		{name: "D", body: d, desc: "D: webhook to " + refused + ", a loopback port nothing listens on (connection refused)"},
	}, nil
}

// runFaults runs --pairs pairs of phases, B alone then B with A, C and D, and reports
// both events/s, their ratio and what the failing hooks did.
func (b *benchRun) runFaults(ctx context.Context) error {
	c := b.cmd
	b.rcv.FailPath(faultsFailingPath, faultsStatus)
	f := &bench.FaultsReport{
		Setup: fmt.Sprintf("every hook with the default ordering (key), retry policy (%d attempts, backoff from %d ms doubling to %d s) "+
			"and timeout (%d s; a lambda's script is stopped after %v)", hooks.DefaultMaxAttempts, hooks.DefaultInitialBackoffMs,
			hooks.DefaultMaxBackoffMs/1000, hooks.DefaultTimeoutMs/1000, sinks.DefaultLambdaTimeout),
		Target: faultsTarget,
	}
	b.report.Faults = f
	b.report.Info.Mode = "drain of a backlog, B alone then beside failing hooks"
	b.report.Ours, b.report.Baselines = "", nil
	for i := 1; i <= c.Pairs; i++ {
		refused, err := refusedAddr()
		if err != nil {
			return err
		}
		fhs, err := b.faultHooks(refused)
		if err != nil {
			return err
		}
		if i == 1 {
			f.Hooks = append(f.Hooks, "B: the bench's "+c.Handler+" hook, to the receiver's "+faultsHealthyPath)
			for _, fh := range fhs {
				f.Hooks = append(f.Hooks, fh.desc)
			}
		}
		alone, _, err := b.faultsPhase(ctx, i, nil)
		if err != nil {
			return err
		}
		withFaults, seen, err := b.faultsPhase(ctx, i, fhs)
		if err != nil {
			return err
		}
		p := bench.FaultPair{Alone: bench.NewFaultPhase(alone), Faults: bench.NewFaultPhase(withFaults), FaultHooks: seen}
		f.Add(p)
		p = f.Pairs[len(f.Pairs)-1]
		b.log.Info("faults pair", "pair", i, "alone events/s", int(p.Alone.PerSec), "faults events/s", int(p.Faults.PerSec),
			"ratio", strconv.FormatFloat(p.Ratio, 'f', 2, 64))
	}
	b.addNotes()
	b.report.Notes = append(b.report.Notes, fmt.Sprintf("--faults: each phase drains its own backlog of %d events on fresh topics "+
		"with a fresh processor (group join included); B's events/s run from the processor's start to the receiver's %d-th request "+
		"on %s; A's requests, answered %d on %s, are counted apart", c.Events, c.Events, faultsHealthyPath, faultsStatus, faultsFailingPath))
	return nil
}

// faultsPhase runs one phase of pair: B alone (fhs nil) or beside fhs. It returns B's
// row and, with fhs, what each failing hook did.
func (b *benchRun) faultsPhase(ctx context.Context, pair int, fhs []faultHook) (bench.Result, []bench.FaultHook, error) {
	kind, name, profile := "alone", "B alone", b.cmd.CPUProfile
	if fhs != nil {
		kind, name = "faults", "B with A, C, D"
	} else if profile != "" {
		profile += ".alone"
	}
	if b.cmd.Pairs > 1 {
		name += " #" + strconv.Itoa(pair)
		if profile != "" {
			profile += "." + strconv.Itoa(pair)
		}
	}
	prefix := b.prefix + strconv.Itoa(pair) + kind + "-"
	if err := b.startCore(ctx, prefix); err != nil {
		return bench.Result{}, nil, err
	}
	defer func() {
		b.stopCore()
		b.dropPrefix(prefix) // an embedded broker holds every record in memory
	}()
	if _, err := b.createHook(ctx, 0); err != nil {
		return bench.Result{}, nil, err
	}
	created := make([]*hooks.Hook, len(fhs))
	for i, fh := range fhs {
		h, err := b.putHook(ctx, fh.body)
		if err != nil {
			return bench.Result{}, nil, fmt.Errorf("failing hook %s: %w", fh.name, err)
		}
		created[i] = h
	}
	b.log.Info("faults phase", "pair", pair, "phase", kind)
	rows, err := b.measureProcessor(ctx, profile) // the processor has stopped when it returns
	if err != nil {
		return bench.Result{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	res := rows[len(rows)-1]
	res.Name = name
	b.report.Results = append(b.report.Results, res)
	if fhs == nil {
		return res, nil, nil
	}
	seen := make([]bench.FaultHook, len(fhs))
	for i, fh := range fhs {
		seen[i] = hookCounters(fh.name, created[i])
		if fh.receiver {
			seen[i].ReceiverFailed = b.rcv.Failed()
		}
	}
	if seen[0].ReceiverFailed == 0 {
		return res, nil, fmt.Errorf("%s: the receiver answered no request on %s with %d: hook A's fault was not exercised",
			name, faultsFailingPath, faultsStatus)
	}
	for _, s := range seen {
		if s.Failed+s.ParkedBehind+s.BreakerWaits == 0 {
			b.report.Notes = append(b.report.Notes, fmt.Sprintf("%s: hook %s recorded no failed attempt, park or breaker wait", name, s.Name))
		}
	}
	return res, seen, nil
}

// stallAfter is how long the healthy hook may receive nothing before a phase gives up.
const stallAfter = 60 * time.Second

var errStalled = errors.New("the healthy hook stalled")

// watchStall returns a context cancelled (cause wrapping errStalled) when the receiver's
// count stays below n and unchanged for stallAfter; the cause has the processor's
// counters of every hook and where a goroutine dump was written.
func (b *benchRun) watchStall(ctx context.Context, n int64) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, since := int64(-1), time.Now()
		for {
			select {
			case <-done:
				return
			case <-wctx.Done():
				return
			case now := <-t.C:
				got := b.rcv.Count()
				if got != last || got >= n {
					last, since = got, now
					continue
				}
				if now.Sub(since) < stallAfter {
					continue
				}
				msg := fmt.Sprintf("the receiver got %d of %d of its requests and none for %v", got, n, stallAfter)
				for _, h := range b.core.store.Snapshot().Hooks {
					name := h.ID
					if h.Name != nil {
						name = *h.Name
					}
					msg += fmt.Sprintf("; hook %s: %+v", h.ID, hookCounters(name, h))
				}
				if f, err := os.CreateTemp("", "eventhooks-bench-stall-*.txt"); err == nil {
					_ = pprof.Lookup("goroutine").WriteTo(f, 2)
					_ = f.Close()
					msg += "; goroutines written to " + f.Name()
				}
				cancel(fmt.Errorf("%w: %s", errStalled, msg))
				return
			}
		}
	}()
	return wctx, func() { close(done); cancel(nil) }
}

// hookCounters reads the processor's counters of hook h (its eventhooks_* series).
func hookCounters(name string, h *hooks.Hook) bench.FaultHook {
	get := func(family, extra string) int64 {
		return int64(metrics.GetOrCreateCounter(family + `{hook="` + h.ID + `",handler="` + h.Handler + `"` + extra + `}`).Get())
	}
	return bench.FaultHook{
		Name:         name,
		Delivered:    get("eventhooks_delivery_attempts_total", `,outcome="delivered"`),
		Failed:       get("eventhooks_delivery_attempts_total", `,outcome="failed"`),
		Parked:       get("eventhooks_parked_total", ""),
		ParkedBehind: get("eventhooks_parked_behind_total", ""),
		DeadLettered: get("eventhooks_dead_lettered_total", ""),
		BreakerWaits: get("eventhooks_breaker_waits_total", ""),
	}
}

// refusedAddr returns a loopback host:port nothing listens on: a port the kernel handed
// out and took back, checked to refuse a connection.
func refusedAddr() (string, error) {
	for range 10 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("refused port: %w", err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		conn, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return addr, nil
		}
	}
	return "", errors.New("refused port: found no loopback port that refuses connections")
}
