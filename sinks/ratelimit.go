package sinks

import (
	"errors"
	"fmt"
	"sync"
	"time"

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

// rateSeries is the name of hook id's rate gauge.
func rateSeries(id string) string { return familyRate + `{hook_id="` + id + `"}` }

// bucket is a token bucket: rate tokens a second (0: unlimited), at most burst held.
// Not safe for concurrent use.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time // of the last refill
}

// take takes a token at now: true, or false and how long until there is one.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	if b.rate <= 0 {
		return true, 0
	}
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// limiter is a hook version's token bucket, with the AIMD a receiver's 429 drives and
// its max_in_flight. A nil limiter lets everything through.
type limiter struct {
	err         error // the rejection error, built once
	maxInFlight int

	mu       sync.Mutex
	b        bucket    // b.rate is the rate now; 0: unlimited
	base     float64   // rate_limit.per_second; 0: unlimited
	ceiling  float64   // where additive increase stops: base, or the rate seen before a 429
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
	l := &limiter{err: fmt.Errorf("%w: hook %s", ErrRateLimited, h.ID)}
	if rl := h.RateLimit; rl != nil && rl.PerSecond > 0 {
		l.base, l.ceiling = rl.PerSecond, rl.PerSecond
		l.b = bucket{rate: rl.PerSecond, burst: float64(rl.BurstOrDefault()), tokens: float64(rl.BurstOrDefault())}
	}
	l.maxInFlight = h.MaxInFlight
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
	l.grow(now)
	if ok, wait := l.b.take(now); !ok {
		return false, wait
	}
	l.inFlight++
	l.countSent(now)
	return true, 0
}

// grow raises a rate a 429 lowered by a tenth of its ceiling per second since, back to
// the configured rate (or to no limit). mu must be held.
func (l *limiter) grow(now time.Time) {
	if l.b.rate == 0 || l.b.rate >= l.ceiling && l.base != 0 {
		return
	}
	if steps := int(now.Sub(l.grown) / time.Second); steps > 0 {
		l.b.rate += float64(steps) * l.ceiling / 10
		l.grown = l.grown.Add(time.Duration(steps) * time.Second)
		if l.b.rate >= l.ceiling {
			l.b.rate = l.base
		}
	}
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
	if l.b.rate == 0 { // unlimited: start from what it sent lately
		seen := float64(l.sent) / max(now.Sub(l.sentFrom).Seconds(), 1)
		l.ceiling = max(seen, 2*minRatePerSecond)
		l.b.rate = l.ceiling
		l.b.burst = max(1, l.ceiling/10)
	}
	l.b.rate = max(l.b.rate/2, minRatePerSecond)
	l.cut = now
	// Nothing is earned while held: after the hold the rate starts from an empty bucket.
	l.b.tokens, l.grown, l.b.last = 0, now, now
	if l.hold.After(now) {
		l.grown, l.b.last = l.hold, l.hold
	}
}

// rate is the rate the hook is held to now (0: unlimited), for its gauge.
func (l *limiter) rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.rate
}

// destLimiter caps the requests to one destination, every hook together
// (PoolConfig.DestinationRate); nil lets everything through.
type destLimiter struct {
	err error
	mu  sync.Mutex
	b   bucket
}

// newDestLimiter returns the limiter of destination addr, nil when perSecond is 0.
func newDestLimiter(addr string, perSecond float64) *destLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst := (&hooks.RateLimit{PerSecond: perSecond}).BurstOrDefault()
	return &destLimiter{err: fmt.Errorf("%w: destination %s", ErrRateLimited, addr),
		b: bucket{rate: perSecond, burst: float64(burst), tokens: float64(burst)}}
}

// take asks for room for one request at now: true, or false and how long until there is.
func (d *destLimiter) take(now time.Time) (bool, time.Duration) {
	if d == nil {
		return true, 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.take(now)
}
