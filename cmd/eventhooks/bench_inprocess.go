package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// The in-process shape of `eventhooks bench` (--in-process, --faults): the broker, the
// processor, the receiver and the baselines in this one process.

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

// createDeadHooks adds the --dead-hooks hooks (see deadHookBodies).
func (b *benchRun) createDeadHooks(ctx context.Context) error {
	bodies, err := deadHookBodies(b.cmd.DeadHooks)
	if err != nil {
		return err
	}
	for _, body := range bodies {
		if _, err := b.putHook(ctx, body); err != nil {
			return fmt.Errorf("dead hook: %w", err)
		}
	}
	return nil
}

// deadHookBodies returns the bodies of n webhook hooks (ordering none, timeout 1 s) on an
// endpoint of this process that accepts connections and never answers (a listener
// nobody reads, closed when the process ends).
func deadHookBodies(n int) ([][]byte, error) {
	if n == 0 {
		return nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dead endpoint: %w", err)
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
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none","timeout_ms":1000,`+
			`"name":"dead-%d","config":{"url":"http://%s/dead"}}`, i, ln.Addr())
	}
	return bodies, nil
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
		if stopProfile, err = startCPUProfile(profile, b.log); err != nil {
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
		if stopProfile, err = startCPUProfile(profile, b.log); err != nil {
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
	lag, total, err := uncommitted(ctx, b.adm, b.group, topic)
	if errors.Is(err, errNoGroupOffsets) {
		return false, nil // the group may not exist yet
	} else if err != nil {
		return false, err
	}
	for _, l := range lag {
		if l > 0 {
			return false, nil
		}
	}
	return total >= n, nil
}

// errNoGroupOffsets is uncommitted's error when the group's offsets cannot be fetched.
var errNoGroupOffsets = errors.New("cannot fetch the group's offsets")

// uncommitted returns, per partition of topic, how many records group has not committed
// (all of them where it committed none), and how many the topic has had in all.
func uncommitted(ctx context.Context, adm *kadm.Client, group, topic string) (lag map[int32]int64, total int64, err error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("list end offsets: %w", err)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errNoGroupOffsets, err)
	}
	lag = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		total += o.Offset
		lag[o.Partition] = o.Offset
		if c, ok := offs.Lookup(topic, o.Partition); ok && c.Err == nil {
			lag[o.Partition] -= min(c.At, o.Offset)
		}
	})
	return lag, total, nil
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
