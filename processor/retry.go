package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/scripting"
	"github.com/eventhooks/eventhooks/sinks"
)

// Attempts, inline retries, parking and dead letters: what happens to one delivery.
//
// With a retry topic, a delivery never waits long in its lane: a retryable failure gets
// a short inline budget (InlineAttempts attempts, waiting at most inlineWait between
// them), then it is parked in the retry topic, due after the hook's backoff. An ordering
// "key" delivery parked so blocks its (hook, key) (blocked.go): later events of it are
// parked behind it without an attempt, and the retry scheduler (scheduler.go) delivers
// them in order. Without a retry topic a delivery is retried in place, holding its lane.

// delivery is where one delivery runs: the goroutine's context, the event and the sinks'
// lane state; acks, when set, finishes the record asynchronously (see write); blocks is
// the partition's blocked (hook, key)s, nil where deliveries do not block (replays).
type delivery struct {
	ctx    context.Context
	ev     *hooks.Event
	sinks  *sinks.Lane
	acks   acker
	blocks *blockSet
	// behind, on a live lane, collects the hooks of the record parked behind blocked
	// keys, written as one retry record once every hook was served (see behindList).
	behind *behindList
	// attempts gathers the goroutine's attempt log lines (nil: each written at once).
	attempts *attemptBatch
	// w is the events partition worker of a live lane (deferrals open there), and cur
	// the cursor of a deferred hook's item; nil elsewhere.
	w   *partitionWorker
	cur *cursor
	// held, for a live record on a lane, takes deliveries waiting for a first answer
	// (held.go); nil elsewhere (cursor items, the scheduler, replays): they wait where
	// they are.
	held *heldList
}

// acker hands out the completion of the record being handled, created on its first
// asynchronous write.
type acker interface{ pendingAck() *recordAck }

// outcome is how a delivery was settled, or that it was not.
type outcome uint8

const (
	// abandoned: stopped before it was settled (shutdown or revoke); not done.
	abandoned outcome = iota
	delivered
	parked
	deadLettered
	// held: set aside in its lane until a first answer (held.go); settled later.
	held
)

// settled reports whether the record may count as done for this hook.
func (o outcome) settled() bool { return o != abandoned }

// attemptStep is what one attempt leaves to do.
type attemptStep uint8

const (
	stepDelivered attemptStep = iota
	stepAbandoned
	stepDeadLetter // e.Reason says why
	stepRetry      // after the wait
	stepCircuit    // nothing sent: a breaker or the rate limit turned it away; after the wait, or when probeDone closes
)

// Dead-letter reasons (the eh-reason header).
const (
	reasonPermanent     = "permanent"
	reasonMaxAttempts   = "max_attempts"
	reasonScriptError   = "script_error"
	reasonScriptTimeout = "script_timeout"
	reasonInternal      = "internal_error"
	reasonHookDeleted   = "hook_deleted"
)

// maxScriptAttempts is how many attempts a delivery whose script throws or runs out of
// time gets: a second one covers a machine that was briefly too busy; a broken script
// is the hook's own fault, not worth minutes of retries.
const maxScriptAttempts = 2

// inlineWait caps each wait between inline attempts, so a lane gives a failing delivery
// well under a second before parking it.
const inlineWait = 100 * time.Millisecond

// next is what one attempt leaves to do: the step, the wait before the next attempt (the
// endpoint's Retry-After, when it gave one, is retryAfter, and wait is at least that),
// and, for an attempt a breaker turned away while a probe is out, the probe's end.
type next struct {
	st         attemptStep
	wait       time.Duration
	retryAfter time.Duration
	probeDone  <-chan struct{}
}

