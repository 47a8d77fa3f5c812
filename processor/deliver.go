package processor

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// handleEvent runs one record of the events topic through every hook it matches. It
// reports whether the record is done; false means it was abandoned (shutdown or revoke)
// and stays uncommitted for whoever owns the partition next.
func (p *Processor) handleEvent(l *lane, r *kgo.Record) bool {
	hs := p.hs.Load()
	src, evName, routed := l.dec.Route(r)
	var matched []*compiledHook
	if routed {
		if matched = hs.index.Match(src, evName); len(matched) == 0 {
			recordsUnmatched.Inc() // routed by headers: the value is never parsed
			return true
		}
	}
	if err := l.dec.Decode(r, &l.ev); err != nil {
		kind := hooks.DecodeErrorKind(err)
		malformedCounter(kind).Inc()
		p.logs.warn(p.log, "malformed:"+kind, "malformed record sent to the DLQ",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", err)
		return p.deadLetter(l.w.ctx, l, newEntry(r, "", p.cfg.Now()).fail(0, err, "malformed: "+err.Error()))
	}
	if !routed || l.ev.Source != src || l.ev.Event != evName { // the headers' match stands when they agree
		matched = hs.index.Match(l.ev.Source, l.ev.Event)
	}
	if len(matched) == 0 {
		recordsUnmatched.Inc()
		return true
	}
	recordsMatched.Inc()
	for _, ch := range matched {
		if !p.serveGated(l, ch).settled() {
			return false
		}
	}
	return true
}

// delivery is where one delivery runs: the goroutine's context, the event and the sinks'
// lane state, and, on a consumer's lane (events or retry), that lane, whose record may
// be finished by an asynchronous write (see write).
type delivery struct {
	ctx   context.Context
	ev    *hooks.Event
	sinks *sinks.Lane
	live  *lane
	// holdOnOpenCircuit makes an ordering "none" delivery wait on an open circuit
	// instead of parking (the retry worker: its entries are parked already).
	holdOnOpenCircuit bool
}

// outcome is how a delivery was settled, or that it was not.
type outcome uint8

const (
	// abandoned: stopped before it was settled (shutdown or revoke); not done.
	abandoned outcome = iota
	delivered
	parked
	deadLettered
)

// settled reports whether the record may count as done for this hook.
func (o outcome) settled() bool { return o != abandoned }

// serve delivers ev to one hook (e is the delivery's history when it was parked before,
// nil for a fresh one), following the hook's retry policy: a retryable failure
// is retried in place with backoff (blocking only this lane, so later events of the key
// wait: ordering "key"), or after inlineBudget attempts parked in the retry topic
// (ordering "none"); a permanent failure or the last attempt goes to the DLQ. It reports
// whether the delivery is settled (delivered, parked or dead-lettered, each confirmed).
// lane is the calling goroutine's sinks.Lane.
func (p *Processor) serve(d delivery, ch *compiledHook, e *parkedEntry, inlineBudget int) outcome {
	ctx, ev, h := d.ctx, d.ev, ch.hook
	policy := retryPolicy(h)
	canPark := h.Ordering == hooks.OrderingNone && p.cfg.RetryTopic != ""
	// A delivery parked on an open circuit never waits on a failing destination: it is
	// not made its probe either.
	parkOnOpen := canPark && !d.holdOnOpenCircuit
	d.sinks.AvoidProbes = parkOnOpen
	for inline := 1; ; inline++ {
		res := ch.sink.Deliver(ctx, ev, d.sinks)
		ch.m.latency.observe(res.Duration)
		if res.Delivered {
			ch.m.delivered.Inc()
			return delivered
		}
		if ctx.Err() != nil {
			return abandoned // the failure is ours (stopping), not the endpoint's
		}
		now := p.cfg.Now()
		if errors.Is(res.Err, sinks.ErrCircuitOpen) {
			// Nothing was sent: the destination is known to be down, or its probe is
			// out. Wait for the breaker without spending an attempt, or park.
			ch.m.breakerWaits.Inc()
			if e == nil {
				e = newEntry(ev.Record, h.ID, now)
			}
			if parkOnOpen && res.ProbeDone == nil { // else a new destination's first answer is near
				return p.park(d, ch, e, now.Add(max(res.RetryAfter, breakerPollInterval)))
			}
			if !waitBreaker(ctx, res) {
				return abandoned
			}
			continue
		}
		if e == nil { // the first failure: only now is the history worth an allocation
			e = newEntry(ev.Record, h.ID, now.Add(-res.Duration))
		}
		e.fail(res.Status, res.Err, "")
		e.LastAttemptMs = now.UnixMilli()
		ch.m.failed.Inc()
		if ok, suppressed := p.logs.allow(ch.logKey); ok { // no allocation while throttled
			p.log.Warn("delivery failed", "hook_id", h.ID, "attempt", e.Attempts, "status", res.Status,
				"err", res.Err, "retryable", res.Retryable, "offset", ev.Record.Offset, "suppressed", suppressed)
		}
		switch {
		case !res.Retryable:
			e.Reason = "permanent"
			return p.deadLetterFor(d, ch, e)
		case e.Attempts >= policy.MaxAttempts:
			e.Reason = "max_attempts"
			return p.deadLetterFor(d, ch, e)
		}
		wait := backoff(policy, e.Attempts, res.RetryAfter)
		if canPark && inline >= inlineBudget {
			return p.park(d, ch, e, now.Add(wait))
		}
		ch.m.retried.Inc()
		if !sleepCtx(ctx, wait) {
			return abandoned
		}
	}
}

// waitBreaker waits until the attempt rejected by a circuit breaker (res) may be tried
// again: the breaker's cooldown, or the end of the probe in flight, polling at least
// every breakerPollInterval. It reports false if ctx ended first.
func waitBreaker(ctx context.Context, res sinks.Result) bool {
	wait := max(res.RetryAfter, breakerPollInterval)
	if res.ProbeDone != nil && res.RetryAfter > 0 { // a parkable delivery's short wait
		wait = res.RetryAfter
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-res.ProbeDone: // nil when no probe is out: never ready
	case <-ctx.Done():
		return false
	}
	return true
}

// breakerPollInterval is the least a lane waits on an open circuit, and how often it
// looks again while a probe is out.
const breakerPollInterval = 50 * time.Millisecond

// park writes e to the retry topic, due at due (see write).
func (p *Processor) park(d delivery, ch *compiledHook, e *parkedEntry, due time.Time) outcome {
	e.DueMs = due.UnixMilli()
	if !p.write(d.ctx, d.live, e.record(p.cfg.RetryTopic), ch.hook.ID) {
		return abandoned
	}
	ch.m.parked.Inc()
	return parked
}

// deadLetterFor writes e, a delivery for ch (nil when its hook is gone), to the DLQ.
func (p *Processor) deadLetterFor(d delivery, ch *compiledHook, e *parkedEntry) outcome {
	if !p.deadLetter(d.ctx, d.live, e) {
		return abandoned
	}
	if ch != nil {
		ch.m.deadLettered.Inc()
	}
	return deadLettered
}

// deadLetter writes e to the DLQ (see write). Without a DLQ topic the entry is only
// counted and logged.
func (p *Processor) deadLetter(ctx context.Context, live *lane, e *parkedEntry) bool {
	deadLetters.Inc()
	if p.cfg.DLQTopic == "" {
		p.logs.warn(p.log, "dlq:"+e.HookID, "dead letter dropped: no DLQ topic", "hook_id", e.HookID, "reason", e.Reason)
		return true
	}
	return p.write(ctx, live, e.record(p.cfg.DLQTopic), e.HookID)
}

// write produces a retry or DLQ record with acks=all. On a consumer's lane it is
// asynchronous: the lane moves on, and its record is done once every such write is
// acknowledged (so a failing endpoint costs the lane no broker round trip, nor the
// producer's linger, per event). Elsewhere it waits for the acknowledgement, and reports
// false if ctx ended first.
func (p *Processor) write(ctx context.Context, live *lane, pr *parkedRecord, hookID string) bool {
	if live == nil {
		ok := p.produceDurably(ctx, &pr.rec)
		pr.release()
		return ok
	}
	ack := live.pendingAck()
	ack.hold()
	p.produceAsync(ctx, pr, hookID, ack, 1)
	return true
}

// produceAsync produces rec and releases ack once it is acknowledged. kgo retries what it
// can, but gives up on errors an operator fixes (a missing topic, a record over the
// topic's size limit, authorization): those are produced again with backoff, as
// produceDurably does, until ctx ends — then the record is not done.
func (p *Processor) produceAsync(ctx context.Context, pr *parkedRecord, hookID string, ack *recordAck, attempt int) {
	p.parker.Produce(ctx, &pr.rec, func(r *kgo.Record, err error) {
		switch {
		case err == nil:
		case ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed):
			ack.fail()
		default:
			produceErrors.Inc()
			p.logs.warn(p.log, "write:"+r.Topic, "cannot write delivery; retrying", "topic", r.Topic, "hook_id", hookID, "err", err)
			time.AfterFunc(backoff(produceRetry, attempt, 0), func() { p.produceAsync(ctx, pr, hookID, ack, attempt+1) })
			return
		}
		pr.release()
		ack.release()
	})
}

