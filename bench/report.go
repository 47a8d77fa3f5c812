package bench

import (
	"encoding/json"
	"fmt"
	"io"
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
	Notes     []string `json:"notes,omitempty"`
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
	fmt.Fprintf(&b, "eventhooks bench: %d events (~%d B, %d keys), %d partitions, %d %s hook(s), %d lanes, %s",
		i.Events, i.Size, i.Keys, i.Partitions, i.Hooks, i.Handler, i.Lanes, i.Mode)
	if i.Rate > 0 {
		fmt.Fprintf(&b, " at %s events/s", thousands(i.Rate))
	}
	fmt.Fprintf(&b, "\nbroker %s, target %s, GOMAXPROCS %d (%d CPUs), %s", i.Broker, i.Target, i.GOMAXPROCS, i.NumCPU, i.GoVersion)
	if i.LoadAvg != "" {
		fmt.Fprintf(&b, ", load average %s", i.LoadAvg)
	}
	b.WriteString("\n\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tevents\tseconds\tevents/s\tstartup\tp50\tp90\tp99\tmax\tCPU s\tCPU µs/event\talloc B/event\tGCs\tmax RSS\tpeak RSS\t")
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
	_, err := io.WriteString(w, b.String())
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