// attempt makes one attempt to deliver d.ev to ch and says what follows. *e is the
// delivery's history, created on its first failure.
func (p *Processor) attempt(d delivery, ch *compiledHook, e **parkedEntry) next {
	h := ch.hook
	policy := ch.policy
	if p.attempts != nil && d.sinks != nil {
		d.sinks.KeepExcerpts = true
		d.sinks.ResetExcerpts()
	}
	res := p.deliverSafely(d, ch)
	ch.m.latency.observe(res.Duration)
	if res.Delivered {
		ch.m.delivered.Inc()
		ch.noteDelivered()
		if p.attempts != nil && !res.Dropped {
			n := 1
			if *e != nil {
				n += (*e).Attempts
			}
			p.attempts.logAttempt(d, ch, &res, p.cfg.Now().Add(-res.Duration), n, outcomeDelivered, "")
		}
		return next{st: stepDelivered}
	}
	if d.ctx.Err() != nil {
		return next{st: stepAbandoned} // the failure is ours (stopping), not the endpoint's
	}
	now := p.cfg.Now()
	if *e == nil { // the first failure: only now is the history worth an allocation
		*e = newEntry(d.ev.Record, h.ID, now.Add(-res.Duration))
	}
	if !errors.Is(res.Err, sinks.ErrRateLimited) { // held back by its own limit is no failure
		p.noteFailed(ch, now, res.Err, !errors.Is(res.Err, sinks.ErrCircuitOpen))
	}
	if turnedAway(res.Err, ch) { // nothing was sent: no attempt spent
		return next{st: stepCircuit, wait: min(res.RetryAfter, maxBackoff(policy)), probeDone: res.ProbeDone}
	}
	ent := *e
	ent.fail(res.Status, res.Err, "")
	ent.LastAttemptMs = now.UnixMilli()
	ch.m.failed.Inc()
	if ok, suppressed := p.logs.Allow(ch.logKey); ok { // no allocation while throttled
		p.log.Warn("delivery failed", "hook_id", h.ID, "attempt", ent.Attempts, "status", res.Status,
			"err", res.Err, "retryable", res.Retryable, "offset", d.ev.Record.Offset, "suppressed", suppressed)
	}
	switch {
	case errors.Is(res.Err, errInternal):
		ent.Reason = reasonInternal
	case errors.Is(res.Err, scripting.ErrTimeout) && ent.Attempts >= maxScriptAttempts:
		ent.Reason = reasonScriptTimeout
	case errors.Is(res.Err, scripting.ErrThrown) && ent.Attempts >= maxScriptAttempts:
		ent.Reason = reasonScriptError
	case !res.Retryable:
		ent.Reason = reasonPermanent
	case ent.Attempts >= policy.MaxAttempts:
		ent.Reason = reasonMaxAttempts
	default:
		ra := min(res.RetryAfter, maxBackoff(policy))
		p.attempts.logAttempt(d, ch, &res, now.Add(-res.Duration), ent.Attempts, outcomeFailed, "")
		return next{st: stepRetry, wait: backoff(policy, ent.Attempts, ra), retryAfter: ra}
	}
	p.attempts.logAttempt(d, ch, &res, now.Add(-res.Duration), ent.Attempts, outcomeDeadLettered, ent.Reason)
	return next{st: stepDeadLetter}
}

// turnedAway reports whether err is an attempt a breaker or the hook's rate limit turned
// away before anything was sent, and counts it.
func turnedAway(err error, ch *compiledHook) bool {
	switch {
	case errors.Is(err, sinks.ErrCircuitOpen):
		ch.m.breakerWaits.Inc()
	case errors.Is(err, sinks.ErrRateLimited):
		ch.m.rateWaits.Inc()
	default:
		return false
	}
	return true
}

// errInternal marks an attempt that panicked: a bug, or an input nobody foresaw.
var errInternal = errors.New("internal error")

// deliverSafely is the sink's Deliver with a panic turned into a failed, permanent attempt
// (logged at error level, counted): it costs this hook's delivery a dead letter, not the
// other hooks of the record, the partition, or the process.
func (p *Processor) deliverSafely(d delivery, ch *compiledHook) (res sinks.Result) {
	defer func() {
		if v := recover(); v != nil {
			internalErrors.Inc()
			res = sinks.Result{Err: fmt.Errorf("deliver hook %s: %w: %v", ch.hook.ID, errInternal, v)}
			p.log.Error("panic in a delivery; dead-lettered", "hook_id", ch.hook.ID, "offset", d.ev.Record.Offset, "err", res.Err)
		}
	}()
	return ch.sink.Deliver(d.ctx, d.ev, d.sinks)
}

