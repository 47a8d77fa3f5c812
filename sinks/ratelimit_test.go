package sinks

import (
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

func limitedHook(perSecond float64, burst, inFlight int) *hooks.Hook {
	h := &hooks.Hook{ID: "rate-test", MaxInFlight: inFlight}
	if perSecond > 0 {
		h.RateLimit = &hooks.RateLimit{PerSecond: perSecond, Burst: burst}
	}
	return h
}

// lets counts the attempts l lets through when asked every step from t0 for d, each
// ended at once with status.
func lets(l *limiter, t0 time.Time, d, step time.Duration, status int) int {
	n := 0
	for at := t0; at.Before(t0.Add(d)); at = at.Add(step) {
		if ok, _ := l.take(at); ok {
			n++
			l.done(at, status, 0)
		}
	}
	return n
}

func TestLimiterTokenBucket(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tt := range []struct {
		name      string
		perSecond float64
		burst     int
		d         time.Duration
		want      int
	}{
		{"50/s for 2 s: the burst, then 50 a second", 50, 0, 2 * time.Second, 50 + 100},
		{"burst 5", 10, 5, time.Second, 5 + 10},
		{"half a request a second", 0.5, 0, 10 * time.Second, 1 + 5},
		{"unlimited", 0, 0, time.Second, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(limitedHook(tt.perSecond, tt.burst, 0))
			l.last = t0
			got := lets(l, t0, tt.d, time.Millisecond, 200)
			if got < tt.want-1 || got > tt.want+1 {
				t.Fatalf("let %d through, want %d", got, tt.want)
			}
		})
	}
}

func TestLimiterWaitSaysWhenThereIsRoom(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newLimiter(limitedHook(4, 1, 0))
	l.last = t0
	if ok, _ := l.take(t0); !ok {
		t.Fatal("the burst was not let through")
	}
	l.done(t0, 200, 0)
	ok, wait := l.take(t0)
	if ok || wait != 250*time.Millisecond {
		t.Fatalf("take = %v, %v; want false, 250ms", ok, wait)
	}
	if ok, _ := l.take(t0.Add(wait)); !ok {
		t.Fatal("no room after the wait it gave")
	}
}

func TestLimiterMaxInFlight(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newLimiter(limitedHook(0, 0, 2))
	for i := range 2 {
		if ok, _ := l.take(t0); !ok {
			t.Fatalf("attempt %d of 2 turned away", i+1)
		}
	}
	if ok, wait := l.take(t0); ok || wait <= 0 {
		t.Fatalf("a third attempt in flight: take = %v, %v", ok, wait)
	}
	l.done(t0, 200, 0)
	if ok, _ := l.take(t0); !ok {
		t.Fatal("no room once one ended")
	}
}

// TestLimiterObeysA429: a receiver's 429 holds every attempt for its Retry-After and
// halves the rate; a second without one grows it back by a tenth, up to the configured
// rate; an unlimited hook is limited from half of what it sent, and unlimited again
// once it grew back.
func TestLimiterObeysA429(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := newLimiter(limitedHook(100, 0, 0))
	l.last = t0
	l.take(t0)
	l.done(t0, 429, time.Second)
	if ok, wait := l.take(t0.Add(999 * time.Millisecond)); ok || wait != time.Millisecond {
		t.Fatalf("within Retry-After: take = %v, %v", ok, wait)
	}
	if l.rate != 50 {
		t.Fatalf("rate after a 429: %v, want 50", l.rate)
	}
	if got := lets(l, t0.Add(time.Second), time.Second, time.Millisecond, 200); got < 48 || got > 51 {
		t.Fatalf("the second after the hold: %d let through, want 50 (from an empty bucket)", got)
	}
	if got := lets(l, t0.Add(2*time.Second), time.Second, time.Millisecond, 200); got < 58 || got > 61 {
		t.Fatalf("the next second: %d let through, want 60 (a tenth more)", got)
	}
	lets(l, t0.Add(3*time.Second), 10*time.Second, time.Millisecond, 200)
	if l.rate != 100 {
		t.Fatalf("rate 10 s later: %v, want the configured 100", l.rate)
	}

	u := newLimiter(limitedHook(0, 0, 0))
	u.last = t0
	lets(u, t0, 500*time.Millisecond, time.Millisecond, 200) // 500 in half a second
	u.take(t0.Add(500 * time.Millisecond))
	u.done(t0.Add(500*time.Millisecond), 429, 0)
	if u.rate < 245 || u.rate > 255 {
		t.Fatalf("unlimited hook after a 429: rate %v, want 250 (half of the 500/s it sent)", u.rate)
	}
	lets(u, t0.Add(time.Second), 10*time.Second, time.Millisecond, 200)
	if u.rate != 0 {
		t.Fatalf("unlimited hook 10 s later: rate %v, want unlimited again", u.rate)
	}
}
