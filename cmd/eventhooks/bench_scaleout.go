package main

// `eventhooks bench --scale-out`: one `eventhooks run` drains a backlog, then two in one
// consumer group drain the same kind of backlog, alternately, each phase on fresh topics
// and a fresh group. In the two-instance phase the group rebalances mid-drain (the second
// instance joins late, or leaves on SIGTERM), and the receiver counts the distinct event
// ids it got: a phase fails unless every produced event arrived at least once.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventhooks/eventhooks/bench"
	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
)

const (
	// scaleOutTarget is the two/one ratio aimed for.
	scaleOutTarget = 1.8
	// scaleStallAfter is how long a phase waits with no new event id before it gives up
	// and names the ids that never arrived: far longer than a rebalance, even one that
	// waits out a session timeout, far shorter than --timeout.
	scaleStallAfter = 90 * time.Second
	// scalePoll is how often a phase asks the receiver how many ids arrived.
	scalePoll = 50 * time.Millisecond
)

// defaultRebalanceAt is --rebalance-at's default.
const defaultRebalanceAt = 0.33

// The values of --rebalance.
const (
	rebalanceJoin  = "join"
	rebalanceLeave = "leave"
	rebalanceNone  = "none"
)

// validateScaleOut refuses what --scale-out does not measure, and its flags without it.
func (c *BenchCmd) validateScaleOut() error {
	if !c.ScaleOut {
		// Zero values count as unset: a BenchCmd built in code has them.
		if c.Pin || (c.Rebalance != "" && c.Rebalance != rebalanceJoin) || (c.RebalanceAt != 0 && c.RebalanceAt != defaultRebalanceAt) {
			return errors.New("--pin, --rebalance and --rebalance-at: only with --scale-out")
		}
		return nil
	}
	switch {
	case c.inProcess():
		return errors.New("--scale-out: separate processes (not --in-process or --faults)")
	case c.Baseline, c.Rate > 0, c.CompareAttemptLog, c.Hooks != 1:
		return errors.New("--scale-out: one hook draining a backlog: not with --baseline, --rate, --compare-attempt-log or --hooks")
	case c.Handler != hooks.HandlerWebhook && c.Handler != hooks.HandlerLambda:
		return errors.New("--scale-out: the receiver reads each event's id from the request body: --handler webhook or lambda")
	case c.RebalanceAt <= 0 || c.RebalanceAt >= 1:
		return fmt.Errorf("--rebalance-at %v: want a fraction between 0 and 1, both excluded", c.RebalanceAt)
	case c.Pin && runtime.GOOS != "linux":
		return errors.New("--pin: Linux only (taskset or sched_setaffinity)")
	}
	return nil
}

// runScaleOut runs --pairs pairs of phases, one instance then two, and reports both
// events/s, their ratio, each process's CPU and the event ids the receiver counted.
func (p *procsRun) runScaleOut(ctx context.Context) error {
	c := p.cmd
	s := &bench.ScaleOutReport{Target: scaleOutTarget, Setup: p.scaleSetup(), Rebalance: p.rebalanceDesc()}
	p.report.ScaleOut = s
	p.report.Info.Mode = "drain of a backlog by one eventhooks run, then by two"
	p.report.Ours, p.report.Baselines = "", nil
	for i := 1; i <= c.Pairs; i++ {
		one, err := p.scalePhase(ctx, i, 1)
		if err != nil {
			return err
		}
		two, err := p.scalePhase(ctx, i, 2)
		if err != nil {
			return err
		}
		s.Add(bench.ScalePair{One: one, Two: two})
		if c.Rebalance != rebalanceNone && !midDrain(two) {
			p.report.Notes = append(p.report.Notes, fmt.Sprintf("%s: the drain was over before the group rebalanced: "+
				"more --events, or a --receiver-delay, make it rebalance mid-drain", two.Name))
		}
		pr := s.Pairs[len(s.Pairs)-1]
		p.log.Info("scale-out pair", "pair", i, "one events/s", int(one.PerSec), "two events/s", int(two.PerSec),
			"ratio", strconv.FormatFloat(pr.Ratio, 'f', 2, 64), "steady ratio", strconv.FormatFloat(pr.SteadyRatio, 'f', 2, 64))
	}
	p.addScaleNotes()
	return nil
}

