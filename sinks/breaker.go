package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// ErrCircuitOpen is wrapped by the error of an attempt that was not sent because a
// circuit breaker is open (or half-open with its one probe in flight): the destination's
// (host:port: PoolConfig.BreakerThreshold connection-level failures in a row, for every
// hook sending there) or the hook's own (as many HTTP status failures — 429, 5xx — or
// script failures in a row, for this hook version only). The message names which
// ("circuit breaker open for destination example.com:443", "… for hook <id>"). The
// Result is retryable, with RetryAfter set to the time left before the breaker lets this
// hook's attempt through as the probe (0 while a probe is in flight), never more than
// the hook's retry.max_backoff_ms.
var ErrCircuitOpen = errors.New("circuit breaker open")

// Breaker states, as exported by the eventhooks_breaker_state and
// eventhooks_hook_breaker_state gauges.
const (
	breakerClosed   int32 = 0
	breakerHalfOpen int32 = 1
	breakerOpen     int32 = 2
)

// ticket is what breaker.allow hands out; it goes back to breaker.record with the
// attempt's outcome.
type ticket uint8

const (
	ticketRejected ticket = iota // do not send
	ticketPass                   // breaker closed: an ordinary request
	ticketProbe                  // the one request let through while half-open
)

// verdict is what an attempt says about the health of what a breaker guards.
type verdict uint8

const (
	verdictNeutral verdict = iota // says nothing: neither resets nor counts
	verdictHealthy                // it answered deliberately
	verdictFailure                // its fault
)

// breakerVerdict decides what an attempt says about the destination (dest, for the
// pool's breaker shared by every hook sending there) and about the hook (hook, for the
// breaker of the hook's compiled sink). It sees the same (status, err) as classify,
// which decides retries; they differ on purpose.
//
// Only connection-level failures count against the destination: one hook whose URL
// path answers 503 must not cut off the other hooks on the same host (hooks.slack.com).
// HTTP status failures count against the hook alone.
func breakerVerdict(status int, err error) (dest, hook verdict) {
	if err != nil {
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge) && status != 0:
			// A status line arrived: it decides, below.
		case errors.Is(err, ErrPermanent):
			// The SSRF guard (or a Dial hook) refused the destination before anything
			// was sent: our policy, not the destination's health.
			return verdictNeutral, verdictNeutral
		case errors.Is(err, context.Canceled):
			// Our own shutdown.
			return verdictNeutral, verdictNeutral
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			// Our pool of connections is exhausted; the requests holding them report
			// the destination's health themselves.
			return verdictNeutral, verdictNeutral
		default:
			// Connection refused or reset, DNS failure, TLS failure, timeouts: the
			// destination is unreachable or too slow. That says nothing about the
			// hook: its own breaker neither counts nor resets.
			return verdictFailure, verdictNeutral
		}
	}
	switch {
	case status == fasthttp.StatusTooManyRequests, status >= 500:
		// 429 and 5xx: this hook's endpoint is overloaded or failing; backing off helps
		// it. The destination answered, though: other paths on it may be fine.
		return verdictHealthy, verdictFailure
	case status < 200:
		// 0 or 1xx as a final status: a broken endpoint, like a 5xx.
		return verdictHealthy, verdictFailure
	default:
		// 2xx, and also 3xx and 4xx (408 and 425 included): the endpoint is up and
		// answering; a bad URL or credentials are not for a breaker to hide.
		return verdictHealthy, verdictHealthy
	}
}

// breakerConfig is the part of PoolConfig a breaker uses.
type breakerConfig struct {
	threshold   int32
	cooldown    time.Duration
	maxCooldown time.Duration
	// firstAnswerWait: see PoolConfig.FirstAnswerWait.
	firstAnswerWait time.Duration
}

