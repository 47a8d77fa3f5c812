package processor

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
)

// Headers on retry and DLQ records, so tools can filter without parsing the value.
const (
	headerHookID = "eh-hook-id"
	headerReason = "eh-reason"
)

// parkedEntry is the value of a retry-topic or DLQ record: the original event record, the
// hook it is for, and the delivery history. The original topic, partition and offset are
// kept so the webhook-id stays the same when the entry is retried or replayed.
type parkedEntry struct {
	HookID         string       `json:"hook_id,omitempty"`
	Reason         string       `json:"reason,omitempty"`
	Attempts       int          `json:"attempts"`
	LastStatus     int          `json:"last_status,omitempty"`
	LastError      string       `json:"last_error,omitempty"`
	FirstAttemptMs int64        `json:"first_attempt_ms"`
	LastAttemptMs  int64        `json:"last_attempt_ms"`
	DueMs          int64        `json:"due_ms,omitempty"`
	Topic          string       `json:"topic"`
	Partition      int32        `json:"partition"`
	Offset         int64        `json:"offset"`
	TimestampMs    int64        `json:"timestamp_ms"`
	Key            []byte       `json:"key"`
	Value          []byte       `json:"value"`
	Headers        []headerJSON `json:"headers,omitempty"`
}

type headerJSON struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

func newEntry(r *kgo.Record, hookID string, now time.Time) *parkedEntry {
	e := &parkedEntry{
		HookID: hookID, FirstAttemptMs: now.UnixMilli(), LastAttemptMs: now.UnixMilli(),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, TimestampMs: r.Timestamp.UnixMilli(),
		Key: r.Key, Value: r.Value,
	}
	for _, h := range r.Headers {
		e.Headers = append(e.Headers, headerJSON{h.Key, h.Value})
	}
	return e
}

// fail records one failed attempt.
func (e *parkedEntry) fail(status int, err error, reason string) *parkedEntry {
	e.Attempts++
	e.LastStatus = status
	if err != nil {
		e.LastError = err.Error()
	}
	if reason != "" {
		e.Reason = reason
	}
	return e
}

// original rebuilds the event record as it was first consumed.
func (e *parkedEntry) original() *kgo.Record {
	r := &kgo.Record{
		Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, Key: e.Key, Value: e.Value,
		Timestamp: time.UnixMilli(e.TimestampMs),
	}
	for _, h := range e.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return r
}

// record encodes the entry as a retry-topic or DLQ record, keyed by the entity key.
func (e *parkedEntry) record(topic string) *kgo.Record {
	val := e.appendJSON(make([]byte, 0, 256+len(e.Value)*4/3+len(e.Key)*4/3))
	return &kgo.Record{
		Topic: topic, Key: e.Key, Value: val,
		Headers: []kgo.RecordHeader{{Key: headerHookID, Value: []byte(e.HookID)}, {Key: headerReason, Value: []byte(e.Reason)}},
	}
}

// handleParked is the retry worker's handler: it waits until the entry is due, then
// delivers it again through the same path as a live event.
func (p *Processor) handleParked(l *lane, r *kgo.Record) bool {
	ctx := l.w.ctx
	var e parkedEntry
	if err := parseParkedEntry(r.Value, &e); err != nil {
		p.logs.warn(p.log, "retry:unreadable", "unreadable retry entry sent to the DLQ", "offset", r.Offset, "err", err)
		return p.deadLetter(ctx, newEntry(r, "", p.cfg.Now()).fail(0, err, "unreadable retry entry"))
	}
	if !sleepCtx(ctx, time.UnixMilli(e.DueMs).Sub(p.cfg.Now())) {
		return false
	}
	// While the destination's circuit stays open, the retry lane waits on it rather than
	// parking the entry again: it is durable here already, and re-parking every entry on
	// each cooldown would cost the broker as much as the live traffic.
	return p.redeliver(delivery{ctx: ctx, ev: &l.ev, sinks: &l.sinks, holdOnOpenCircuit: true}, &l.dec, &e, 1).settled()
}

// redeliver runs a parked entry through its hook again. A hook deleted meanwhile sends
// the entry to the DLQ rather than dropping it.
func (p *Processor) redeliver(d delivery, dec *hooks.Decoder, e *parkedEntry, inlineBudget int) outcome {
	ctx := d.ctx
	ch := p.hs.Load().byID[e.HookID]
	if ch == nil {
		e.Reason = "hook_deleted"
		return p.deadLetterFor(ctx, nil, e)
	}
	orig := e.original()
	if err := dec.Decode(orig, d.ev); err != nil {
		e.Reason = "malformed: " + err.Error()
		return p.deadLetterFor(ctx, ch, e)
	}
	retriesDue.Inc()
	return p.serve(d, ch, e, inlineBudget)
}
