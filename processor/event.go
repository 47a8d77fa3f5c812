package processor

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/processor/gates"
)

// The per-event path, top-down: route (headers) or decode (value), match the hook index,
// run each matched hook's gates around its delivery (retry.go), and settle: the record
// is done once every matched hook delivered, gated or durably parked it.

// handleEvent runs one record of the events topic through every hook it matches. It
// reports whether the record is done; false means it was abandoned (shutdown or revoke)
// and stays uncommitted for whoever owns the partition next.
func (p *Processor) handleEvent(l *lane, r *kgo.Record) bool {
	if l.cur != nil {
		return p.handleDeferred(l, r)
	}
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
		p.logs.Warn(p.log, "malformed:"+kind, "malformed record sent to the DLQ",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", err)
		return p.deadLetter(l.delivery(), newEntry(r, "", p.cfg.Now()).fail(0, err, "malformed: "+err.Error()))
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
			l.flushBehind(false)
			return false
		}
	}
	return l.flushBehind(true)
}

// delivery is the lane's delivery context for its current record. A cursor's item is
// never held: its hook was failing, and it stalls its cursor instead.
func (l *lane) delivery() delivery {
	d := delivery{ctx: l.w.ctx, ev: &l.ev, sinks: &l.sinks, acks: l, blocks: l.w.blocks, behind: &l.behind,
		attempts: &l.attempts, w: l.w, cur: l.cur}
	if l.cur == nil {
		d.held = &l.held
	}
	return d
}

// handleSafely is handle with a panic turned into a dead letter of the record (reason
// internal_error, logged at error level, counted): one bad record or hook must not kill
// the process, nor, as its record would never be committed, every next owner in turn.
func (l *lane) handleSafely(r *kgo.Record) (done bool) {
	defer func() {
		if v := recover(); v != nil {
			p := l.w.c.p
			l.flushBehind(false)
			e := p.internalEntry(v, "panic while handling a record; dead-lettered", r, "")
			done = p.deadLetter(delivery{ctx: l.w.ctx, acks: l}, e)
		}
	}()
	return l.w.c.handle(l, r)
}

// internalEntry counts and logs (at error level, as msg) the panic v recovered while
// handling r (for hookID, "" for every hook), and returns its dead letter: one bad
// record or hook must not kill the process, nor every next owner in turn.
func (p *Processor) internalEntry(v any, msg string, r *kgo.Record, hookID string) *parkedEntry {
	internalErrors.Inc()
	err := fmt.Errorf("internal error: %v", v)
	p.log.Error(msg, "hook_id", hookID, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
	return newEntry(r, hookID, p.cfg.Now()).fail(0, err, reasonInternal)
}

// serveGated runs the hook's gates around serve: a gated event is dropped (counted), a
// delivered or parked one records its firing in the lane's state and the changelog. A
// parked delivery has fired as Kong's handler fires: it is sent, later, in its key's
// order; so the retry scheduler, which delivers it, has no gate state to change.
func (p *Processor) serveGated(l *lane, ch *compiledHook) outcome {
	if l.cur == nil && l.w.blocks.deferred(l.ev.Record.Topic, ch.hook.ID, l.ev.Record.Offset) {
		deferredDeliveries.Inc() // before the gates: they meet its cursor's item
		ch.m.parked.Inc()
		return parked
	}
	spec := &ch.gate
	d := l.delivery()
	if !spec.Active() || l.gates == nil {
		return p.serve(d, ch)
	}
	now := p.cfg.Now()
	var fp uint64
	if spec.NeedsFingerprint() {
		fp = spec.Fingerprint(l.ev.Data())
	}
	key := l.ev.Key
	if spec.HookScoped() {
		key = nil
		if ok, reason := p.shared.Check(spec, ch.hook.ID, key, fp, now); !ok {
			ch.m.gatedCounter(reason).Inc()
			return delivered // dropped by the gate: done
		}
		out := p.serve(d, ch)
		if fired(out) {
			p.writeState(l.w.ctx, l.holdRecord(), l.ev.Record.Partition, p.shared.Fired(spec, ch.hook.ID, key, fp, now))
		} else {
			p.shared.Release(spec, ch.hook.ID, key, fp)
		}
		return out
	}
	if ok, reason := l.gates.Check(spec, ch.hook.ID, key, fp, now); !ok {
		ch.m.gatedCounter(reason).Inc()
		return delivered
	}
	out := p.serve(d, ch)
	if fired(out) {
		before := l.gates.Len()
		p.writeState(l.w.ctx, l.holdRecord(), l.ev.Record.Partition, l.gates.Fired(spec, ch.hook.ID, key, fp, now))
		gates.AddEntries(l.gates.Len() - before)
	}
	return out
}

// fired reports whether a delivery that passed its gates opens their window.
func fired(out outcome) bool { return out == delivered || out == parked }

// writeState produces a gate state change to the state topic at partition. With ack (a
// hold on the lane's current record) the record is not done, so not committed, before
// the state it led to is durable: a restore never finds state older than the offsets
// committed. A write kgo gives up on is produced again until it lands or owner ends (the
// partition is let go). Sweeps (expiry, deleted hooks) pass no ack: a lost tombstone
// leaves an entry the next restore drops by its time, or that no hook matches.
func (p *Processor) writeState(owner context.Context, ack *recordAck, partition int32, c gates.Change) {
	if c.Key == nil || p.stateProd == nil {
		if ack != nil {
			ack.release()
		}
		return
	}
	stateWrites.Inc()
	rec := &kgo.Record{Topic: p.cfg.StateTopic, Partition: partition, Key: c.Key, Value: c.Value}
	p.produceAsync(owner, p.stateProd, rec, "gate-state", func(_ *kgo.Record, err error) {
		if err != nil {
			stateWriteErrors.Inc()
			p.logs.Warn(p.log, "state-write", "cannot write gate state", "partition", partition, "err", err)
		}
		if ack != nil {
			ack.finish(err == nil)
		}
	}, 1)
}

// holdRecord adds a hold on the lane's current record (see recordAck).
func (l *lane) holdRecord() *recordAck {
	a := l.pendingAck()
	a.hold()
	return a
}
