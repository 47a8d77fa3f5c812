package sinks

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// ErrRateLimited is wrapped by the error of an attempt that was not sent because its
// hook's rate limit or max_in_flight had no room, or because the receiver asked, with a
// 429, to slow down: nothing was sent and no attempt is spent. RetryAfter says when
// there will be room.
var ErrRateLimited = errors.New("rate limited")

// Rate limit tuning. A receiver's 429 halves the hook's rate (an unlimited hook starts
// from half of what it sent in the last second) and holds every attempt back for its
// Retry-After; each second after without a 429 the rate grows by a tenth of where it
// goes back to (the configured rate, or for an unlimited hook what it sent before the
// first 429, then no limit).
const (
	minRatePerSecond = 1                      // a 429 never lowers a hook below this
	cutEvery         = 200 * time.Millisecond // 429s of one burst in flight cut once
	inFlightWait     = 10 * time.Millisecond  // looked at again after this, when max_in_flight is full
)

var familyRate = promhelp.Describe(`eventhooks_hook_rate_limit_per_second`,
	"The rate a hook is held to now (its rate_limit, lowered after a receiver's 429); 0 when unlimited.")

// limiter is a hook version's token bucket, with the AIMD a receiver's 429 drives and
// its max_in_flight. A nil limiter lets everything through.
type limiter struct {
	err         error // the rejection error, built once
	maxInFlight int
	gauge       *metrics.Gauge

	mu       sync.Mutex
	base     float64 // rate_limit.per_second; 0: unlimited
	burst    float64
	rate     float64 // per second now; 0: unlimited
	ceiling  float64 // where additive increase stops: base, or the rate seen before a 429
	tokens   float64
	last     time.Time // of the last refill
	grown    time.Time // of the last additive increase, or of the cut
	cut      time.Time // of the last 429 cut
	hold     time.Time // a 429's Retry-After: nothing is sent before it
	inFlight int
	sent     int       // attempts let through since sentFrom, for an unlimited hook's rate
	sentFrom time.Time // start of the current one-second window
}

// newLimiter returns h's limiter. Every hook has one: a receiver's 429 limits an
// unlimited hook too.
func newLimiter(h *hooks.Hook) *limiter {
	l := &limiter{err: fmt.Errorf("%w: hook %s", ErrRateLimited, h.ID),
		gauge: metrics.GetOrCreateGauge(familyRate+`{hook_id="`+h.ID+`"}`, nil)}
	if rl := h.RateLimit; rl != nil && rl.PerSecond > 0 {
		l.base, l.rate, l.ceiling = rl.PerSecond, rl.PerSecond, rl.PerSecond
		l.burst = float64(rl.BurstOrDefault())
		l.tokens = l.burst
	}
	l.maxInFlight = h.MaxInFlight
	l.gauge.Set(l.rate)
	return l
}

// take asks for room for one attempt at now: true, or false and how long until there
// may be room. A true take must be followed by done.
func (l *limiter) take(now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.hold) {
		return false, l.hold.Sub(now)
	}
	if l.maxInFlight > 0 && l.inFlight >= l.maxInFlight {
		return false, inFlightWait
	}
	if l.rate > 0 {
		l.refill(now)
		if l.tokens < 1 {
			return false, time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		}
		l.tokens--
	}
	l.inFlight++
	l.countSent(now)
	return true, 0
}

// refill adds the tokens earned since the last refill, and grows a rate a 429 lowered
// by a tenth of its ceiling per second since. mu must be held.
func (l *limiter) refill(now time.Time) {
	if l.rate < l.ceiling || l.base == 0 {
		if steps := int(now.Sub(l.grown) / time.Second); steps > 0 {
			l.rate += float64(steps) * l.ceiling / 10
			l.grown = l.grown.Add(time.Duration(steps) * time.Second)
			if l.rate >= l.ceiling {
				l.rate = l.base // back to the configured rate, or to no limit
			}
			l.gauge.Set(l.rate)
		}
	}
	if l.rate > 0 {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
}

// countSent keeps the number of attempts of the current second. mu must be held.
func (l *limiter) countSent(now time.Time) {
	if now.Sub(l.sentFrom) >= time.Second {
		l.sent, l.sentFrom = 0, now
	}
	l.sent++
}

// done ends an attempt take let through; status and retryAfter are its answer's.
func (l *limiter) done(now time.Time, status int, retryAfter time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if status == 429 {
		l.slowDown(now, retryAfter)
	}
}

// slowDown applies a receiver's 429: the rate halves (once per burst of 429s), and
// nothing is sent before its Retry-After. mu must be held.
func (l *limiter) slowDown(now time.Time, retryAfter time.Duration) {
	if retryAfter > 0 && now.Add(retryAfter).After(l.hold) {
		l.hold = now.Add(retryAfter)
	}
	if now.Sub(l.cut) < cutEvery {
		return
	}
	if l.rate == 0 { // unlimited: start from what it sent lately
		seen := float64(l.sent) / max(now.Sub(l.sentFrom).Seconds(), 1)
		l.ceiling = max(seen, 2*minRatePerSecond)
		l.rate = l.ceiling
		l.burst = max(1, l.ceiling/10)
	}
	l.rate = max(l.rate/2, minRatePerSecond)
	l.cut = now
	// Nothing is earned while held: after the hold the rate starts from an empty bucket.
	l.tokens, l.grown, l.last = 0, now, now
	if l.hold.After(now) {
		l.grown, l.last = l.hold, l.hold
	}
	l.gauge.Set(l.rate)
}
