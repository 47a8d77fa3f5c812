package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one phase measured.
type Result struct {
	// Name labels the phase ("eventhooks (webhook)", "bare pipeline", …).
	Name string `json:"name"`
	// Events is how many events (records, requests) the phase processed.
	Events int64 `json:"events"`
	// Deliveries is how many requests the in-process receiver counted (hooks × events
	// for the processor), 0 without one.
	Deliveries int64 `json:"deliveries"`
	// Errors counts failed requests of the baselines (they do not retry).
	Errors int64 `json:"errors"`
	// Seconds is the phase's wall time; PerSec = Events / Seconds.
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"events_per_sec"`
	// Startup is the time from the phase's start to its first delivery (group join,
	// assignment, first fetch); 0 when not measured.
	Startup time.Duration `json:"startup_ns"`
	// Latency is the delivery latency: receipt time − the event's "ts".
	Latency
	// CPUSeconds is the user + system CPU time of the whole process during the phase.
	CPUSeconds float64 `json:"cpu_seconds"`
	// AllocBytes is the Go heap allocated during the phase, by the whole process.
	AllocBytes int64 `json:"alloc_bytes"`
	// GCs is the number of GC cycles completed during the phase.
	GCs int64 `json:"gcs"`
	// PeakRSSBytes is VmHWM at the end of the phase: the process's peak RSS since it
	// started, so never below an earlier phase's.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// MaxRSSBytes is the largest VmRSS sampled during the phase (every 50 ms).
	MaxRSSBytes int64 `json:"max_rss_bytes"`
	// Procs is, when each part runs in its own process, what every process taking part
	// in the phase used, the phase's own process first (whose figures are also the row's
	// CPU and RSS); nil when everything runs in the bench's process.
	Procs []ProcUsage `json:"processes,omitempty"`
}

// RunInfo describes the run, for the report's header.
type RunInfo struct {
	Events     int     `json:"events"`
	Keys       int     `json:"keys"`
	Size       int     `json:"size"`
	Partitions int     `json:"partitions"`
	Hooks      int     `json:"hooks"`
	Handler    string  `json:"handler"`
	Lanes      int     `json:"lanes"`
	Rate       float64 `json:"rate"`
	// Shape says which processes ran what: ShapeProcesses or ShapeInProcess.
	Shape string `json:"shape"`
	// Mode is "drain" (a backlog produced first, the processor started after) or "rate"
	// (producer and processor concurrently, the producer paced).
	Mode       string `json:"mode"`
	Broker     string `json:"broker"`
	Target     string `json:"target"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	GoVersion  string `json:"go_version"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute averages at the start: a busy box
	// makes every figure noisy.
	LoadAvg string `json:"load_avg,omitempty"`
}

// The shapes of a run (RunInfo.Shape).
const (
	// ShapeProcesses: the broker, eventhooks run, the receiver and each baseline in a
	// process of its own, as deployed.
	ShapeProcesses = "separate processes"
	// ShapeInProcess: broker, processor, receiver and baselines in the bench's process,
	// the hot-path view.
	ShapeInProcess = "one process"
)

// Ratio is the processor's events/s over a baseline's.
type Ratio struct {
	Baseline string  `json:"baseline"`
	Value    float64 `json:"value"`
}

// Report is a run's results: the processor's row (Ours) compared with the baselines.
type Report struct {
	Info    RunInfo  `json:"info"`
	Results []Result `json:"results"`
	// Ours names the processor's row; Baselines name the rows it is compared with.
	Ours      string   `json:"ours"`
	Baselines []string `json:"-"`
	Ratios    []Ratio  `json:"ratios,omitempty"`
	// Faults is the failure-isolation comparison of `bench --faults`, nil otherwise.
	Faults *FaultsReport `json:"faults,omitempty"`
	// ScaleOut is the one-versus-two-instances comparison of `bench --scale-out`, nil
	// otherwise.
	ScaleOut *ScaleOutReport `json:"scale_out,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

// FaultsReport compares a healthy hook draining the backlog alone with the same drain
// while failing hooks subscribe to the same events, in alternating phases of one run.
type FaultsReport struct {
	// Setup says how the hooks are configured (ordering, retry policy, timeouts).
	Setup string `json:"setup"`
	// Hooks describes the failing hooks, as "A: webhook answered 503 …".
	Hooks []string    `json:"hooks"`
	Pairs []FaultPair `json:"pairs"`
	// Ratio is the median of the pairs' ratios; Target the ratio aimed for.
	Ratio  float64 `json:"ratio"`
	Target float64 `json:"target"`
}

// FaultPair is one alone phase and the faults phase after it.
type FaultPair struct {
	Alone  FaultPhase `json:"alone"`
	Faults FaultPhase `json:"faults"`
	// Ratio is Faults.PerSec / Alone.PerSec.
	Ratio float64 `json:"ratio"`
	// FaultHooks is what the failing hooks did during the faults phase.
	FaultHooks []FaultHook `json:"fault_hooks"`
}

// FaultPhase is the healthy hook's figures in one phase: events/s until it received
// every event, and the whole process's CPU per event meanwhile.
type FaultPhase struct {
	PerSec         float64 `json:"events_per_sec"`
	Seconds        float64 `json:"seconds"`
	CPUMicrosEvent float64 `json:"cpu_us_per_event"`
}

// NewFaultPhase takes a phase's figures from its result row.
func NewFaultPhase(r Result) FaultPhase {
	p := FaultPhase{PerSec: r.PerSec, Seconds: r.Seconds}
	if r.Events > 0 {
		p.CPUMicrosEvent = r.CPUSeconds / float64(r.Events) * 1e6
	}
	return p
}

// FaultHook is what one failing hook did during a faults phase, from the receiver and the
// processor's per-hook counters (read when the phase ended).
type FaultHook struct {
	Name string `json:"name"`
	// ReceiverFailed counts the requests the receiver answered with the failing status
	// (the hook on the receiver's host:port only).
	ReceiverFailed int64 `json:"receiver_failed,omitempty"`
	Delivered      int64 `json:"delivered"`
	Failed         int64 `json:"failed_attempts"`
	Parked         int64 `json:"parked"`
	ParkedBehind   int64 `json:"parked_behind"`
	DeadLettered   int64 `json:"dead_lettered"`
	BreakerWaits   int64 `json:"breaker_waits"`
}

// Add appends a pair and recomputes the median ratio.
func (f *FaultsReport) Add(p FaultPair) {
	if p.Alone.PerSec > 0 {
		p.Ratio = p.Faults.PerSec / p.Alone.PerSec
	}
	f.Pairs = append(f.Pairs, p)
	rs := make([]float64, len(f.Pairs))
	for i, p := range f.Pairs {
		rs[i] = p.Ratio
	}
	f.Ratio = median(rs)
}

// median returns the median of rs (sorting it), 0 for none.
func median(rs []float64) float64 {
	slices.Sort(rs)
	switch n := len(rs); {
	case n == 0:
		return 0
	case n%2 == 1:
		return rs[n/2]
	default:
		return (rs[n/2-1] + rs[n/2]) / 2
	}
}

// startTable writes what b holds, then starts a right-aligned table below it with header
// (columns ending in tabs) as its first row.
func startTable(w io.Writer, b *strings.Builder, header string) (*tabwriter.Writer, error) {
	if _, err := io.WriteString(w, b.String()); err != nil {
		return nil, err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, header)
	return tw, nil
}

// writeText writes the comparison: one line per pair, the median ratio, and what the
// failing hooks did.
func (f *FaultsReport) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nfaults: the healthy hook B alone, then beside failing hooks (%s):\n", f.Setup)
	for _, h := range f.Hooks {
		b.WriteString("  " + h + "\n")
	}
	b.WriteByte('\n')
	tw, err := startTable(w, &b, "pair\tB alone events/s\tCPU µs/event\tB with faults events/s\tCPU µs/event\tfaults/alone\t")
	if err != nil {
		return err
	}
	for i, p := range f.Pairs {
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%s\t%.1f\t%.2f\t\n", i+1, thousands(p.Alone.PerSec), p.Alone.CPUMicrosEvent,
			thousands(p.Faults.PerSec), p.Faults.CPUMicrosEvent, p.Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.Reset()
	fmt.Fprintf(&b, "\nB with faults / B alone: %.2f", f.Ratio)
	if len(f.Pairs) > 1 {
		fmt.Fprintf(&b, " (median of %d pairs)", len(f.Pairs))
	}
	writeVerdict(&b, f.Ratio, f.Target)
	for i, p := range f.Pairs {
		fmt.Fprintf(&b, "faults seen in pair %d:", i+1)
		for j, h := range p.FaultHooks {
			if j > 0 {
				b.WriteByte(';')
			}
			fmt.Fprintf(&b, " %s", h.Name)
			if h.ReceiverFailed > 0 {
				fmt.Fprintf(&b, " %s answered with the failing status,", thousands(float64(h.ReceiverFailed)))
			}
			fmt.Fprintf(&b, " %s failed attempts, %s parked, %s parked behind, %s dead-lettered, %s breaker waits, %s delivered",
				thousands(float64(h.Failed)), thousands(float64(h.Parked)), thousands(float64(h.ParkedBehind)),
				thousands(float64(h.DeadLettered)), thousands(float64(h.BreakerWaits)), thousands(float64(h.Delivered)))
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// Find returns the result named name.
func (r *Report) Find(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// ComputeRatios fills Ratios: Ours' events/s over each baseline's that was measured.
func (r *Report) ComputeRatios() {
	ours, ok := r.Find(r.Ours)
	r.Ratios = nil
	if !ok {
		return
	}
	for _, name := range r.Baselines {
		if b, ok := r.Find(name); ok && b.PerSec > 0 {
			r.Ratios = append(r.Ratios, Ratio{Baseline: name, Value: ours.PerSec / b.PerSec})
		}
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as an aligned table followed by the ratios and notes.
func (r *Report) WriteText(w io.Writer) error {
	i := r.Info
	var b strings.Builder
	fmt.Fprintf(&b, "eventhooks bench, %s: %d events (~%d B, %d keys), %d partitions, %d %s hook(s), %d lanes, %s",
		strings.ToUpper(i.Shape), i.Events, i.Size, i.Keys, i.Partitions, i.Hooks, i.Handler, i.Lanes, i.Mode)
	if i.Rate > 0 {
		fmt.Fprintf(&b, " at %s events/s", thousands(i.Rate))
	}
	fmt.Fprintf(&b, "\nbroker %s, target %s, GOMAXPROCS %d (%d CPUs), %s", i.Broker, i.Target, i.GOMAXPROCS, i.NumCPU, i.GoVersion)
	if i.LoadAvg != "" {
		fmt.Fprintf(&b, ", load average %s", i.LoadAvg)
	}
	b.WriteString("\n\n")
	tw, err := startTable(w, &b, "phase\tevents\tseconds\tevents/s\tstartup\tp50\tp90\tp99\tmax\tCPU s\tCPU µs/event\talloc B/event\tGCs\tmax RSS\tpeak RSS\t")
	if err != nil {
		return err
	}
	for _, res := range r.Results {
		cpuPer, allocPer := "-", "-"
		if res.Events > 0 && res.CPUSeconds > 0 {
			cpuPer = strconv.FormatFloat(res.CPUSeconds/float64(res.Events)*1e6, 'f', 1, 64)
		}
		if res.Events > 0 && res.AllocBytes > 0 {
			allocPer = strconv.FormatInt(res.AllocBytes/res.Events, 10)
		}
		name := res.Name
		if res.Errors > 0 {
			name += fmt.Sprintf(" (%d errors)", res.Errors)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%d\t%s\t%s\t\n",
			name, res.Events, res.Seconds, thousands(res.PerSec), dur(res.Startup),
			latency(res.Latency, res.P50), latency(res.Latency, res.P90), latency(res.Latency, res.P99), latency(res.Latency, res.Max),
			res.CPUSeconds, cpuPer, allocPer, res.GCs, mib(res.MaxRSSBytes), mib(res.PeakRSSBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeProcs(w); err != nil {
		return err
	}
	if r.Faults != nil {
		if err := r.Faults.writeText(w); err != nil {
			return err
		}
	}
	if r.ScaleOut != nil {
		if err := r.ScaleOut.writeText(w); err != nil {
			return err
		}
	}
	b.Reset()
	if len(r.Ratios) > 0 {
		b.WriteString("\nevents/s of " + r.Ours + " over:")
		for _, ra := range r.Ratios {
			fmt.Fprintf(&b, "  %s %.2f", ra.Baseline, ra.Value)
		}
		b.WriteByte('\n')
	}
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func latency(l Latency, d time.Duration) string {
	if l.Samples == 0 {
		return "-"
	}
	return dur(d)
}

// dur formats a duration with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	}
}

func mib(b int64) string {
	if b <= 0 {
		return "-"
	}
	return strconv.FormatInt(b>>20, 10) + " MiB"
}

// thousands formats v rounded to an integer with thin grouping commas.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// writeProcs writes, when the rows carry them, the figures of every process of each
// phase and their sum.
func (r *Report) writeProcs(w io.Writer) error {
	var b strings.Builder
	b.WriteString("\nper process (CPU of all its threads, from /proc, 10 ms ticks):\n")
	var tw *tabwriter.Writer
	for _, res := range r.Results {
		if len(res.Procs) == 0 {
			continue
		}
		if tw == nil {
			var err error
			if tw, err = startTable(w, &b, "phase\tprocess\tpid\tCPU s\tCPU µs/event\tmax RSS\tpeak RSS\t"); err != nil {
				return err
			}
		}
		var total ProcUsage
		for i, p := range res.Procs {
			phase := ""
			if i == 0 {
				phase = res.Name
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.1f\t%s\t%s\t\n", phase, p.Name, p.PID, p.CPUSeconds, p.CPUMicrosEvent,
				mib(p.MaxRSSBytes), mib(p.PeakRSSBytes))
			total.CPUSeconds += p.CPUSeconds
			total.CPUMicrosEvent += p.CPUMicrosEvent
		}
		fmt.Fprintf(tw, "\tall %d\t\t%.2f\t%.1f\t\t\t\n", len(res.Procs), total.CPUSeconds, total.CPUMicrosEvent)
	}
	if tw == nil {
		return nil
	}
	return tw.Flush()
}

// writeVerdict ends a ratio's line with whether it meets target.
func writeVerdict(b *strings.Builder, ratio, target float64) {
	verdict := "below"
	if ratio >= target {
		verdict = "meets"
	}
	fmt.Fprintf(b, "; %s the target of %.2f\n", verdict, target)
}