// serve delivers a live event to one hook: blocked (hook, key)s park behind their
// blocking entry; otherwise attempts with a short inline budget, then parks (with a
// retry topic) or retries in place (without). A permanent failure or the last attempt
// goes to the DLQ. It reports how the delivery was settled.
func (p *Processor) serve(d delivery, ch *compiledHook) outcome {
	h := ch.hook
	canPark := p.cfg.RetryTopic != ""
	keyed := h.Ordering != hooks.OrderingNone
	if ch.gate.Active() {
		d.held = nil // a held delivery has fired its gates: one abandoned later would be lost
	}
	if d.held != nil && d.held.last(h.ID) != nil { // behind its held deliveries, first
		return d.holdBehind(ch)
	}
	if canPark && keyed && d.blocks.blocked(h.ID, d.ev.Key) {
		ch.m.parkedBehind.Inc()
		if d.behind != nil {
			return p.parkUnsent(d, ch)
		}
		return p.park(d, ch, newEntry(d.ev.Record, h.ID, p.cfg.Now()), p.cfg.Now())
	}
	// A delivery that can park is never the probe of a failing destination or hook (the
	// retry scheduler probes): it would hold the lane for the attempt.
	d.sinks.AvoidProbes = canPark
	if canPark && d.held != nil && ch.awaitsFirstAnswer() {
		return p.probeAside(d, ch)
	}
	var e *parkedEntry
	for inline := 1; ; inline++ {
		n := p.attempt(d, ch, &e)
		switch wait := n.wait; n.st {
		case stepDelivered:
			return delivered
		case stepAbandoned:
			return abandoned
		case stepDeadLetter:
			return p.deadLetterFor(d, ch, e)
		case stepCircuit:
			// A live delivery waits briefly for a new destination's first answer (the
			// probe in flight); a deferred hook's item does not: its hook was failing.
			if canPark && (n.probeDone == nil || d.cur != nil) {
				if d.behind != nil && e.Attempts == 0 {
					d.deferHook(h.ID)
					return p.parkUnsent(d, ch)
				}
				return p.park(d, ch, e, p.cfg.Now().Add(max(wait, breakerPollInterval)))
			}
			if canPark && d.held != nil && e.Attempts == 0 { // the lane goes on meanwhile
				return d.hold(ch, n.probeDone, time.Now().Add(wait))
			}
			if !waitBreaker(d.ctx, wait, n.probeDone) {
				return abandoned
			}
		case stepRetry:
			if p.hs.Load().byID[h.ID] == nil { // deleted or disabled meanwhile: ends here
				e.Reason = reasonHookDeleted
				return p.deadLetterFor(d, ch, e)
			}
			if canPark {
				// The inline budget is spent, or the endpoint asked for more time
				// than a lane gives: park, due after the full wait.
				if inline >= p.cfg.InlineAttempts || n.retryAfter > inlineWait {
					return p.park(d, ch, e, p.cfg.Now().Add(wait))
				}
				wait = min(wait, inlineWait)
			}
			ch.m.retried.Inc()
			if !sleepCtx(d.ctx, wait) {
				return abandoned
			}
		}
	}
}

// redeliver runs a dead letter through its hook again, as a fresh delivery (replay
// --dlq). A hook deleted meanwhile sends the entry back to the DLQ rather than dropping
// it.
func (p *Processor) redeliver(d delivery, dec *hooks.Decoder, e *parkedEntry) outcome {
	ch := p.hs.Load().byID[e.HookID]
	if ch == nil {
		e.Reason = reasonHookDeleted
		return p.deadLetterFor(d, nil, e)
	}
	if err := dec.Decode(e.original(), d.ev); err != nil {
		e.Reason = "malformed: " + err.Error()
		return p.deadLetterFor(d, ch, e)
	}
	return p.serve(d, ch)
}

