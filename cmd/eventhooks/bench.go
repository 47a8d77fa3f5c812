package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
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
	Pairs             int           `help:"With --faults: alone/faults pairs to run, alternately." default:"1"`
	Handler           string        `help:"Handler of the hooks: webhook, webhook-custom, lambda or log." default:"webhook" enum:"webhook,webhook-custom,lambda,log"`
	Brokers           []string      `help:"Kafka seed brokers, comma separated (default: an embedded in-memory broker on a free port)." sep:","`
	Target            string        `help:"Deliver to this URL instead of the in-process receiver (no latency figures; completion is read from committed offsets)."`
	Rate              float64       `help:"Produce at this many events/s while the processor runs, for latency; 0 produces a backlog first and measures its drain." default:"0"`
	Lanes             int           `help:"Key lanes per partition, of the processor and the bare pipeline." default:"16"`
	MaxConns          int           `help:"Connections to the target, of the processor and the baselines." default:"64"`
	Baseline          bool          `help:"Also measure the raw HTTP loop, raw franz-go consume and the bare pipeline, and print the ratios."`
	CompareAttemptLog bool          `name:"compare-attempt-log" help:"Drain the same backlog three more times, in fresh consumer groups, twice with eventhooks run --no-attempt-log and once more with the log (with, without, without, with), and print both sides' mean: what the attempt log costs. Separate processes, drain only."`
	JSON              bool          `name:"json" help:"Print the report as JSON."`
	Timeout           time.Duration `help:"Give up after this long." default:"10m"`
	CPUProfile        string        `name:"cpuprofile" help:"Write a CPU profile of the processor's phase to this file." type:"path"`

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
	case c.Target != "", c.DeadHooks > 0, c.CPUProfile != "":
		return errors.New("--target, --dead-hooks and --cpuprofile: only with --in-process")
	case c.Handler == hooks.HandlerLog:
		return errors.New("--handler log: only with --in-process (the receiver process counts deliveries)")
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

// benchRun is the state of one `eventhooks bench`.
type benchRun struct {
	cmd    *BenchCmd
	log    *slog.Logger
	prefix string // of every topic and group of the run, so runs never collide

	emb     *broker.Embedded // nil with --brokers
	kafka   broker.Config
	conn    []kgo.Opt // connection options (seed brokers)
	prodCl  *kgo.Client
	adm     *kadm.Client
	rcv     *bench.Receiver // nil with --target
	target  string
	core    *core
	storeCx context.CancelFunc
	stored  chan struct{}
	group   string

	report bench.Report
}

func (b *benchRun) close() {
	b.dropTopics()
	b.stopCore()
	if b.prodCl != nil {
		b.prodCl.Close()
	}
	if b.rcv != nil {
		_ = b.rcv.Close()
	}
	if b.emb != nil {
		b.emb.Close()
	}
}