// addScaleNotes adds the notes of a scale-out run: what its figures measure, and what
// a machine of few CPUs cannot show.
func (p *procsRun) addScaleNotes() {
	c := p.cmd
	p.addNotes()
	p.report.Notes = append(p.report.Notes, fmt.Sprintf("--scale-out: each phase drains its own backlog of %d numbered events "+
		"on fresh topics in a fresh group; events/s run from starting the first instance to the receiver's last new event id, "+
		"steady events/s from the last instance's readiness (partitions assigned) to the end of the drain or the SIGTERM; "+
		"duplicates are counted until the instances stopped", c.Events))
	if n := runtime.NumCPU(); n < 4 {
		p.report.Notes = append(p.report.Notes, fmt.Sprintf("%d CPUs: the broker (unless --brokers), the receiver and the bench share "+
			"the instances' cores, so two instances cannot get twice one's CPU here; run the broker elsewhere (--brokers) or use 4 CPUs or more", n))
	}
}

// midDrain reports whether an instance of ph joined (got ready) or left after the first
// event id and before the last arrived.
func midDrain(ph bench.ScalePhase) bool {
	for _, m := range ph.Members {
		for _, at := range []int64{m.ReadyAt, m.StoppedAt} {
			if at > 0 && at < ph.IDs.Expected {
				return true
			}
		}
	}
	return false
}

// scaleSetup describes how the instances run.
func (p *procsRun) scaleSetup() string {
	if p.cmd.Pin {
		how := "sched_setaffinity (no taskset found)"
		if _, err := exec.LookPath("taskset"); err == nil {
			how = "taskset"
		}
		return fmt.Sprintf("instance i pinned to core i mod %d by %s, GOMAXPROCS=1; broker, receiver and bench not pinned", runtime.NumCPU(), how)
	}
	return fmt.Sprintf("instances not pinned, Go's default GOMAXPROCS (%d CPUs)", runtime.NumCPU())
}

// rebalanceDesc describes what the two-instance phase does mid-drain.
func (p *procsRun) rebalanceDesc() string {
	at := strconv.FormatFloat(p.cmd.RebalanceAt*100, 'f', -1, 64) + "%"
	switch p.cmd.Rebalance {
	case rebalanceJoin:
		return "the second instance starts once " + at + " of the event ids arrived"
	case rebalanceLeave:
		return "both start, the second is sent SIGTERM once " + at + " of the event ids arrived"
	}
	return "both start together (the first to join takes every partition until the group rebalances for the second)"
}

// scaleInstance is one `eventhooks run` of a phase.
type scaleInstance struct {
	proc   *benchProc
	admin  string
	meter  *bench.ProcMeter // nil once stopped
	usage  bench.ProcUsage  // set once its meter stopped
	left   bool             // sent SIGTERM mid-drain
	member bench.ScaleMember
}

// scalePhase is one phase of a pair, on topics and a group of its own.
type scalePhase struct {
	p      *procsRun
	name   string
	prefix string
	args   func(admin string) []string
	start  time.Time
	insts  []*scaleInstance
	others []*bench.ProcMeter // the broker's and the receiver's, nil once stopped
	// steadyT is when the last instance was seen ready, steadyN the distinct ids then;
	// leftT and leftN, when an instance was sent SIGTERM (zero if none was).
	steadyT, leftT time.Time
	steadyN, leftN int64
}

// scalePhase runs phase n (1 or 2 instances) of pair and returns its figures; its row
// goes in the report.
func (p *procsRun) scalePhase(ctx context.Context, pair, n int) (bench.ScalePhase, error) {
	kind, name := "one", "one instance #"+strconv.Itoa(pair)
	if n > 1 {
		kind, name = "two", "two instances #"+strconv.Itoa(pair)
	}
	ph := &scalePhase{p: p, name: name, prefix: p.prefix + strconv.Itoa(pair) + kind + "-"}
	ph.args = func(admin string) []string { return p.prefixRunArgs(ph.prefix, admin, ph.prefix+"eventhooks") }
	defer p.dropPrefix(ph.prefix) // the broker holds every record in memory
	defer ph.stopAll()
	defer ph.stopMeters() // before the processes stop
	if err := ph.prepare(ctx); err != nil {
		return bench.ScalePhase{}, fmt.Errorf("%s: %w", ph.name, err)
	}
	p.log.Info("scale-out phase", "pair", pair, "instances", n)
	if err := ph.drain(ctx, n); err != nil {
		return bench.ScalePhase{}, fmt.Errorf("%s: %w", ph.name, err)
	}
	res, out, err := ph.result(ctx)
	if err != nil {
		return out, fmt.Errorf("%s: %w", ph.name, err)
	}
	p.report.Results = append(p.report.Results, res)
	return out, nil
}