// parkUnsent parks a live delivery nothing was sent for (its (hook, key) is blocked, or
// an open breaker turned its first attempt away) in the retry record its event shares
// with the record's other such hooks (see behindList), due at once: the scheduler keeps
// it in order behind its key's earlier entries and waits on the breaker itself.
func (p *Processor) parkUnsent(d delivery, ch *compiledHook) outcome {
	mark := blockNone
	if ch.hook.Ordering != hooks.OrderingNone {
		mark = d.blocks.add(ch.hook.ID, d.ev.Key)
	}
	d.behind.add(ch.hook.ID, mark)
	ch.m.parked.Inc()
	return parked
}

// behindList collects, for one live record, the hooks parked without an attempt (behind
// a blocked key, or turned away by an open breaker) and their blocking marks: with
// several failing hooks each event of theirs would otherwise cost one retry record per
// hook. Owned by the lane.
type behindList struct {
	ids   []byte // hook ids joined by hookSep
	marks []byte // one digit per hook
}

func (b *behindList) add(hookID string, m blockMark) {
	if len(b.marks) > 0 {
		b.ids = append(b.ids, hookSep...)
	}
	b.ids = append(b.ids, hookID...)
	b.marks = append(b.marks, byte('0'+m))
}

// flushBehind is settleBehind for the lane's current record.
func (l *lane) flushBehind(written bool) bool { return l.w.c.p.settleBehind(l.delivery(), written) }

// settleBehind writes the one retry record of the hooks d's record was parked behind
// blocked keys for (written false: the record is abandoned, and their counts are
// released instead), empties the list, and reports whether the record is done. Most
// records have none: then it is one length check.
func (p *Processor) settleBehind(d delivery, written bool) bool {
	if d.behind == nil || len(d.behind.marks) == 0 {
		return written
	}
	return p.writeBehind(d, d.behind, written) && written
}

// writeBehind is settleBehind's write, for a non-empty list.
func (p *Processor) writeBehind(d delivery, b *behindList, written bool) bool {
	e := newEntry(d.ev.Record, string(b.ids), p.cfg.Now())
	e.DueMs, e.Marks = e.FirstAttemptMs, string(b.marks)
	b.ids, b.marks = b.ids[:0], b.marks[:0]
	blocks, key := d.blocks, e.Key
	release := func() { e.each(func(one *parkedEntry) { blocks.release(one.HookID, key, one.Blocking) }) }
	if !written {
		release()
		return false
	}
	return p.write(d, e.record(p.cfg.RetryTopic), "behind", release)
}

// waitBreaker waits until an attempt turned away by a breaker may be tried again: wait
// (at least breakerPollInterval, unless a probe is out and wait is set: a parkable
// delivery's short wait for a new destination's first answer), or the end of the probe
// in flight. It reports false if ctx ended first.
func waitBreaker(ctx context.Context, wait time.Duration, probeDone <-chan struct{}) bool {
	if probeDone == nil || wait <= 0 {
		wait = max(wait, breakerPollInterval)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-probeDone: // nil when no probe is out: never ready
	case <-ctx.Done():
		return false
	}
	return true
}

// breakerPollInterval is the least a delivery waits on an open circuit, and how often it
// looks again while a probe is out.
const breakerPollInterval = 50 * time.Millisecond

// park writes e to the retry topic, at its event's partition, due at due (see write). An
// ordering "key" delivery with a blocked-keys set blocks its (hook, key) until the entry
// is settled.
func (p *Processor) park(d delivery, ch *compiledHook, e *parkedEntry, due time.Time) outcome {
	e.DueMs = due.UnixMilli()
	e.Blocking = blockNone
	if d.blocks != nil && ch.hook.Ordering != hooks.OrderingNone {
		e.Blocking = d.blocks.add(ch.hook.ID, e.Key)
	}
	var unwritten func()
	if e.Blocking != blockNone {
		blocks, hook, key, mark := d.blocks, ch.hook.ID, e.Key, e.Blocking
		unwritten = func() { blocks.release(hook, key, mark) }
	}
	if !p.write(d, e.record(p.cfg.RetryTopic), ch.hook.ID, unwritten) {
		return abandoned
	}
	ch.m.parked.Inc()
	return parked
}