// breaker is a circuit breaker: the pool's, one per destination (Pool.newBreakerLocked),
// or a compiled sink's own, one per hook version (newHookBreaker).
//
// Closed: every request passes; verdictFailure increments failures, verdictHealthy
// resets it; reaching threshold opens the breaker for cooldown. Open: requests are
// rejected until openUntil; then the breaker is half-open. Half-open: one request at a
// time (the probe); the others are rejected while it is in flight and may wait on
// probeDone. A healthy probe closes the breaker (cooldown back to the base); a failed
// one counts, and reaching threshold opens it again, for twice the previous cooldown
// (at most maxCooldown) when it had been open since it was last healthy; a neutral one
// lets the next request probe.
//
// The hook's max backoff (maxWait in allow and turnsAway) caps how long an open breaker
// turns that hook's attempts away: once it has been open for maxWait (since opened), the
// hook's attempt is let through as the probe, the breaker turning half-open early (a
// failed probe re-opens it, for twice the cooldown as usual). So a hook that backs off at
// most 300 ms is never told to wait longer than that, whatever the cooldown.
//
// A destination's new breaker starts half-open with no failures: until it has answered,
// one request at a time finds out whether it is there, so that lanes do not all wait
// out the timeout on a dead endpoint at start-up. After cooldown the failures are set
// to threshold-1, so one failed probe re-opens. A request that can be parked instead
// (avoidProbe) is not made the probe of a destination that failed last time: it would
// hold its lane for up to the timeout; while a new destination's first probe is out it
// may wait on it for up to firstAnswerWait (a live lane's delivery is held aside
// meanwhile, without holding up its lane).
//
// A hook's breaker starts closed.
//
// Concurrency: state, failures, openUntil, openedAt and opened are atomics, so the closed path (allow, and
// record for a pass ticket that is not the threshold-th failure) and the rejection of a
// request while open take no lock. Every state change takes mu; probing and cooldown are
// guarded by mu. openUntil and openedAt are stored before state, so a reader that sees
// breakerOpen sees its deadline. Outcomes of pass tickets that arrive after the breaker left the
// closed state (requests in flight when it opened) change nothing but the failure count,
// which is set again when it closes or turns half-open.
type breaker struct {
	cfg        breakerConfig
	epoch      time.Time        // openUntil counts from here, on the monotonic clock
	err        error            // ErrCircuitOpen wrapped with what is open (destination or hook)
	rejections *metrics.Counter // nil for a hook's breaker

	state     atomic.Int32
	failures  atomic.Int32
	openUntil atomic.Int64 // nanoseconds since epoch
	openedAt  atomic.Int64 // when it last opened, nanoseconds since epoch

	// opened: the breaker opened since it was last healthy. Written under mu.
	opened atomic.Bool

	mu         sync.Mutex
	probing    bool          // guarded by mu: a probe is in flight
	probeSince int64         // guarded by mu: when it was sent, nanoseconds since epoch
	probeDone  chan struct{} // guarded by mu: closed when the probe in flight is recorded
	cooldown   time.Duration // guarded by mu: the current open period
}

// failedLastTime reports whether the destination failed since it was last healthy.
func (b *breaker) failedLastTime() bool { return b.opened.Load() || b.failures.Load() > 0 }

// newBreaker returns the breaker of destination addr, unproven (half-open) until it first
// answers. rejections may be nil.
func newBreaker(cfg breakerConfig, addr string, rejections *metrics.Counter) *breaker {
	b := &breaker{
		cfg:        cfg,
		epoch:      time.Now(),
		err:        fmt.Errorf("%w for destination %s", ErrCircuitOpen, addr),
		rejections: rejections,
		cooldown:   cfg.cooldown,
	}
	b.state.Store(breakerHalfOpen) // unproven: one request until the destination answers
	return b
}

// newHookBreaker returns the breaker of hook hookID's compiled sink, without a metric
// (the processor's per-hook metrics count its rejections as breaker waits). Like a
// destination's, it starts unproven: one attempt at a time until the hook first
// succeeds, so that a hook whose script never returns, or whose URL answers 503, costs
// one attempt at start-up rather than one per lane (a lambda's runs up to its timeout
// on a core every lane shares).
func newHookBreaker(cfg breakerConfig, hookID string) *breaker {
	b := &breaker{
		cfg:      cfg,
		epoch:    time.Now(),
		err:      fmt.Errorf("%w for hook %s", ErrCircuitOpen, hookID),
		cooldown: cfg.cooldown,
	}
	b.state.Store(breakerHalfOpen)
	return b
}

func (b *breaker) now() int64 { return int64(time.Since(b.epoch)) }

// admission is allow's answer: a ticket, and for a rejected request the time left
// before a probe can go (0 when a probe is in flight) and, while a probe is in flight,
// a channel closed when it has its answer.
type admission struct {
	ticket    ticket
	wait      time.Duration
	probeDone <-chan struct{}
}

// allow says whether a request may be sent now. avoidProbe refuses to make this request
// the probe of a breaker that failed last time (the caller parks it instead). maxWait is
// the hook's max backoff: it caps how long an open breaker turns the request away (see
// breaker) and the wait of a rejection; 0 means no cap. A nil breaker lets everything
// through.
func (b *breaker) allow(avoidProbe bool, maxWait time.Duration) admission {
	if b == nil {
		return admission{ticket: ticketPass}
	}
	s := b.state.Load()
	if s == breakerClosed {
		return admission{ticket: ticketPass}
	}
	if wait, away := b.turnsAway(avoidProbe, maxWait); away {
		b.reject()
		return admission{wait: wait}
	}
	return b.allowSlow(avoidProbe, maxWait)
}