// prepare creates the phase's hook through an instance started for it, produces the
// numbered backlog and has the receiver track its ids.
func (ph *scalePhase) prepare(ctx context.Context) error {
	p := ph.p
	admin, err := freeAddr()
	if err != nil {
		return err
	}
	if err := p.createHooks(ctx, ph.args(admin), admin); err != nil {
		return err
	}
	topic := broker.NewTopics(ph.prefix, nil).Events[0]
	if _, err := bench.ProduceNumbered(ctx, p.prodCl, topic, p.cmd.Events, p.cmd.Keys, p.cmd.Size, 0); err != nil {
		return err
	}
	if _, err := p.rcv.call(ctx, "reset"); err != nil {
		return err
	}
	_, err = p.rcv.call(ctx, "track "+strconv.Itoa(p.cmd.Events))
	return err
}

// drain runs the phase's n instances until every event id arrived, the group
// rebalancing mid-drain as --rebalance says when n is 2.
func (ph *scalePhase) drain(ctx context.Context, n int) error {
	c := ph.p.cmd
	events := int64(c.Events)
	ph.start = time.Now()
	ph.others = startMeters(ph.p.kbroker, ph.p.rcv)
	first := n
	if c.Rebalance == rebalanceJoin {
		first = 1
	}
	if err := ph.startInstances(ctx, first); err != nil {
		return err
	}
	if n > 1 && c.Rebalance != rebalanceNone {
		mid := max(1, min(events-1, int64(c.RebalanceAt*float64(events))))
		if _, err := ph.waitIDs(ctx, mid); err != nil {
			return err
		}
		if c.Rebalance == rebalanceJoin {
			if err := ph.startInstances(ctx, 1); err != nil {
				return err
			}
		} else if err := ph.leave(ctx); err != nil {
			return err
		}
	}
	_, err := ph.waitIDs(ctx, events)
	return err
}

// startInstances starts k more instances, each with its own Admin API, and waits until
// each is ready (partitions assigned).
func (ph *scalePhase) startInstances(ctx context.Context, k int) error {
	p := ph.p
	for range k {
		admin, err := freeAddr()
		if err != nil {
			return err
		}
		i := len(ph.insts)
		in := &scaleInstance{admin: admin, member: bench.ScaleMember{Name: "eventhooks run " + strconv.Itoa(i+1)}}
		if in.proc, err = p.startInstance(in.member.Name, i, ph.args(admin)); err != nil {
			return err
		}
		in.member.PID = in.proc.pid()
		if p.cmd.Pin {
			in.member.GOMAXPROCS = "1"
		}
		in.meter = bench.StartProcMeter(in.member.Name, in.member.PID)
		ph.insts = append(ph.insts, in)
	}
	for _, in := range ph.insts[len(ph.insts)-k:] {
		if err := waitReady(ctx, in.admin, in.proc); err != nil {
			return err
		}
		in.member.CPUs = cpusAllowed(in.member.PID)
	}
	ids, err := ph.ids(ctx)
	if err != nil {
		return err
	}
	ph.steadyT, ph.steadyN = time.Now(), ids.Distinct
	for _, in := range ph.insts[len(ph.insts)-k:] {
		in.member.ReadyAt = ids.Distinct
	}
	return nil
}

// startInstance starts `eventhooks run` instance i (0-based) with args; with --pin on
// core i mod the CPUs, with GOMAXPROCS=1: by taskset, which execs the binary (the pid is
// its), or else by sched_setaffinity.
func (p *procsRun) startInstance(name string, i int, args []string) (*benchProc, error) {
	exe, set := p.exe, procSetup{cpu: -1}
	args = append([]string{"--log-level", p.logLevel}, args...)
	if p.cmd.Pin {
		cpu := i % runtime.NumCPU()
		set.env = []string{"GOMAXPROCS=1"}
		if taskset, err := exec.LookPath("taskset"); err == nil {
			args = append([]string{"-c", strconv.Itoa(cpu), exe}, args...)
			exe = taskset
		} else {
			set.cpu = cpu
		}
	}
	proc, err := startProcWith(name, set, exe, false, args...)
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, proc)
	return proc, nil
}

