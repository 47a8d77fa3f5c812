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
)

// ErrCircuitOpen is wrapped by the error of an attempt that was not sent because the
// destination's circuit breaker is open (or half-open with its one probe in flight): the
// destination failed PoolConfig.BreakerThreshold times in a row. The Result is
// retryable, with RetryAfter set to the time left before the breaker lets a probe
// through (0 while a probe is in flight).
var ErrCircuitOpen = errors.New("circuit breaker open")

// Breaker states, as exported by the eventhooks_breaker_state gauge.
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

// verdict is what an attempt says about the destination's health.
type verdict uint8

const (
	verdictNeutral verdict = iota // says nothing: neither resets nor counts
	verdictHealthy                // the destination answered deliberately
	verdictFailure                // the destination's fault
)

// breakerVerdict decides whether an attempt counts against the destination. It sees
// the same (status, err) as classify, which decides retries; the two differ on purpose.
func breakerVerdict(status int, err error) verdict {
	if err != nil {
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge) && status != 0:
			// A status line arrived: it decides, below.
		case errors.Is(err, ErrPermanent):
			// The SSRF guard (or a Dial hook) refused the destination before anything
			// was sent: our policy, not the destination's health.
			return verdictNeutral
		case errors.Is(err, context.Canceled):
			// Our own shutdown.
			return verdictNeutral
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			// Our pool of connections is exhausted; the requests holding them report
			// the destination's health themselves.
			return verdictNeutral
		default:
			// Connection refused or reset, DNS failure, TLS failure, timeouts: the
			// destination is unreachable or too slow.
			return verdictFailure
		}
	}
	switch {
	case status == fasthttp.StatusTooManyRequests, status >= 500:
		// 429 and 5xx: the destination is overloaded or failing; backing off helps it.
		return verdictFailure
	case status < 200:
		// 0 or 1xx as a final status: a broken server, like a 5xx.
		return verdictFailure
	default:
		// 2xx, and also 3xx and 4xx (408 and 425 included): the destination is up
		// and answering; a hook with a bad URL or credentials must not cut off the
		// other hooks that share the destination.
		return verdictHealthy
	}
}

// breakerConfig is the part of PoolConfig a breaker uses.
type breakerConfig struct {
	threshold   int32
	cooldown    time.Duration
	maxCooldown time.Duration
}

// breaker is the circuit breaker of one pooled destination.
//
// Closed: every request passes; verdictFailure increments failures, verdictHealthy
// resets it; reaching threshold opens the breaker for cooldown. Open: requests are
// rejected until openUntil; the first request after it moves the breaker to half-open
// and is the probe. Half-open: other requests are rejected while the probe is in
// flight; a healthy probe closes the breaker (cooldown back to the base), a failed one
// re-opens it for twice the previous cooldown (at most maxCooldown), a neutral one lets
// the next request probe.
//
// Concurrency: state, failures and openUntil are atomics, so the closed path (allow, and
// record for a pass ticket that is not the threshold-th failure) and the rejection of a
// request while open take no lock. Every state change takes mu; probing and cooldown are
// guarded by mu. openUntil is stored before state, so a reader that sees breakerOpen
// sees its deadline. Outcomes of pass tickets that arrive after the breaker left the
// closed state (requests in flight when it opened) change nothing but the failure count,
// which is reset when it closes.
type breaker struct {
	cfg        breakerConfig
	epoch      time.Time // openUntil counts from here, on the monotonic clock
	err        error     // ErrCircuitOpen wrapped with the destination
	rejections *metrics.Counter

	state     atomic.Int32
	failures  atomic.Int32
	openUntil atomic.Int64 // nanoseconds since epoch

	mu       sync.Mutex
	probing  bool          // guarded by mu: a probe is in flight
	cooldown time.Duration // guarded by mu: the current open period
}

func newBreaker(cfg breakerConfig, label string, rejections *metrics.Counter) *breaker {
	return &breaker{
		cfg:        cfg,
		epoch:      time.Now(),
		err:        fmt.Errorf("%w for %s", ErrCircuitOpen, label),
		rejections: rejections,
		cooldown:   cfg.cooldown,
	}
}

func (b *breaker) now() int64 { return int64(time.Since(b.epoch)) }

// allow says whether a request may be sent now. When it may not, wait is the time left
// before a probe can go (0 when a probe is in flight). A nil breaker lets everything
// through.
func (b *breaker) allow() (t ticket, wait time.Duration) {
	if b == nil {
		return ticketPass, 0
	}
	s := b.state.Load()
	if s == breakerClosed {
		return ticketPass, 0
	}
	if s == breakerOpen {
		if left := b.openUntil.Load() - b.now(); left > 0 {
			b.reject()
			return ticketRejected, time.Duration(left)
		}
	}
	return b.allowSlow()
}

func (b *breaker) allowSlow() (ticket, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state.Load() {
	case breakerClosed:
		return ticketPass, 0
	case breakerOpen:
		if left := b.openUntil.Load() - b.now(); left > 0 {
			b.reject()
			return ticketRejected, time.Duration(left)
		}
		b.state.Store(breakerHalfOpen)
	}
	// Half-open.
	if b.probing {
		b.reject()
		return ticketRejected, 0
	}
	b.probing = true
	return ticketProbe, 0
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
			if b.failures.Load() != 0 { // no store, so no cache-line ping-pong, when healthy
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
		switch v {
		case verdictHealthy:
			b.failures.Store(0)
			b.cooldown = b.cfg.cooldown
			b.state.Store(breakerClosed)
		case verdictFailure:
			b.cooldown = min(2*b.cooldown, b.cfg.maxCooldown)
			b.openLocked()
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
	b.cooldown = b.cfg.cooldown
	b.openLocked()
}

func (b *breaker) openLocked() {
	b.openUntil.Store(b.now() + int64(b.cooldown))
	b.state.Store(breakerOpen)
}

// rejection is the Result of an attempt the breaker did not let through.
func (b *breaker) rejection(hookID string, wait time.Duration) Result {
	return Result{
		Err:        fmt.Errorf("deliver hook %s: %w", hookID, b.err),
		Retryable:  true,
		RetryAfter: wait,
	}
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
		s = max(s, b.state.Load())
	}
	return float64(s)
}

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