// openLeft is the time an open breaker still turns away a hook whose max backoff is
// maxWait (0: no cap), at now: the rest of the cooldown, or of maxWait since it opened
// when that is shorter. 0 or less: the hook may probe.
func (b *breaker) openLeft(now int64, maxWait time.Duration) int64 {
	left := b.openUntil.Load() - now
	if maxWait > 0 {
		left = min(left, b.openedAt.Load()+int64(maxWait)-now)
	}
	return left
}

// turnsAway reports whether allow(avoidProbe, maxWait) would reject a request now
// because the breaker is open (wait is the time left, at most maxWait) or half-open after
// a failure with the caller avoiding probes. It takes no lock, so a handler can check it
// before building a request.
func (b *breaker) turnsAway(avoidProbe bool, maxWait time.Duration) (wait time.Duration, away bool) {
	if b == nil {
		return 0, false
	}
	switch b.state.Load() {
	case breakerOpen:
		if left := b.openLeft(b.now(), maxWait); left > 0 {
			return time.Duration(left), true
		}
		// This hook may probe now; one that avoids probes is turned away to park.
		return 0, avoidProbe
	case breakerHalfOpen:
		return 0, avoidProbe && b.failedLastTime()
	}
	return 0, false
}

func (b *breaker) allowSlow(avoidProbe bool, maxWait time.Duration) admission {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case breakerClosed:
		return admission{ticket: ticketPass}
	case breakerOpen:
		if left := b.openLeft(b.now(), maxWait); left > 0 {
			b.reject()
			return admission{wait: time.Duration(left)}
		}
		if avoidProbe { // never the probe of a breaker that failed: it stays open
			b.reject()
			return admission{}
		}
		// The cooldown is over, or this hook has waited its max backoff: half-open,
		// and this request probes (nothing probes while open).
		b.failures.Store(b.cfg.threshold - 1)
		b.state.Store(breakerHalfOpen)
	}
	// Half-open.
	if avoidProbe && b.failedLastTime() {
		b.reject()
		return admission{}
	}
	if b.probing {
		b.reject()
		if !avoidProbe {
			return admission{probeDone: b.probeDone}
		}
		// Unproven: wait a little for the first answer, then park.
		if left := b.probeSince + int64(b.cfg.firstAnswerWait) - b.now(); left > 0 {
			wait := time.Duration(left)
			if maxWait > 0 {
				wait = min(wait, maxWait)
			}
			return admission{wait: wait, probeDone: b.probeDone}
		}
		return admission{}
	}
	b.probing, b.probeSince = true, b.now()
	b.probeDone = make(chan struct{})
	return admission{ticket: ticketProbe}
}

// awaitsFirstAnswer reports whether the breaker has not answered yet (unproven, nothing
// failed) and has no probe out: the next request would be its first. One atomic load
// unless it is half-open.
func (b *breaker) awaitsFirstAnswer() bool {
	if b == nil || b.state.Load() != breakerHalfOpen || b.failedLastTime() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.probing
}

// turnsAwayAvoiders reports whether a request that avoids probes would be turned away now
// (the breaker is open, or failed last time).
func (b *breaker) turnsAwayAvoiders() bool {
	_, away := b.turnsAway(true, 0)
	return away
}

func (b *breaker) reject() {
	if b.rejections != nil {
		b.rejections.Inc()
	}
}

// record reports the outcome of a request allow let through.
func (b *breaker) record(t ticket, v verdict) {
	if b == nil {
		return
	}
	switch t {
	case ticketPass:
		switch v {
		case verdictHealthy:
			// No store, so no cache-line ping-pong, when healthy; and none once the
			// breaker left the closed state, whose count is its own.
			if b.failures.Load() != 0 && b.state.Load() == breakerClosed {
				b.failures.Store(0)
			}
		case verdictFailure:
			if b.failures.Add(1) >= b.cfg.threshold {
				b.trip()
			}
		}
	case ticketProbe:
		b.mu.Lock()
		defer b.mu.Unlock()
		b.probing = false
		close(b.probeDone)
		b.probeDone = nil
		switch v {
		case verdictHealthy:
			b.failures.Store(0)
			b.cooldown = b.cfg.cooldown
			b.opened.Store(false)
			b.state.Store(breakerClosed)
		case verdictFailure:
			if b.failures.Add(1) >= b.cfg.threshold {
				b.openLocked()
			}
		}
		// verdictNeutral: stay half-open; the next request probes.
	}
}

// trip opens a closed breaker after threshold consecutive failures.
func (b *breaker) trip() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != breakerClosed {
		return // another failure got here first
	}
	b.openLocked()
}

// openLocked opens the breaker: for the base cooldown the first time since it was last
// healthy, for twice the previous one (within maxCooldown) after that.
func (b *breaker) openLocked() {
	if b.opened.Load() {
		b.cooldown = min(2*b.cooldown, b.cfg.maxCooldown)
	}
	b.opened.Store(true)
	now := b.now()
	b.openedAt.Store(now)
	b.openUntil.Store(now + int64(b.cooldown))
	b.state.Store(breakerOpen)
}