// leave sends the last instance SIGTERM, its meter and delivered count taken first; it
// exits in the background, handing its partitions to the other.
func (ph *scalePhase) leave(ctx context.Context) error {
	in := ph.insts[len(ph.insts)-1]
	var ids bench.IDStats
	// It leaves while it holds work: once it delivered (or the drain is over).
	err := poll(ctx, in.proc, in.member.Name+" to deliver", func() (bool, error) {
		d, err := deliveredOf(ctx, in.admin)
		if err == nil {
			ids, err = ph.ids(ctx)
		}
		return d > 0 || ids.Lost() == 0, err
	})
	if err != nil {
		return err
	}
	if err := in.finish(ctx, ph.p.cmd.Events); err != nil {
		return err
	}
	in.left, in.member.StoppedAt = true, ids.Distinct
	ph.leftT, ph.leftN = time.Now(), ids.Distinct
	go in.proc.stop(procStopGrace)
	return nil
}

// stopMeter ends the instance's CPU and memory meter, once, over events.
func (in *scaleInstance) stopMeter(events int) {
	if in.meter != nil {
		in.usage, in.meter = in.meter.Stop(int64(events)), nil
	}
}

// finish stops the instance's meter, if running, and reads its delivered count, before
// it stops.
func (in *scaleInstance) finish(ctx context.Context, events int) error {
	in.stopMeter(events)
	d, err := deliveredOf(ctx, in.admin)
	in.member.Delivered = d
	return err
}

// stopMeters stops the meters still running, once the drain is over.
func (ph *scalePhase) stopMeters() {
	ph.instanceUsage()
	if ph.others != nil {
		_ = stopMeters(ph.others, 0)
		ph.others = nil
	}
}

// stopAll stops the phase's instances.
func (ph *scalePhase) stopAll() {
	for _, in := range ph.insts {
		in.proc.stop(procStopGrace)
	}
}

// ids asks the receiver what it counted of the phase's event ids.
func (ph *scalePhase) ids(ctx context.Context) (bench.IDStats, error) {
	m, err := ph.p.rcv.call(ctx, "ids")
	if err != nil {
		return bench.IDStats{}, err
	}
	if m.IDs == nil {
		return bench.IDStats{}, errors.New("the receiver answered ids without them")
	}
	return *m.IDs, nil
}

// waitIDs polls the receiver until at least want distinct event ids arrived. It fails,
// naming what never arrived, when none arrives for scaleStallAfter, ctx ends or an
// instance exits on its own.
func (ph *scalePhase) waitIDs(ctx context.Context, want int64) (bench.IDStats, error) {
	last, since := int64(-1), time.Now()
	for {
		m, err := ph.p.rcv.call(ctx, "ids")
		if err != nil {
			return bench.IDStats{}, err
		}
		ids, now := *m.IDs, time.Now()
		if ids.Distinct >= want {
			return ids, nil
		}
		if ids.Distinct != last {
			last, since = ids.Distinct, now
		}
		why := ""
		if now.Sub(since) >= scaleStallAfter {
			why = fmt.Sprintf("none arrived for %v", scaleStallAfter)
		}
		for _, in := range ph.insts {
			if in.exited() {
				why = fmt.Sprintf("%s exited mid-drain: %v", in.member.Name, in.proc.err)
			}
		}
		if why == "" {
			select {
			case <-ctx.Done():
				why = ctx.Err().Error()
			case <-time.After(scalePoll):
			}
		}
		if why != "" {
			return ids, fmt.Errorf("%w; %s", lostError(ids, m.Missing, why), ph.groupLag(ctx))
		}
	}
}

// groupLag says, per partition of the phase's events topic, how far the group's
// committed offset is behind the end: uncommitted records are stuck, not lost; a
// partition committed to its end with ids missing lost them.
func (ph *scalePhase) groupLag(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second) // also when the wait's ctx ended
	defer cancel()
	lag, _, err := uncommitted(ctx, ph.p.adm, ph.prefix+"eventhooks", ph.prefix+"events")
	if err != nil {
		return "group lag unknown: " + err.Error()
	}
	var b strings.Builder
	for _, part := range slices.Sorted(maps.Keys(lag)) {
		fmt.Fprintf(&b, " %d:%d", part, lag[part])
	}
	return "records not committed by the group, per partition:" + b.String()
}