// deadLetterFor writes e, a delivery for ch (nil when its hook is gone), to the DLQ.
func (p *Processor) deadLetterFor(d delivery, ch *compiledHook, e *parkedEntry) outcome {
	if !p.deadLetter(d, e) {
		return abandoned
	}
	if ch != nil {
		ch.m.deadLettered.Inc()
	}
	return deadLettered
}

// deadLetter writes e to the DLQ (see write). Without a DLQ topic the entry is only
// counted and logged.
func (p *Processor) deadLetter(d delivery, e *parkedEntry) bool {
	deadLetters.Inc()
	if p.cfg.DLQTopic == "" {
		p.logs.Warn(p.log, "dlq:"+e.HookID, "dead letter dropped: no DLQ topic", "hook_id", e.HookID, "reason", e.Reason)
		return true
	}
	e.Blocking = blockNone
	return p.write(d, e.record(p.cfg.DLQTopic), e.HookID, nil)
}

// write produces a retry or DLQ record with acks=all. With d.acks it is asynchronous: the
// caller moves on, and its record is done once every such write is acknowledged (so a
// failing endpoint costs a lane no broker round trip, nor the producer's linger, per
// event). Elsewhere it waits for the acknowledgement, and reports false if d.ctx ended
// first. unwritten, when set, is called if the record did not land where it was meant to
// (given up, or too large and dead-lettered cut instead).
func (p *Processor) write(d delivery, pr *parkedRecord, hookID string, unwritten func()) bool {
	topic := pr.rec.Topic
	if d.acks == nil {
		rec, ok := p.produceDurably(d.ctx, &pr.rec)
		if (!ok || rec.Topic != topic) && unwritten != nil {
			unwritten()
		}
		pr.release()
		return ok
	}
	ack := d.acks.pendingAck()
	ack.hold()
	p.produceAsync(d.ctx, p.parker, &pr.rec, hookID, func(r *kgo.Record, err error) {
		if (err != nil || r.Topic != topic) && unwritten != nil {
			unwritten()
		}
		pr.release()
		ack.finish(err == nil)
	}, 1)
	return true
}

// produceAsync produces rec and calls done with the record finally written (rec, or its
// cut dead letter) once it is acknowledged, or with an error once it is given up (owner
// ended: the partition was let go, or the processor is closing). The produce runs under
// the processor's producer context, so a shutdown lets writes already handed over finish
// (commitFinal flushes them). kgo retries what it can; what it gives up on is produced
// again with backoff while owner lasts, except a record too large for its topic: that
// is final, and it goes to the DLQ with its value cut (see truncated).
func (p *Processor) produceAsync(owner context.Context, cl *kgo.Client, rec *kgo.Record, what string, done func(*kgo.Record, error), attempt int) {
	cl.Produce(p.produceCtx, rec, func(r *kgo.Record, err error) {
		switch {
		case err == nil:
			done(r, nil)
		case owner.Err() != nil || errors.Is(err, kgo.ErrClientClosed) || p.produceCtx.Err() != nil:
			done(r, err)
		case tooLarge(err) && cl == p.parker:
			if cut := p.truncated(r, err); cut != nil {
				p.produceAsync(owner, cl, cut, what, done, 1)
			} else {
				done(r, nil) // no DLQ: logged and counted, nothing to wait for
			}
		default:
			produceErrors.Inc()
			p.logs.Warn(p.log, "write:"+r.Topic, "cannot write; retrying", "topic", r.Topic, "hook_id", what, "err", err)
			time.AfterFunc(backoff(produceRetry, attempt, 0), func() { p.produceAsync(owner, cl, rec, what, done, attempt+1) })
		}
	})
}