// rejection is the Result of an attempt the breaker did not let through.
func (b *breaker) rejection(hookID string, a admission) Result {
	return Result{
		Err:        b.hookError(hookID),
		Retryable:  true,
		RetryAfter: a.wait,
		ProbeDone:  a.probeDone,
	}
}

// hookError is the error of hook hookID's attempts the breaker rejects.
func (b *breaker) hookError(hookID string) error {
	return fmt.Errorf("deliver hook %s: %w", hookID, b.err)
}

// destMetrics are the series of one destination label (host:port), shared by the
// breakers of the pool keys with that host:port (http and https, ssl_verify on and off).
type destMetrics struct {
	breakers   atomic.Pointer[[]*breaker] // copy-on-write under Pool.mu
	rejections *metrics.Counter
}

// state is the gauge's value: the worst state among the label's breakers.
func (m *destMetrics) state() float64 {
	var s int32
	for _, b := range *m.breakers.Load() {
		s = max(s, b.gaugeState())
	}
	return float64(s)
}

// gaugeState is the breaker's state as its gauge says it: one waiting for the first
// answer, with nothing failed yet, counts as closed.
func (b *breaker) gaugeState() int32 {
	s := b.state.Load()
	if s == breakerHalfOpen && !b.failedLastTime() {
		return breakerClosed
	}
	return s
}

var familyHookBreakerState = promhelp.Describe(`eventhooks_hook_breaker_state`,
	"State of the hook's own circuit breaker (its HTTP status and script failures): 0 closed, 1 half-open, 2 open.")

// servedGates holds, by hook id, the gate of the version the processor serves
// (PublishHookMetrics), which the hook's breaker and rate gauges report. A version only
// compiled to check it (the Admin API's validation, /test) is never published, so it
// cannot take the gauges over.
var servedGates = struct {
	mu   sync.Mutex
	byID map[string]*atomic.Pointer[hookGate]
}{byID: map[string]*atomic.Pointer[hookGate]{}}

// PublishHookMetrics makes s, the version of hook id the processor now serves, the one
// the hook's gauges report: eventhooks_hook_breaker_state{hook_id} (0 closed, 1
// half-open, 2 open; absent with the breakers disabled) and
// eventhooks_hook_rate_limit_per_second{hook_id}. A sink without a gate (log) removes
// them.
func PublishHookMetrics(id string, s Sink) {
	gs, ok := s.(gated)
	servedGates.mu.Lock()
	defer servedGates.mu.Unlock()
	if !ok {
		unregisterHookMetricsLocked(id)
		return
	}
	g := gs.hookGate()
	if cur := servedGates.byID[id]; cur != nil {
		cur.Store(g) // a new version: its breaker and rate start afresh
		return
	}
	cur := new(atomic.Pointer[hookGate])
	cur.Store(g)
	servedGates.byID[id] = cur
	metrics.NewGauge(rateSeries(id), func() float64 { return cur.Load().lim.rate() })
	if g.br != nil { // the breakers are on or off for the whole pool
		metrics.NewGauge(hookBreakerSeries(id), func() float64 { return float64(cur.Load().br.gaugeState()) })
	}
}

// UnregisterHookMetrics removes the per-hook series of the sinks package for hook id
// (its breaker state and its rate limit), when the hook is deleted or disabled.
func UnregisterHookMetrics(id string) {
	servedGates.mu.Lock()
	defer servedGates.mu.Unlock()
	unregisterHookMetricsLocked(id)
}

// unregisterHookMetricsLocked removes hook id's gauges; servedGates.mu is held.
func unregisterHookMetricsLocked(id string) {
	cur, ok := servedGates.byID[id]
	if !ok {
		return
	}
	delete(servedGates.byID, id)
	metrics.UnregisterMetric(rateSeries(id))
	if cur.Load().br != nil {
		metrics.UnregisterMetric(hookBreakerSeries(id))
	}
}

func hookBreakerSeries(id string) string { return familyHookBreakerState + `{hook_id="` + id + `"}` }

// gated is a sink with a hookGate (webhook, webhook-custom, lambda).
type gated interface{ hookGate() *hookGate }

func (s *webhookSink) hookGate() *hookGate { return &s.gate }
func (s *customSink) hookGate() *hookGate  { return &s.gate }
func (s *lambdaSink) hookGate() *hookGate  { return &s.gate }

// metricLabel quotes a destination for use as a label value.
func metricLabel(addr string) string {
	var b []byte
	for i := 0; i < len(addr); i++ {
		switch c := addr[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return `{destination="` + string(b) + `"}`
}
