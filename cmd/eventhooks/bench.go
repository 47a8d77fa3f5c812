package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/hooks"
)

// BenchCmd measures the processor end to end against baselines run on the same broker
// and receiver. By default each part runs in a process of its own, as deployed; with
// --in-process (and always with --faults) everything runs in the bench's process.
type BenchCmd struct {
	InProcess         bool          `name:"in-process" help:"Run the broker, the processor, the receiver and the baselines in this one process: the hot-path view. The default starts eventhooks broker, eventhooks run, the receiver and each baseline as separate processes, as deployed, and reports each process's CPU and memory."`
	Events            int           `help:"Events to produce." default:"200000"`
	Keys              int           `help:"Distinct entity keys, used round robin." default:"10000"`
	Size              int           `help:"Approximate event size in bytes." default:"250"`
	Partitions        int32         `help:"Partitions of the bench topics." default:"8"`
	Hooks             int           `help:"Hooks, each matching every event." default:"1"`
	DeadHooks         int           `help:"Extra webhook hooks (ordering none, timeout 1s) whose endpoint accepts connections and never answers: measures how well the healthy hooks are isolated from a dead endpoint." default:"0"`
	Faults            bool          `help:"Failure isolation: the healthy hook drains the backlog alone, then beside three failing hooks with the default ordering (key) and retry policy (A: a webhook answered 503 on the receiver's host:port, C: a lambda that never returns, D: a webhook to a refused port), on fresh topics each time; prints both events/s and their ratio."`
	Pairs             int           `help:"With --faults: alone/faults pairs to run, alternately; with --scale-out: one/two-instance pairs." default:"1"`
	ScaleOut          bool          `name:"scale-out" help:"Scale-out: drain the backlog with one eventhooks run, then with two in one consumer group, alternately for --pairs pairs, each phase on fresh topics and a fresh group; the group rebalances mid-drain (see --rebalance) and the receiver checks that every event id arrived at least once, else the bench fails. Separate processes; webhook or lambda hook."`
	Pin               bool          `help:"With --scale-out: pin each eventhooks run instance to a core of its own (instance i on core i mod the CPUs, with taskset) with GOMAXPROCS=1; the broker and the receiver are not pinned. Linux."`
	Rebalance         string        `help:"With --scale-out: what the two-instance phase does mid-drain: join (the second instance starts once --rebalance-at of the event ids arrived), leave (both start, the second is sent SIGTERM then) or none (both start together; the group still rebalances once, when the second joins)." default:"join" enum:"join,leave,none"`
	RebalanceAt       float64       `name:"rebalance-at" help:"With --scale-out: the fraction of the backlog's event ids received when the second instance joins or leaves." default:"0.33"`
	Handler           string        `help:"Handler of the hooks: webhook, webhook-custom, lambda or log." default:"webhook" enum:"webhook,webhook-custom,lambda,log"`
	Brokers           []string      `help:"Kafka seed brokers, comma separated (default: an embedded in-memory broker on a free port)." sep:","`
	Target            string        `help:"Deliver to this URL instead of the in-process receiver (no latency figures; completion is read from committed offsets)."`
	Rate              float64       `help:"Produce at this many events/s while the processor runs, for latency; 0 produces a backlog first and measures its drain." default:"0"`
	Lanes             int           `help:"Key lanes per partition, of the processor and the bare pipeline." default:"16"`
	MaxConns          int           `help:"Connections to the target, of the processor and the baselines." default:"64"`
	Baseline          bool          `help:"Also measure the raw HTTP loop, raw franz-go consume and the bare pipeline, and print the ratios."`
	Pipeline          bool          `help:"Create the hooks with config.pipeline: HTTP/1.1 pipelining (webhook and webhook-custom, separate processes). The raw HTTP row stays the keep-alive loop."`
	PipelineMaxConns  int           `name:"pipeline-max-conns" help:"With --pipeline: the hooks' config.pipeline_max_conns (0: the hook default)." default:"0"`
	CompareAttemptLog bool          `name:"compare-attempt-log" help:"Drain the same backlog three more times, in fresh consumer groups, twice with eventhooks run --no-attempt-log and once more with the log (with, without, without, with), and print both sides' mean: what the attempt log costs. Separate processes, drain only."`
	ReceiverDelay     time.Duration `name:"receiver-delay" help:"The receiver waits this long before it answers each request, as a slow endpoint would (separate processes only)." default:"0s"`
	JSON              bool          `name:"json" help:"Print the report as JSON."`
	Timeout           time.Duration `help:"Give up after this long." default:"10m"`
	CPUProfile        string        `name:"cpuprofile" help:"Write a CPU profile of the processor's phase to this file (separate processes: of the measured eventhooks run, the whole process; with --compare-attempt-log, the other drains' to this file with .2, .3 and .4 added; with --baseline, the bare pipeline's to this file with .bare added)." type:"path"`

	AllowDestinations string `help:"CIDRs or IPs the processor may deliver to although loopback or private (SSRF guard)." default:"127.0.0.0/8,::1"`

	// Child and ChildTopic make this process one part of a separate-process bench: the
	// receiver or a baseline (see bench_child.go).
	Child      string `hidden:"" help:"Play one part of a separate-process bench: receiver, bare, raw-http or raw-consume."`
	ChildTopic string `hidden:"" help:"Topic of a --child baseline."`
}

// inProcess reports whether the run is the in-process shape.
func (c *BenchCmd) inProcess() bool { return c.InProcess || c.Faults }

// benchOurs names the processor's row; the baselines' rows are named by package bench.
const (
	benchRawConsume = "raw consume"
	benchRawHTTP    = "raw HTTP"
	benchBare       = "bare pipeline"
)

