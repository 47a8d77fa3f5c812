package sinks

import (
	"context"
	"errors"
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
			l.b.last = t0
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
	l.b.last = t0
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
	l.b.last = t0
	l.take(t0)
	l.done(t0, 429, time.Second)
	if ok, wait := l.take(t0.Add(999 * time.Millisecond)); ok || wait != time.Millisecond {
		t.Fatalf("within Retry-After: take = %v, %v", ok, wait)
	}
	if l.b.rate != 50 {
		t.Fatalf("rate after a 429: %v, want 50", l.b.rate)
	}
	if got := lets(l, t0.Add(time.Second), time.Second, time.Millisecond, 200); got < 48 || got > 51 {
		t.Fatalf("the second after the hold: %d let through, want 50 (from an empty bucket)", got)
	}
	if got := lets(l, t0.Add(2*time.Second), time.Second, time.Millisecond, 200); got < 58 || got > 61 {
		t.Fatalf("the next second: %d let through, want 60 (a tenth more)", got)
	}
	lets(l, t0.Add(3*time.Second), 10*time.Second, time.Millisecond, 200)
	if l.b.rate != 100 {
		t.Fatalf("rate 10 s later: %v, want the configured 100", l.b.rate)
	}

	u := newLimiter(limitedHook(0, 0, 0))
	u.b.last = t0
	lets(u, t0, 500*time.Millisecond, time.Millisecond, 200) // 500 in half a second
	u.take(t0.Add(500 * time.Millisecond))
	u.done(t0.Add(500*time.Millisecond), 429, 0)
	if u.b.rate < 245 || u.b.rate > 255 {
		t.Fatalf("unlimited hook after a 429: rate %v, want 250 (half of the 500/s it sent)", u.b.rate)
	}
	lets(u, t0.Add(time.Second), 10*time.Second, time.Millisecond, 200)
	if u.b.rate != 0 {
		t.Fatalf("unlimited hook 10 s later: rate %v, want unlimited again", u.b.rate)
	}
}

// TestDestinationRateLimit: PoolConfig.DestinationRate caps the requests to each
// host:port, for every hook together: one destination's use leaves another's alone.
func TestDestinationRateLimit(t *testing.T) {
	limited, other := startServer(t, nil), startServer(t, nil)
	p := newPool(t, PoolConfig{DestinationRate: 5})
	a := mustCompile(t, webhookHook(t, limited.url+"/a", "", ""), p)
	b := mustCompile(t, webhookHook(t, limited.url+"/b", "", ""), p)
	c := mustCompile(t, webhookHook(t, other.url+"/c", "", ""), p)
	ev := newEvent(t, "crud", "consumers", consumerData)
	sent, limitedAway, otherSent := 0, 0, 0
	for i := range 10 { // well within a second on any machine: the burst of 5, one more at most
		for _, s := range []Sink{a, b} {
			switch res := s.Deliver(context.Background(), ev, nil); {
			case res.Delivered:
				sent++
			case errors.Is(res.Err, ErrRateLimited) && res.RetryAfter > 0:
				limitedAway++
			default:
				t.Fatalf("unexpected result %+v", res)
			}
		}
		if i%2 == 0 && c.Deliver(context.Background(), ev, nil).Delivered { // 5: its own burst
			otherSent++
		}
	}
	if sent < 5 || sent > 7 || limitedAway != 20-sent || otherSent != 5 {
		t.Fatalf("shared destination: %d sent, %d turned away; the other: %d sent of 5", sent, limitedAway, otherSent)
	}
}