// produceRetry is the backoff of produces kgo gave up on.
var produceRetry = hooks.Retry{InitialBackoffMs: 100, MaxBackoffMs: 5000}

// produceDurably produces rec with acks=all, retrying until it is acknowledged or ctx
// ends (then it reports false and the source record stays uncommitted).
func (p *Processor) produceDurably(ctx context.Context, rec *kgo.Record) bool {
	for attempt := 1; ; attempt++ {
		err := p.parker.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		produceErrors.Inc()
		p.logs.warn(p.log, "produce:"+rec.Topic, "cannot write delivery; retrying", "topic", rec.Topic, "err", err)
		if !sleepCtx(ctx, backoff(produceRetry, attempt, 0)) {
			return false
		}
	}
}

func retryPolicy(h *hooks.Hook) hooks.Retry {
	r := hooks.Retry{MaxAttempts: hooks.DefaultMaxAttempts, InitialBackoffMs: hooks.DefaultInitialBackoffMs, MaxBackoffMs: hooks.DefaultMaxBackoffMs}
	if h.Retry != nil {
		if h.Retry.MaxAttempts > 0 {
			r.MaxAttempts = h.Retry.MaxAttempts
		}
		if h.Retry.InitialBackoffMs > 0 {
			r.InitialBackoffMs = h.Retry.InitialBackoffMs
		}
		if h.Retry.MaxBackoffMs > 0 {
			r.MaxBackoffMs = h.Retry.MaxBackoffMs
		}
	}
	return r
}

// backoff is exponential backoff with full jitter: uniform in [0, min(max, initial·2^(n-1))].
// A Retry-After from the endpoint raises it, within the cap.
func backoff(r hooks.Retry, attempt int, retryAfter time.Duration) time.Duration {
	initial := time.Duration(r.InitialBackoffMs) * time.Millisecond
	maxWait := time.Duration(r.MaxBackoffMs) * time.Millisecond
	ceil := maxWait
	if shift := attempt - 1; shift < 32 && initial<<shift < maxWait && initial<<shift > 0 {
		ceil = initial << shift
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	if retryAfter > d {
		d = min(retryAfter, maxWait)
	}
	return d
}

// sleepCtx waits d, reporting false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
