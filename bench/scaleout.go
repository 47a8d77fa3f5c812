package bench

import (
	"fmt"
	"io"
	"strings"
)

// ScaleOutReport compares one `eventhooks run` instance draining a backlog with two
// instances of one consumer group draining the same kind of backlog, in alternating
// phases of one run, each phase on fresh topics and a fresh group.
type ScaleOutReport struct {
	// Setup says how the instances ran (pinned or not) and what else ran beside them.
	Setup string `json:"setup"`
	// Rebalance says what the two-instance phase does mid-drain.
	Rebalance string      `json:"rebalance"`
	Pairs     []ScalePair `json:"pairs"`
	// Ratio and SteadyRatio are the medians of the pairs' ratios; Target the ratio aimed
	// for.
	Ratio       float64 `json:"ratio"`
	SteadyRatio float64 `json:"steady_ratio"`
	Target      float64 `json:"target"`
}

// ScalePair is one one-instance phase and the two-instance phase after it.
type ScalePair struct {
	One ScalePhase `json:"one"`
	Two ScalePhase `json:"two"`
	// Ratio is Two.PerSec / One.PerSec; SteadyRatio Two.SteadyPerSec / One.SteadyPerSec.
	Ratio       float64 `json:"ratio"`
	SteadyRatio float64 `json:"steady_ratio"`
}

// ScalePhase is one phase's figures; its processes' CPU and memory are in the report's
// row named Name.
type ScalePhase struct {
	Name string `json:"name"`
	// PerSec is the backlog's events over Seconds, from starting the first instance to
	// the receiver getting the last event id not seen before.
	PerSec  float64 `json:"events_per_sec"`
	Seconds float64 `json:"seconds"`
	// SteadyPerSec is the events/s while every instance ran and held partitions: from
	// the last one's readiness to the end of the drain, or to the moment one was stopped.
	SteadyPerSec float64 `json:"steady_events_per_sec"`
	// CPUMicrosEvent is the instances' CPU per event, together.
	CPUMicrosEvent float64 `json:"cpu_us_per_event"`
	// IDs is what the receiver counted of the backlog's event ids.
	IDs     IDStats       `json:"ids"`
	Members []ScaleMember `json:"instances"`
}

// ScaleMember is one `eventhooks run` instance of a phase.
type ScaleMember struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// CPUs is its Cpus_allowed_list (/proc) once ready; GOMAXPROCS is what it was given,
	// empty for Go's default.
	CPUs       string `json:"cpus"`
	GOMAXPROCS string `json:"gomaxprocs,omitempty"`
	// ReadyAt is how many distinct event ids the receiver had when the instance was ready
	// (its partitions assigned); StoppedAt, when it was sent SIGTERM mid-drain (0: it ran
	// to the end).
	ReadyAt   int64 `json:"ready_at_ids"`
	StoppedAt int64 `json:"stopped_at_ids,omitempty"`
	// Delivered is its delivered attempts (its /metrics) when the drain ended or it was
	// stopped.
	Delivered int64 `json:"delivered"`
}

// Add appends a pair with its ratios and recomputes the medians.
func (s *ScaleOutReport) Add(p ScalePair) {
	p.Ratio, p.SteadyRatio = over(p.Two.PerSec, p.One.PerSec), over(p.Two.SteadyPerSec, p.One.SteadyPerSec)
	s.Pairs = append(s.Pairs, p)
	rs, steady := make([]float64, len(s.Pairs)), make([]float64, len(s.Pairs))
	for i, p := range s.Pairs {
		rs[i], steady[i] = p.Ratio, p.SteadyRatio
	}
	s.Ratio, s.SteadyRatio = median(rs), median(steady)
}

// over is a/b, 0 when b is.
func over(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// writeText writes one line per pair, the median ratios and each phase's instances and
// event ids.
func (s *ScaleOutReport) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nscale-out: one eventhooks run, then two in one consumer group (%s); %s\n\n", s.Setup, s.Rebalance)
	tw, err := startTable(w, &b, "pair\tone events/s\tsteady\tCPU µs/event\ttwo events/s\tsteady\tCPU µs/event\ttwo/one\tsteady two/one\t")
	if err != nil {
		return err
	}
	for i, p := range s.Pairs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%s\t%s\t%.1f\t%.2f\t%.2f\t\n", i+1,
			thousands(p.One.PerSec), thousands(p.One.SteadyPerSec), p.One.CPUMicrosEvent,
			thousands(p.Two.PerSec), thousands(p.Two.SteadyPerSec), p.Two.CPUMicrosEvent, p.Ratio, p.SteadyRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.Reset()
	fmt.Fprintf(&b, "\ntwo/one: %.2f, steady %.2f", s.Ratio, s.SteadyRatio)
	if len(s.Pairs) > 1 {
		fmt.Fprintf(&b, " (medians of %d pairs)", len(s.Pairs))
	}
	writeVerdict(&b, s.Ratio, s.Target)
	for _, p := range s.Pairs {
		p.One.writeMembers(&b)
		p.Two.writeMembers(&b)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// writeMembers writes the phase's event ids and instances on one line.
func (p ScalePhase) writeMembers(b *strings.Builder) {
	fmt.Fprintf(b, "%s: %s of %s event ids arrived, %s duplicates", p.Name, thousands(float64(p.IDs.Distinct)),
		thousands(float64(p.IDs.Expected)), thousands(float64(p.IDs.Duplicates)))
	if p.IDs.Unknown > 0 {
		fmt.Fprintf(b, ", %s requests without an id", thousands(float64(p.IDs.Unknown)))
	}
	for _, m := range p.Members {
		fmt.Fprintf(b, "; %s (pid %d, CPUs %s", m.Name, m.PID, m.CPUs)
		if m.GOMAXPROCS != "" {
			b.WriteString(", GOMAXPROCS " + m.GOMAXPROCS)
		}
		fmt.Fprintf(b, ") ready at %s ids", thousands(float64(m.ReadyAt)))
		if m.StoppedAt > 0 {
			fmt.Fprintf(b, ", SIGTERM at %s", thousands(float64(m.StoppedAt)))
		}
		fmt.Fprintf(b, ", %s delivered", thousands(float64(m.Delivered)))
	}
	b.WriteByte('\n')
}
