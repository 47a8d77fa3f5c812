package main

// `eventhooks bench` in the shape a user deploys (the default): `eventhooks broker`,
// `eventhooks run` and the receiver each in a process of its own, and each baseline in
// its own process too, so that every row pays the same process boundaries. Each
// process's CPU and memory are read from /proc/<pid>.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/broker"
)

// procStopGrace is how long a stopped process may take to exit before it is killed.
const procStopGrace = 10 * time.Second

// procsRun is the state of a separate-process `eventhooks bench`. It shares the
// in-process run's producer, admin client, report and topic helpers.
type procsRun struct {
	*benchRun
	exe      string // this binary, re-executed for every process
	logLevel string // of the children, the bench's own
	topics   broker.Topics
	brokers  []string
	kbroker  *benchProc // nil with --brokers
	rcv      *benchProc
	procs    []*benchProc // every process started, stopped by close
}

// measureProcs runs the separate-process bench and returns its report.
func (c *BenchCmd) measureProcs(ctx context.Context, log *slog.Logger) (*bench.Report, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary to start the bench's processes: %w", err)
	}
	p := &procsRun{benchRun: &benchRun{cmd: c, log: log, prefix: "bench-" + randomHex(4) + "-"}, exe: exe, logLevel: levelName(log)}
	defer p.close()
	if err := p.setup(ctx); err != nil {
		return nil, err
	}
	run := p.run
	if c.ScaleOut {
		run = p.runScaleOut
	}
	if err := run(ctx); err != nil {
		return &p.report, err
	}
	return &p.report, nil
}

// levelName is the lowest level log writes, as --log-level spells it.
func levelName(log *slog.Logger) string {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if log.Enabled(context.Background(), l) {
			return strings.ToLower(l.String())
		}
	}
	return "error"
}

func (p *procsRun) close() {
	if p.kbroker == nil {
		p.dropTopics() // from a broker the bench did not start
	}
	if p.prodCl != nil {
		p.prodCl.Close()
	}
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].stop(procStopGrace)
	}
}

// start starts this binary with args as process name, at the bench's log level.
func (p *procsRun) start(name string, role bool, args ...string) (*benchProc, error) {
	proc, err := startProc(name, p.exe, role, append([]string{"--log-level", p.logLevel}, args...)...)
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, proc)
	return proc, nil
}

// setup starts the broker (unless --brokers) and the receiver, and the producer.
func (p *procsRun) setup(ctx context.Context) error {
	c := p.cmd
	p.topics = broker.NewTopics(p.prefix, nil)
	p.brokers = c.Brokers
	brokerDesc := strings.Join(c.Brokers, ",")
	if len(p.brokers) == 0 {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		if p.kbroker, err = p.start("broker", false, "broker", "--data-dir", "", "--kafka-addr", addr,
			"--topic-prefix", p.prefix, "--partitions", strconv.Itoa(int(c.Partitions))); err != nil {
			return err
		}
		if err := waitListening(ctx, addr, p.kbroker); err != nil {
			return err
		}
		p.brokers = []string{addr}
		brokerDesc = "`eventhooks broker` process (in memory)"
	}
	var err error
	if p.rcv, err = p.start("receiver", true, "bench", "--child", childReceiver, "--timeout", c.Timeout.String(),
		"--receiver-delay", c.ReceiverDelay.String()); err != nil {
		return err
	}
	m, err := p.rcv.next(ctx)
	if err != nil {
		return err
	}
	p.target = m.URL
	if err := p.connect(); err != nil {
		return err
	}
	target := "fasthttp receiver process"
	if c.ReceiverDelay > 0 {
		target += ", answering each request after " + c.ReceiverDelay.String()
	}
	p.report = bench.Report{
		Info:      p.runInfo(bench.ShapeProcesses, brokerDesc, target),
		Ours:      "eventhooks run (" + c.Handler + map[bool]string{true: ", pipelined", false: ""}[c.Pipeline] + ")",
		Baselines: []string{benchBare, benchRawHTTP, benchRawConsume},
	}
	return nil
}