func (c *BenchCmd) validate() error {
	switch {
	case c.Events <= 0:
		return errors.New("--events: want at least 1")
	case c.Keys <= 0:
		return errors.New("--keys: want at least 1")
	case c.Size < 0 || c.Size > hooks.DefaultMaxEventBytes:
		return fmt.Errorf("--size: want 0..%d", hooks.DefaultMaxEventBytes)
	case c.Partitions <= 0:
		return errors.New("--partitions: want at least 1")
	case c.Hooks <= 0:
		return errors.New("--hooks: want at least 1")
	case c.Lanes <= 0 || c.Lanes > 1024:
		return errors.New("--lanes: want 1..1024")
	case c.MaxConns <= 0:
		return errors.New("--max-conns: want at least 1")
	case c.Rate < 0:
		return errors.New("--rate: want 0 (as fast as possible) or more")
	case c.Pairs <= 0:
		return errors.New("--pairs: want at least 1")
	case c.ReceiverDelay < 0 || c.ReceiverDelay > time.Minute:
		return errors.New("--receiver-delay: want 0 to 1m")
	case c.ReceiverDelay > 0 && c.inProcess():
		return errors.New("--receiver-delay: separate processes only (not --in-process or --faults)")
	}
	if c.Faults {
		switch {
		case c.Baseline, c.Rate > 0, c.Target != "", c.DeadHooks > 0, c.Hooks != 1:
			return errors.New("--faults: measures one healthy hook draining a backlog into the in-process receiver: " +
				"not with --baseline, --rate, --target, --dead-hooks or --hooks")
		case c.Handler == hooks.HandlerLog:
			return errors.New("--faults: the healthy hook's deliveries are counted by the receiver: not with --handler log")
		}
	}
	if !c.inProcess() {
		if err := c.validateProcs(); err != nil {
			return err
		}
	}
	if err := c.validateScaleOut(); err != nil {
		return err
	}
	if err := c.validatePipeline(); err != nil {
		return err
	}
	if c.CompareAttemptLog && (c.inProcess() || c.Rate != 0) {
		return errors.New("--compare-attempt-log: separate processes (not --in-process or --faults), draining a backlog (not --rate)")
	}
	if c.Target != "" {
		if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--target %q: want an http(s) URL", c.Target)
		}
	}
	return nil
}

// validateProcs refuses what the separate-process shape does not measure.
func (c *BenchCmd) validateProcs() error {
	switch {
	case !procsSupported:
		return errors.New("separate processes are measured from /proc (Linux): use --in-process")
	case c.Target != "":
		return errors.New("--target: only with --in-process")
	case c.Handler == hooks.HandlerLog:
		return errors.New("--handler log: only with --in-process (the receiver process counts deliveries)")
	}
	return nil
}

// validatePipeline refuses --pipeline where the bench's hooks cannot be pipelined.
func (c *BenchCmd) validatePipeline() error {
	switch {
	case c.PipelineMaxConns != 0 && !c.Pipeline:
		return errors.New("--pipeline-max-conns: only with --pipeline")
	case c.PipelineMaxConns < 0 || c.PipelineMaxConns > hooks.MaxPipelineConns:
		return fmt.Errorf("--pipeline-max-conns: want 0..%d", hooks.MaxPipelineConns)
	case !c.Pipeline:
		return nil
	case c.inProcess():
		return errors.New("--pipeline: separate processes only (not --in-process or --faults)")
	case c.Handler != hooks.HandlerWebhook && c.Handler != hooks.HandlerWebhookCustom:
		return errors.New("--pipeline: webhook and webhook-custom hooks only")
	}
	return nil
}

// Run runs the benchmark and prints the report on stdout.
func (c *BenchCmd) Run(log *slog.Logger) error {
	setGCPercent() // as `run`; no memory limit: an in-process bench's heap holds the broker's records
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.Child != "" {
		return c.runChild(ctx)
	}
	if err := c.validate(); err != nil {
		return err
	}

	report, err := c.measure(ctx, log)
	if err != nil {
		if report != nil && len(report.Results) > 0 { // what was measured before the failure
			_ = report.WriteText(os.Stdout)
		}
		return err
	}
	if c.JSON {
		return report.WriteJSON(os.Stdout)
	}
	return report.WriteText(os.Stdout)
}

// measure runs the benchmark and returns its report.
func (c *BenchCmd) measure(ctx context.Context, log *slog.Logger) (*bench.Report, error) {
	if !c.inProcess() {
		return c.measureProcs(ctx, log)
	}
	b := &benchRun{cmd: c, log: log, prefix: "bench-" + randomHex(4) + "-"}
	defer b.close()
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	run := b.run
	if c.Faults {
		run = b.runFaults
	}
	if err := run(ctx); err != nil {
		return &b.report, err
	}
	return &b.report, nil
}

// freeMemory collects garbage and returns it to the OS so that a phase's RSS is its own.
func freeMemory() { debug.FreeOSMemory() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// discardHookLines sends the log handler's "event hook" lines to lines (formatted to
// io.Discard by the bench, so it measures the handler rather than the terminal) and
// everything else to the embedded handler.
type discardHookLines struct {
	slog.Handler
	lines slog.Handler
}

func (h discardHookLines) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l) || h.lines.Enabled(ctx, l)
}

func (h discardHookLines) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "event hook" {
		return h.lines.Handle(ctx, r)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h discardHookLines) WithAttrs(as []slog.Attr) slog.Handler {
	return discardHookLines{h.Handler.WithAttrs(as), h.lines.WithAttrs(as)}
}

func (h discardHookLines) WithGroup(name string) slog.Handler {
	return discardHookLines{h.Handler.WithGroup(name), h.lines.WithGroup(name)}
}