// exited reports whether the instance exited although it was not sent SIGTERM.
func (in *scaleInstance) exited() bool {
	select {
	case <-in.proc.exited:
		return !in.left
	default:
		return false
	}
}

// lostError says how many event ids did not arrive, which first, and why the wait ended.
func lostError(ids bench.IDStats, missing []int64, why string) error {
	seqs := make([]string, len(missing))
	for i, s := range missing {
		seqs[i] = strconv.FormatInt(s, 10)
	}
	return fmt.Errorf("lost %d of %d event ids (%s): seq %s…; %d duplicates, %d requests without an id",
		ids.Lost(), ids.Expected, why, strings.Join(seqs, ", "), ids.Duplicates, ids.Unknown)
}

// result reads the running instances' delivered counts, stops them and builds the
// phase's row and figures, once the receiver has every id.
func (ph *scalePhase) result(ctx context.Context) (bench.Result, bench.ScalePhase, error) {
	p, events := ph.p, int64(ph.p.cmd.Events)
	others := ph.others
	ph.others = nil
	usage := append(ph.instanceUsage(), stopMeters(others, events)...)
	for _, in := range ph.insts {
		if !in.left {
			if err := in.finish(ctx, p.cmd.Events); err != nil {
				return bench.Result{}, bench.ScalePhase{}, err
			}
		}
	}
	ph.stopAll()
	ids, err := ph.ids(ctx) // with the duplicates sent while the instances stopped
	if err != nil {
		return bench.Result{}, bench.ScalePhase{}, err
	}
	if ids.Lost() != 0 || ids.CompleteAt == 0 {
		return bench.Result{}, bench.ScalePhase{}, lostError(ids, nil, "counted after the drain")
	}
	end := time.Unix(0, ids.CompleteAt)
	res := bench.Result{Name: ph.name, Events: events, Seconds: end.Sub(ph.start).Seconds()}
	res.PerSec = float64(events) / res.Seconds
	setUsage(&res, usage)
	if err := p.addReceiverStats(ctx, &res, ph.start); err != nil {
		return res, bench.ScalePhase{}, err
	}
	out := bench.ScalePhase{Name: ph.name, PerSec: res.PerSec, Seconds: res.Seconds, IDs: ids,
		SteadyPerSec: ph.steadyRate(end, events)}
	for i, in := range ph.insts {
		out.Members = append(out.Members, in.member)
		out.CPUMicrosEvent += usage[i].CPUMicrosEvent
	}
	return res, out, nil
}

// instanceUsage stops the instances' meters still running and returns every instance's
// usage.
func (ph *scalePhase) instanceUsage() []bench.ProcUsage {
	us := make([]bench.ProcUsage, len(ph.insts))
	for i, in := range ph.insts {
		in.stopMeter(ph.p.cmd.Events)
		us[i] = in.usage
	}
	return us
}

// steadyRate is the events/s while every instance ran: from the last readiness to the
// SIGTERM, if one was sent, else to end.
func (ph *scalePhase) steadyRate(end time.Time, events int64) float64 {
	to, n := end, events
	if !ph.leftT.IsZero() {
		to, n = ph.leftT, ph.leftN
	}
	if !to.After(ph.steadyT) {
		return 0
	}
	return float64(n-ph.steadyN) / to.Sub(ph.steadyT).Seconds()
}

// deliveredOf sums the delivered attempts of the `eventhooks run` whose Admin API is on
// admin, from its /metrics.
func deliveredOf(ctx context.Context, admin string) (int64, error) {
	resp, err := adminRequest(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if resp.status != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics of %s: %d", admin, resp.status)
	}
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(resp.body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "eventhooks_delivery_attempts_total{") || !strings.Contains(line, `outcome="delivered"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("GET /metrics of %s: %q: %w", admin, line, err)
		}
		total += int64(v)
	}
	return total, nil
}

// cpusAllowed is process pid's Cpus_allowed_list, "" if unknown.
func cpusAllowed(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