// connect creates the bench's producer and admin client on p.brokers.
func (p *procsRun) connect() error {
	p.kafka = broker.Config{Brokers: p.brokers, ClientID: "eventhooks-bench"}
	conn, err := p.kafka.ClientOpts()
	if err != nil {
		return err
	}
	p.conn = conn
	opts := append(append([]kgo.Opt{}, conn...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if p.cmd.Rate > 0 {
		opts = append(opts, kgo.ProducerLinger(0)) // the default 10 ms would be most of the latency measured
	}
	if p.prodCl, err = kgo.NewClient(opts...); err != nil {
		return fmt.Errorf("cannot create producer: %w", err)
	}
	p.adm = kadm.NewClient(p.prodCl)
	return nil
}

// run measures `eventhooks run`, then the baselines.
func (p *procsRun) run(ctx context.Context) error {
	c := p.cmd
	admin, err := freeAddr()
	if err != nil {
		return err
	}
	args := p.runArgs(admin)
	if err := p.createHooks(ctx, args, admin); err != nil {
		return err
	}
	events := p.topics.Events[0]
	if c.Rate == 0 {
		if err := p.produceBacklog(ctx, events); err != nil {
			return err
		}
	}
	ready := func(ctx context.Context, run *benchProc) error { return waitReady(ctx, admin, run) }
	if c.CPUProfile != "" {
		args = append(args[:len(args):len(args)], "--cpuprofile", c.CPUProfile)
	}
	res, err := p.measureDeliveries(ctx, p.report.Ours, "eventhooks run", events, int64(c.Hooks), args, ready)
	if err != nil {
		return fmt.Errorf("eventhooks run phase: %w", err)
	}
	p.report.Results = append(p.report.Results, res)
	if c.CompareAttemptLog {
		if err := p.measureWithoutAttemptLog(ctx, admin, events, res); err != nil {
			return err
		}
	}
	if c.Baseline {
		if err := p.measureBaselines(ctx, events); err != nil {
			return err
		}
		p.report.ComputeRatios()
	}
	p.addNotes()
	return nil
}

// measureWithoutAttemptLog drains the same backlog three more times, each in a fresh
// consumer group: twice with --no-attempt-log, then again with the log (with is the first
// drain), so the order is with, without, without, with: a drift of the machine over the
// four (the first drain of a backlog, say, is often slower) counts on both sides. It
// adds the rows and notes the events/s of the two sides.
func (p *procsRun) measureWithoutAttemptLog(ctx context.Context, admin, events string, with bench.Result) error {
	ready := func(ctx context.Context, run *benchProc) error { return waitReady(ctx, admin, run) }
	sums := map[bool]float64{true: with.PerSec}
	for i, logged := range []bool{false, false, true} {
		args := p.groupRunArgs(admin, p.prefix+"eventhooks-compare-"+strconv.Itoa(i))
		name, procName := p.report.Ours+" #2", "eventhooks run"
		if !logged {
			args = append(args, "--no-attempt-log")
			name, procName = p.report.Ours+" --no-attempt-log #"+strconv.Itoa(i+1), "eventhooks run --no-attempt-log"
		}
		if p.cmd.CPUProfile != "" { // the first drain's is CPUProfile itself
			args = append(args, "--cpuprofile", p.cmd.CPUProfile+"."+strconv.Itoa(i+2))
		}
		res, err := p.measureDeliveries(ctx, name, procName, events, int64(p.cmd.Hooks), args, ready)
		if err != nil {
			return fmt.Errorf("%s phase: %w", name, err)
		}
		p.report.Results = append(p.report.Results, res)
		sums[logged] += res.PerSec
	}
	p.report.Notes = append(p.report.Notes, fmt.Sprintf("attempt log: %.0f events/s with it, %.0f without (%.3f of without), means of two drains each of the same backlog, in the order with, without, without, with",
		sums[true]/2, sums[false]/2, sums[true]/sums[false]))
	return nil
}

// runArgs are the arguments of `eventhooks run` with its Admin API on admin.
func (p *procsRun) runArgs(admin string) []string {
	return p.groupRunArgs(admin, p.prefix+"eventhooks")
}

// groupRunArgs are runArgs in consumer group group.
func (p *procsRun) groupRunArgs(admin, group string) []string {
	return p.prefixRunArgs(p.prefix, admin, group)
}

// prefixRunArgs are groupRunArgs on the topics of prefix.
func (p *procsRun) prefixRunArgs(prefix, admin, group string) []string {
	c := p.cmd
	return []string{"run", "--brokers", strings.Join(p.brokers, ","), "--topic-prefix", prefix,
		"--partitions", strconv.Itoa(int(c.Partitions)), "--group", group,
		"--lanes", strconv.Itoa(c.Lanes), "--max-conns-per-host", strconv.Itoa(c.MaxConns),
		"--allow-destinations", c.AllowDestinations, "--admin-addr", admin}
}

// childArgs are the arguments of a baseline child playing role on topic.
func (p *procsRun) childArgs(role, topic string) []string {
	c := p.cmd
	return []string{"bench", "--child", role, "--brokers", strings.Join(p.brokers, ","), "--target", p.target,
		"--child-topic", topic, "--events", strconv.Itoa(c.Events), "--lanes", strconv.Itoa(c.Lanes),
		"--max-conns", strconv.Itoa(c.MaxConns), "--timeout", c.Timeout.String()}
}

// createHooks starts `eventhooks run`, creates the bench's hooks through its Admin API,
// as a user would, and stops it: the measured instance starts with them on the hooks
// topic, and a drain starts on a backlog rather than beside the producer.
func (p *procsRun) createHooks(ctx context.Context, args []string, admin string) error {
	run, err := p.start("eventhooks run (creating the hooks)", false, args...)
	if err != nil {
		return err
	}
	defer run.stop(procStopGrace)
	if err := waitReady(ctx, admin, run); err != nil {
		return err
	}
	for i := range p.cmd.Hooks {
		body, err := benchHookBody(p.cmd.Handler, p.target, i)
		if err == nil && p.cmd.Pipeline {
			body, err = pipelined(body, p.cmd.PipelineMaxConns)
		}
		if err != nil {
			return err
		}
		if err := postHook(ctx, admin, body); err != nil {
			return fmt.Errorf("bench hook: %w", err)
		}
	}
	dead, err := deadHookBodies(p.cmd.DeadHooks)
	if err != nil {
		return err
	}
	for _, body := range dead {
		if err := postHook(ctx, admin, body); err != nil {
			return fmt.Errorf("dead hook: %w", err)
		}
	}
	return nil
}

// pipelined returns the hook body with config.pipeline set, and
// config.pipeline_max_conns when conns is not 0.
func pipelined(body []byte, conns int) ([]byte, error) {
	var h map[string]any
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("bench hook: %w", err)
	}
	cfg, ok := h["config"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("bench hook %s: no config", body)
	}
	cfg["pipeline"] = true
	if conns != 0 {
		cfg["pipeline_max_conns"] = conns
	}
	return json.Marshal(h)
}

// produceBacklog produces the run's events to topic and adds the produce row, with the
// bench's (the producer's) and the broker's usage.
func (p *procsRun) produceBacklog(ctx context.Context, topic string) error {
	c := p.cmd
	p.log.Info("producing the backlog", "events", c.Events, "topic", topic)
	ms := append([]*bench.ProcMeter{bench.StartProcMeter("bench (producer)", os.Getpid())}, startMeters(p.kbroker)...)
	res, err := bench.Produce(ctx, p.prodCl, topic, c.Events, c.Keys, c.Size, 0)
	setUsage(&res, stopMeters(ms, res.Events))
	if err != nil {
		return err
	}
	p.report.Results = append(p.report.Results, res)
	return nil
}

// measureDeliveries measures process procName (row name) handling the run's events of
// topic into the receiver, hooks deliveries each: the clock runs from starting it (or,
// with --rate, from ready returning) to the receiver's last request. A role child
// (args starting with "bench") also reports its own row, whose errors and allocations
// are kept.
func (p *procsRun) measureDeliveries(ctx context.Context, name, procName, topic string, hooks int64, args []string,
	ready func(context.Context, *benchProc) error) (bench.Result, error) {
	c := p.cmd
	res := bench.Result{Name: name, Events: int64(c.Events)}
	if _, err := p.rcv.call(ctx, "reset"); err != nil {
		return res, err
	}
	role := args[0] == "bench"
	start := time.Now()
	proc, err := p.start(procName, role, args...)
	if err != nil {
		return res, err
	}
	defer proc.stop(procStopGrace)
	if c.Rate > 0 && ready != nil {
		if err := ready(ctx, proc); err != nil {
			return res, err
		}
		start = time.Now()
	}
	ms := startMeters(proc, p.kbroker, p.rcv)
	pctx, stopProducer := context.WithCancel(ctx)
	defer stopProducer()
	produced := p.produceAtRate(pctx, topic)
	end, err := p.waitDeliveries(ctx, res.Events*hooks, proc)
	setUsage(&res, stopMeters(ms, res.Events))
	if err != nil {
		stopProducer()
	}
	if perr := <-produced; err == nil {
		err = perr
	}
	if err != nil {
		return res, err
	}
	res.Seconds = end.Sub(start).Seconds()
	res.PerSec = float64(res.Events) / res.Seconds
	if err := p.addReceiverStats(ctx, &res, start); err != nil {
		return res, err
	}
	if role {
		m, err := proc.next(ctx)
		if err != nil {
			return res, err
		}
		res.Errors, res.AllocBytes, res.GCs = m.Result.Errors, m.Result.AllocBytes, m.Result.GCs
	}
	return res, nil
}

// measureChild measures a baseline child playing role (row name) on topic, which
// reports its own row; the row's CPU and memory are replaced by its process's as seen
// from outside, beside those of others.
func (p *procsRun) measureChild(ctx context.Context, role, name, topic string, others ...*benchProc) (bench.Result, error) {
	if _, err := p.rcv.call(ctx, "reset"); err != nil {
		return bench.Result{}, err
	}
	proc, err := p.start(name, true, p.childArgs(role, topic)...)
	if err != nil {
		return bench.Result{}, err
	}
	defer proc.stop(procStopGrace)
	ms := startMeters(append([]*benchProc{proc}, others...)...)
	m, err := proc.next(ctx)
	if err != nil {
		stopMeters(ms, 0)
		return bench.Result{}, err
	}
	res := *m.Result
	setUsage(&res, stopMeters(ms, res.Events))
	if role == childRawHTTP {
		err = p.addReceiverStats(ctx, &res, time.Time{})
	}
	return res, err
}

// addReceiverStats fills res's deliveries and latency (and its startup, from start,
// unless zero) from the receiver's counts since its last reset.
func (p *procsRun) addReceiverStats(ctx context.Context, res *bench.Result, start time.Time) error {
	m, err := p.rcv.call(ctx, "stats")
	if err != nil {
		return err
	}
	res.Deliveries, res.Latency = m.Stats.Count, m.Stats.Latency
	if m.Stats.First != 0 && !start.IsZero() {
		res.Startup = time.Unix(0, m.Stats.First).Sub(start)
	}
	return nil
}

// measureBaselines runs raw consume, raw HTTP and the bare pipeline, each in its own
// process, on the broker and receiver the processor used.
func (p *procsRun) measureBaselines(ctx context.Context, events string) error {
	c := p.cmd
	p.log.Info("baseline: raw consume", "topic", events)
	res, err := p.measureChild(ctx, childRawConsume, benchRawConsume, events, p.kbroker)
	if err != nil {
		return err
	}
	p.report.Results = append(p.report.Results, res)
	topic := events
	if c.Rate > 0 { // a fresh topic, and the broker rid of the processor's events, as in-process
		if err := p.deleteTopics(ctx, events); err != nil {
			return err
		}
		topic = p.prefix + "baseline"
		if err := p.createTopic(ctx, topic); err != nil {
			return err
		}
	}
	p.log.Info("baseline: raw HTTP", "requests", c.Events, "concurrency", c.MaxConns)
	if res, err = p.measureChild(ctx, childRawHTTP, benchRawHTTP, "", p.rcv); err != nil {
		return err
	}
	p.report.Results = append(p.report.Results, res)
	p.log.Info("baseline: bare pipeline", "topic", topic)
	args := p.childArgs(childBare, topic)
	if c.CPUProfile != "" { // the bare pipeline's beside run's, to compare
		args = append(args, "--cpuprofile", c.CPUProfile+".bare")
	}
	if res, err = p.measureDeliveries(ctx, benchBare, benchBare, topic, 1, args, nil); err != nil {
		return fmt.Errorf("bare pipeline phase: %w", err)
	}
	p.report.Results = append(p.report.Results, res)
	return nil
}

// produceAtRate produces the run's events to topic at --rate in the background and
// returns where its error will be; with no rate (a drain) there is nothing to produce.
func (p *procsRun) produceAtRate(ctx context.Context, topic string) <-chan error {
	c := p.cmd
	done := make(chan error, 1)
	if c.Rate == 0 {
		done <- nil
		return done
	}
	go func() {
		_, err := bench.Produce(ctx, p.prodCl, topic, c.Events, c.Keys, c.Size, c.Rate)
		done <- err
	}()
	return done
}

// waitDeliveries waits until the receiver got n requests and returns when it got the
// last one; it gives up if watch exits first.
func (p *procsRun) waitDeliveries(ctx context.Context, n int64, watch *benchProc) (time.Time, error) {
	type answer struct {
		m   childMsg
		err error
	}
	got := make(chan answer, 1)
	go func() {
		m, err := p.rcv.call(ctx, "wait "+strconv.FormatInt(n, 10))
		got <- answer{m, err}
	}()
	select {
	case a := <-got:
		if a.err != nil {
			return time.Time{}, a.err
		}
		return time.Unix(0, a.m.At), nil
	case <-watch.exited:
		return time.Time{}, fmt.Errorf("%s exited before the receiver got %d requests: %v", watch.name, n, watch.err)
	}
}

// startMeters starts measuring every process of procs that is not nil.
func startMeters(procs ...*benchProc) []*bench.ProcMeter {
	var ms []*bench.ProcMeter
	for _, proc := range procs {
		if proc != nil {
			ms = append(ms, bench.StartProcMeter(proc.name, proc.pid()))
		}
	}
	return ms
}

// stopMeters stops ms after a phase of events events.
func stopMeters(ms []*bench.ProcMeter, events int64) []bench.ProcUsage {
	us := make([]bench.ProcUsage, len(ms))
	for i, m := range ms {
		us[i] = m.Stop(events)
	}
	return us
}

// setUsage sets res's processes and its own CPU and memory figures, the first
// process's.
func setUsage(res *bench.Result, us []bench.ProcUsage) {
	res.Procs = us
	if len(us) > 0 {
		res.CPUSeconds, res.MaxRSSBytes, res.PeakRSSBytes = us[0].CPUSeconds, us[0].MaxRSSBytes, us[0].PeakRSSBytes
	}
}

// freeAddr returns a loopback host:port nobody listens on just now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// poll calls check every 20 ms until it returns true or an error, proc exits or ctx
// ends; what names what is awaited.
func poll(ctx context.Context, proc *benchProc, what string, check func() (bool, error)) error {
	for {
		if ok, err := check(); err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-proc.exited:
			return fmt.Errorf("%s exited while waiting for %s: %v", proc.name, what, proc.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitListening waits until proc accepts connections on addr.
func waitListening(ctx context.Context, addr string, proc *benchProc) error {
	return poll(ctx, proc, proc.name+" to listen on "+addr, func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		_ = c.Close()
		return true, nil
	})
}

// waitReady waits until the `eventhooks run` proc with its Admin API on admin answers
// /readyz with 200: hooks loaded, partitions assigned.
func waitReady(ctx context.Context, admin string, proc *benchProc) error {
	url := "http://" + admin + "/readyz"
	return poll(ctx, proc, url, func() (bool, error) {
		resp, err := adminRequest(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, nil // not listening yet
		}
		return resp.status == http.StatusOK, nil
	})
}

// postHook creates a hook through the Admin API on admin.
func postHook(ctx context.Context, admin string, body []byte) error {
	resp, err := adminRequest(ctx, http.MethodPost, "http://"+admin+"/event-hooks", body)
	if err != nil {
		return err
	}
	if resp.status != http.StatusCreated {
		return fmt.Errorf("POST /event-hooks: %d %s", resp.status, bytes.TrimSpace(resp.body))
	}
	return nil
}

// adminResponse is a status and a body.
type adminResponse struct {
	status int
	body   []byte
}

// adminRequest sends a JSON request (a GET when body is nil) and reads the answer.
func adminRequest(ctx context.Context, method, url string, body []byte) (adminResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return adminResponse{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return adminResponse{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return adminResponse{}, errors.Join(fmt.Errorf("%s %s: read the answer", method, url), err)
	}
	return adminResponse{status: resp.StatusCode, body: b}, nil
}