// tooLarge reports whether a produce failed for good because of the record's size.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// truncatedValueBytes is how much of a record's value a cut dead letter keeps.
const truncatedValueBytes = 1024

// headerTruncated on a dead letter gives the size of the value it was cut from.
const headerTruncated = "eh-truncated"

// truncated returns the dead letter of a record its topic refused as too large: its
// headers, the first truncatedValueBytes of its value, and the original size in
// eh-truncated (eh-reason "too_large" when it had no reason yet). A record that was cut
// already loses its value. It returns nil without a DLQ topic.
func (p *Processor) truncated(r *kgo.Record, err error) *kgo.Record {
	tooLargeRecords.Inc()
	p.logs.Warn(p.log, "too-large:"+r.Topic, "record too large for its topic; dead-lettered with its value cut",
		"topic", r.Topic, "bytes", len(r.Value), "err", err)
	if p.cfg.DLQTopic == "" {
		return nil
	}
	v := r.Value[:min(len(r.Value), truncatedValueBytes)]
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+2)
	reason := false
	for _, h := range r.Headers {
		switch h.Key {
		case headerTruncated:
			v = nil
			continue
		case headerReason:
			reason = true
		}
		hs = append(hs, h)
	}
	if !reason {
		hs = append(hs, kgo.RecordHeader{Key: headerReason, Value: []byte("too_large")})
	}
	hs = append(hs, kgo.RecordHeader{Key: headerTruncated, Value: strconv.AppendInt(nil, int64(len(r.Value)), 10)})
	return &kgo.Record{Topic: p.cfg.DLQTopic, Key: r.Key, Value: v, Headers: hs}
}

// produceRetry is the backoff of produces kgo gave up on.
var produceRetry = hooks.Retry{InitialBackoffMs: 100, MaxBackoffMs: 5000}

// produceDurably produces rec with acks=all, retrying until it is acknowledged or ctx
// ends (then it reports false and the source record stays uncommitted). It returns the
// record written: rec, or its cut dead letter when rec was too large.
func (p *Processor) produceDurably(ctx context.Context, rec *kgo.Record) (*kgo.Record, bool) {
	for attempt := 1; ; attempt++ {
		err := p.parker.ProduceSync(ctx, rec).FirstErr()
		if err == nil {
			return rec, true
		}
		if ctx.Err() != nil {
			return rec, false
		}
		if tooLarge(err) {
			if rec = p.truncated(rec, err); rec == nil {
				return &kgo.Record{}, true
			}
			continue
		}
		produceErrors.Inc()
		p.logs.Warn(p.log, "produce:"+rec.Topic, "cannot write delivery; retrying", "topic", rec.Topic, "err", err)
		if !sleepCtx(ctx, backoff(produceRetry, attempt, 0)) {
			return rec, false
		}
	}
}

// maxBackoff is the policy's cap on a wait.
func maxBackoff(r hooks.Retry) time.Duration {
	return time.Duration(min(max(r.MaxBackoffMs, 0), hooks.MaxBackoffMs)) * time.Millisecond
}

// backoff is exponential backoff with full jitter: uniform in [0, min(max, initial·2^(n-1))].
// A Retry-After from the endpoint raises it, within the cap.
func backoff(r hooks.Retry, attempt int, retryAfter time.Duration) time.Duration {
	initial := time.Duration(min(max(r.InitialBackoffMs, 0), hooks.MaxBackoffMs)) * time.Millisecond
	maxWait := maxBackoff(r)
	ceil := initial // doubled per attempt, never past maxWait (a day): no overflow
	for n := 1; n < attempt && ceil < maxWait; n++ {
		ceil *= 2
	}
	ceil = min(ceil, maxWait)
	d := time.Duration(0)
	if ceil > 0 {
		d = time.Duration(rand.Int64N(int64(ceil) + 1))
	}
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