// setup starts the broker and the receiver, wires the core and creates the hooks.
func (b *benchRun) setup(ctx context.Context) error {
	c := b.cmd
	brokers, brokerDesc := c.Brokers, strings.Join(c.Brokers, ",")
	if len(brokers) == 0 {
		emb, err := broker.StartEmbedded(broker.EmbeddedConfig{Addr: "127.0.0.1:0", Partitions: c.Partitions})
		if err != nil {
			return fmt.Errorf("start embedded broker: %w", err)
		}
		b.emb, brokers = emb, emb.Addrs()
		brokerDesc = "embedded (in memory, in process)"
	}
	kc := broker.Config{Brokers: brokers, ClientID: "eventhooks-bench"}
	conn, err := kc.ClientOpts()
	if err != nil {
		return err
	}
	b.conn, b.kafka = conn, kc

	b.target = c.Target
	targetDesc := c.Target
	switch {
	case c.Handler == hooks.HandlerLog:
		targetDesc = "none (log handler, lines formatted to io.Discard)"
		if c.Baseline && c.Target == "" {
			if b.rcv, err = bench.NewReceiver(); err != nil { // for the HTTP baselines
				return err
			}
			b.target = b.rcv.URL
		}
	case c.Target == "":
		if b.rcv, err = bench.NewReceiver(); err != nil {
			return err
		}
		b.target, targetDesc = b.rcv.URL, "in-process fasthttp receiver"
		if c.Faults {
			b.target += faultsHealthyPath[1:] // apart from the failing hook's path
		}
	}

	if !c.Faults { // --faults starts a core per phase
		if err := b.startCore(ctx, b.prefix); err != nil {
			return err
		}
		for i := range c.Hooks {
			if _, err := b.createHook(ctx, i); err != nil {
				return err
			}
		}
		if err := b.createDeadHooks(ctx); err != nil {
			return err
		}
	}

	opts := append(append([]kgo.Opt{}, conn...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if c.Rate > 0 {
		// The default 10 ms linger would be most of the latency being measured.
		opts = append(opts, kgo.ProducerLinger(0))
	}
	if b.prodCl, err = kgo.NewClient(opts...); err != nil {
		return fmt.Errorf("cannot create producer: %w", err)
	}
	b.adm = kadm.NewClient(b.prodCl)

	b.report = bench.Report{
		Info:      b.runInfo(bench.ShapeInProcess, brokerDesc, targetDesc),
		Ours:      "eventhooks (" + c.Handler + ")",
		Baselines: []string{benchBare, benchRawHTTP, benchRawConsume},
	}
	return nil
}

// runInfo describes the run for the report's header.
func (b *benchRun) runInfo(shape, brokerDesc, targetDesc string) bench.RunInfo {
	c := b.cmd
	mode := "drain of a backlog"
	if c.Rate > 0 {
		mode = "producer and processor concurrently"
	}
	return bench.RunInfo{
		Events: c.Events, Keys: c.Keys, Size: c.Size, Partitions: int(c.Partitions), Hooks: c.Hooks,
		Handler: c.Handler, Lanes: c.Lanes, Rate: c.Rate, Shape: shape, Mode: mode, Broker: brokerDesc, Target: targetDesc,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: bench.LoadAvg(),
	}
}

// startCore wires a core (processor and hook store) on the topics of prefix and starts its
// store; stopCore undoes it.
func (b *benchRun) startCore(ctx context.Context, prefix string) error {
	c := b.cmd
	b.group = prefix + "eventhooks"
	// Completion is read from the receiver when it sees every delivery; otherwise from
	// committed offsets, which then have to be committed often.
	commit := time.Second
	if !b.countsDeliveries() {
		commit = 100 * time.Millisecond
	}
	s := service{
		kafka:  b.kafka,
		topics: TopicFlags{TopicPrefix: prefix, Partitions: c.Partitions, ReplicationFactor: -1},
		proc: ProcessorFlags{
			Group: b.group, Lanes: c.Lanes, CommitInterval: commit,
			MaxEventBytes: hooks.DefaultMaxEventBytes, MaxConnsPerHost: c.MaxConns,
			AllowDestinations: c.AllowDestinations, ShutdownTimeout: 30 * time.Second,
			SessionTimeout: 45 * time.Second,
		},
		log: slog.New(discardHookLines{Handler: b.log.Handler(), lines: slog.NewTextHandler(io.Discard, nil)}),
	}
	var err error
	if b.core, err = s.newCore(ctx); err != nil {
		return err
	}
	storeCtx, stopStore := context.WithCancel(context.Background())
	b.storeCx, b.stored = stopStore, make(chan struct{})
	store, stored := b.core.store, b.stored
	go func() {
		defer close(stored)
		if err := store.Run(storeCtx); err != nil && !errors.Is(err, context.Canceled) {
			b.log.Error("hook store stopped", "err", err)
		}
	}()
	if err := b.core.waitHooks(ctx); err != nil {
		return fmt.Errorf("load hooks: %w", err)
	}
	return nil
}

// stopCore stops the hook store and closes the core, if any.
func (b *benchRun) stopCore() {
	if b.core == nil {
		return
	}
	b.storeCx()
	<-b.stored
	b.core.close()
	b.core = nil
}

// countsDeliveries reports whether the in-process receiver sees every delivery.
func (b *benchRun) countsDeliveries() bool {
	return b.cmd.Target == "" && b.cmd.Handler != hooks.HandlerLog
}

// createHook creates bench hook i through the store, as the Admin API would, after
// checking that this build can compile its handler.
func (b *benchRun) createHook(ctx context.Context, i int) (*hooks.Hook, error) {
	body, err := benchHookBody(b.cmd.Handler, b.target, i)
	if err != nil {
		return nil, err
	}
	h, err := b.putHook(ctx, body)
	if errors.Is(err, sinks.ErrUnsupportedHandler) {
		return nil, fmt.Errorf("--handler %s: this build cannot run %s hooks yet (%w); use --handler webhook or log", b.cmd.Handler, b.cmd.Handler, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bench hook: %w", err)
	}
	return h, nil
}

// putHook validates an Admin API body, compiles it (as the Admin API checks) and writes
// it through the store; it returns the hook with its defaults and id.
func (b *benchRun) putHook(ctx context.Context, body []byte) (*hooks.Hook, error) {
	h, err := hooks.ParseHook(body)
	if err != nil {
		return nil, err
	}
	if err := hooks.Validate(h, b.core.cat, time.Now()); err != nil {
		return nil, err
	}
	if _, err := b.core.compile(h); err != nil {
		return nil, err
	}
	if err := b.core.store.Put(ctx, h); err != nil {
		return nil, fmt.Errorf("create hook: %w", err)
	}
	return h, nil
}

// createDeadHooks adds --dead-hooks hooks on an endpoint that accepts connections and
// never answers (a listener nobody reads), closed when the process ends.
func (b *benchRun) createDeadHooks(ctx context.Context) error {
	if b.cmd.DeadHooks == 0 {
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("dead endpoint: %w", err)
	}
	go func() { // accept and hold: requests time out
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for i := range b.cmd.DeadHooks {
		body := fmt.Sprintf(`{"source":"balancer","event":"health","handler":"webhook","ordering":"none","timeout_ms":1000,`+
			`"name":"dead-%d","config":{"url":"http://%s/dead"}}`, i, ln.Addr())
		if _, err := b.putHook(ctx, []byte(body)); err != nil {
			return fmt.Errorf("dead hook: %w", err)
		}
	}
	return nil
}

// benchHookBody is the Admin API body of bench hook i. Every body keeps the event's "ts"
// so the receiver can measure latency.
func benchHookBody(handler, target string, i int) ([]byte, error) {
	spec := sinks.LookupHandler(handler)
	if spec == nil || spec.BenchConfig == nil {
		return nil, fmt.Errorf("--handler %q: want webhook, webhook-custom, lambda or log", handler)
	}
	cfg := spec.BenchConfig(target)
	return json.Marshal(map[string]any{
		"name": "bench-" + strconv.Itoa(i), "source": bench.EventSource, "event": bench.EventName,
		"handler": handler, "config": cfg,
	})
}

// run measures the processor, then the baselines.
func (b *benchRun) run(ctx context.Context) error {
	ours, err := b.measureProcessor(ctx, b.cmd.CPUProfile)
	if err != nil {
		return err
	}
	b.report.Results = append(b.report.Results, ours...)
	if b.cmd.Baseline {
		if err := b.measureBaselines(ctx); err != nil {
			return err
		}
		b.report.ComputeRatios()
	}
	b.addNotes()
	return nil
}

// measureProcessor runs the processor over the run's events and returns the produce
// row (drain mode) and the processor's row; it writes a CPU profile of the processor's
// phase to profile, unless empty. The processor has stopped when it returns.
func (b *benchRun) measureProcessor(ctx context.Context, profile string) ([]bench.Result, error) {
	c := b.cmd
	topic := b.core.topics.Events[0]
	var rows []bench.Result
	pctx, stopProc := context.WithCancel(ctx)
	defer stopProc()
	procDone := make(chan error, 1)
	startProc := func() {
		go func() { procDone <- b.core.proc.Run(pctx) }()
	}
	defer func() {
		stopProc()
		if err := <-procDone; err != nil && !errors.Is(err, context.Canceled) {
			b.log.Warn("processor stopped with an error", "err", err)
		}
	}()

	var (
		res   = bench.Result{Name: b.report.Ours}
		start time.Time
		m     *bench.Meter
		prodE = make(chan error, 1)
		err   error
	)
	stopProfile := func() {}
	defer func() { stopProfile() }()
	if c.Rate == 0 {
		// Drain: a backlog first, then the clock runs from the processor's start.
		b.log.Info("producing the backlog", "events", c.Events, "topic", topic)
		freeMemory()
		pm := bench.StartMeter()
		var pres bench.Result
		pres, err = bench.Produce(ctx, b.prodCl, topic, c.Events, c.Keys, c.Size, 0)
		pm.Stop(&pres)
		if err != nil {
			return nil, err
		}
		rows = append(rows, pres)
		b.log.Info("starting the processor", "events/s produced", int(pres.PerSec))
		b.resetReceiver()
		freeMemory()
		if stopProfile, err = b.startProfile(profile); err != nil {
			return nil, err
		}
		m, start = bench.StartMeter(), time.Now()
		startProc()
	} else {
		b.log.Info("starting the processor, then producing", "events", c.Events, "rate", c.Rate)
		startProc()
		if err := b.waitJoined(ctx); err != nil {
			return nil, err
		}
		b.resetReceiver()
		freeMemory()
		if stopProfile, err = b.startProfile(profile); err != nil {
			return nil, err
		}
		m, start = bench.StartMeter(), time.Now()
		go func() {
			_, err := bench.Produce(ctx, b.prodCl, topic, c.Events, c.Keys, c.Size, c.Rate)
			prodE <- err
		}()
	}
	wctx := ctx
	if c.Faults {
		var stopWatch func()
		wctx, stopWatch = b.watchStall(ctx, int64(c.Events))
		defer stopWatch()
	}
	end, err := b.waitDone(wctx, topic, int64(c.Events))
	if cause := context.Cause(wctx); err != nil && errors.Is(cause, errStalled) {
		err = cause
	}
	if c.Rate > 0 {
		if perr := <-prodE; perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		m.Stop(&res)
		return nil, fmt.Errorf("processor phase: %w", err)
	}
	stopProfile()
	res.Events = int64(c.Events)
	res.Seconds = end.Sub(start).Seconds()
	res.PerSec = float64(res.Events) / res.Seconds
	if b.rcv != nil {
		if first := b.rcv.First(); !first.IsZero() {
			res.Startup = first.Sub(start)
		}
		res.Latency, res.Deliveries = b.rcv.Latency(), b.rcv.Count()
	}
	m.Stop(&res)
	return append(rows, res), nil
}

// startProfile starts a CPU profile to file, if not empty; the returned stop may be
// called twice.
func (b *benchRun) startProfile(file string) (func(), error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				b.log.Warn("cannot write the CPU profile", "err", err)
			}
		}
	}, nil
}

func (b *benchRun) resetReceiver() {
	if b.rcv != nil {
		b.rcv.Reset()
	}
}

// waitJoined waits until the processor has its partitions.
func (b *benchRun) waitJoined(ctx context.Context) error {
	for !b.core.proc.Joined() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("processor did not join its group: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// waitDone waits until the processor has handled n events of topic and returns when it
// finished: when the receiver got the last delivery, or else (external target, log
// handler) when the group's committed offsets reached the end of the topic, which is
// late by up to the 100 ms commit interval.
func (b *benchRun) waitDone(ctx context.Context, topic string, n int64) (time.Time, error) {
	if b.countsDeliveries() {
		return b.rcv.WaitContext(ctx, n*int64(b.cmd.Hooks))
	}
	for {
		if done, err := b.committedAll(ctx, topic, n); err != nil {
			return time.Time{}, err
		} else if done {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for the processor to commit %d events: %w", n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// committedAll reports whether the processor's group committed n records of topic.
func (b *benchRun) committedAll(ctx context.Context, topic string, n int64) (bool, error) {
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false, fmt.Errorf("list end offsets: %w", err)
	}
	offs, err := b.adm.FetchOffsets(ctx, b.group)
	if err != nil {
		return false, nil // the group may not exist yet
	}
	var total, committed int64
	ends.Each(func(o kadm.ListedOffset) {
		total += o.Offset
		if c, ok := offs.Lookup(topic, o.Partition); ok && c.Err == nil {
			committed += min(c.At, o.Offset)
		}
	})
	return total >= n && committed >= total, nil
}

func (b *benchRun) addNotes() {
	c, r := b.cmd, &b.report
	if r.Info.Shape == bench.ShapeProcesses {
		r.Notes = append(r.Notes, "separate processes: `eventhooks broker`, `eventhooks run` (its hooks created through the Admin API "+
			"of an instance started before), the receiver and each baseline each run in a process of their own; a row's CPU and RSS "+
			"are its own process's (the producer's for produce), the per-process table adds the others'; a drain's clock runs from "+
			"starting the process (start-up and group join included) to the receiver's last request")
	} else {
		r.Notes = append(r.Notes, "CPU and RSS are the whole process: producer, processor and receiver"+
			map[bool]string{true: ", and the embedded broker (which holds every record in memory)", false: ""}[b.emb != nil])
	}
	if c.Rate == 0 {
		r.Notes = append(r.Notes, "drain: latency includes the time events waited in the backlog; use --rate for delivery latency")
	} else if c.Baseline {
		r.Notes = append(r.Notes, "--rate: events/s are paced, so the ratios compare paced rates; run without --rate for throughput ratios")
	}
	if c.DeadHooks > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d dead hook(s) (ordering none) on an endpoint that never answers: events/s are the healthy hooks'", c.DeadHooks))
	}
	if c.Hooks > 1 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d hooks: the processor makes %d deliveries per event; the baselines one", c.Hooks, c.Hooks))
	}
	if !b.countsDeliveries() {
		r.Notes = append(r.Notes, "completion read from committed offsets (100 ms commit interval)")
	}
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
