package processor

import (
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
)

// Headers on retry and DLQ records. They follow the original record's headers, in this
// order, so tools can filter without parsing anything and the original is intact.
const (
	headerHookID   = "eh-hook-id"
	headerReason   = "eh-reason"
	headerDelivery = "eh-delivery" // the delivery's history, JSON (see appendJSON)
)

// parkedEntry is a retry-topic or DLQ record: the original event record (key, value and
// headers as they were), the hook it is for, and the delivery history. The original
// topic, partition and offset are kept so the webhook-id stays the same when the entry
// is retried or replayed.
type parkedEntry struct {
	HookID         string
	Reason         string
	Attempts       int
	LastStatus     int
	LastError      string
	FirstAttemptMs int64
	LastAttemptMs  int64
	DueMs          int64
	Topic          string
	Partition      int32
	Offset         int64
	TimestampMs    int64
	Key            []byte
	Value          []byte
	Headers        []kgo.RecordHeader // never appended to in place: shared with the record
}

func newEntry(r *kgo.Record, hookID string, now time.Time) *parkedEntry {
	return &parkedEntry{
		HookID: hookID, FirstAttemptMs: now.UnixMilli(), LastAttemptMs: now.UnixMilli(),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, TimestampMs: r.Timestamp.UnixMilli(),
		Key: r.Key, Value: r.Value, Headers: r.Headers,
	}
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
	return &kgo.Record{
		Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, Key: e.Key, Value: e.Value,
		Headers: e.Headers, Timestamp: time.UnixMilli(e.TimestampMs),
	}
}

// record encodes the entry as a retry-topic or DLQ record, keyed by the entity key: the
// original key, value and headers, then ours. Nothing of the event is copied or
// re-encoded, so parking costs the same whatever the event's size.
func (e *parkedEntry) record(topic string) *parkedRecord {
	pr := parkedRecords.Get().(*parkedRecord)
	hs := pr.headers[:0]
	if n := len(e.Headers) + 3; n > len(pr.headers) {
		hs = make([]kgo.RecordHeader, 0, n)
	}
	b := append(pr.values[:0], e.HookID...)
	id := len(b)
	b = append(b, e.Reason...)
	reason := len(b)
	b = e.appendJSON(b)
	hs = append(hs, e.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: headerHookID, Value: b[:id:id]},
		kgo.RecordHeader{Key: headerReason, Value: b[id:reason:reason]},
		kgo.RecordHeader{Key: headerDelivery, Value: b[reason:]})
	pr.rec = kgo.Record{Topic: topic, Key: e.Key, Value: e.Value, Headers: hs}
	return pr
}

// parkedRecord holds a parked record with room for its headers' values, so that parking
// (every event of a hook whose endpoint is down) allocates nothing in the steady state:
// records come from a pool and go back once produced.
type parkedRecord struct {
	rec     kgo.Record
	headers [5]kgo.RecordHeader // ours and up to two of the original's
	values  [288]byte           // hook id, reason and delivery history
}

var parkedRecords = sync.Pool{New: func() any { return new(parkedRecord) }}

// release returns pr to the pool: its record was acknowledged or given up on, and the
// producer is done with it (kgo touches a record no more once its promise ran).
func (pr *parkedRecord) release() {
	*pr = parkedRecord{}
	parkedRecords.Put(pr)
}

// handleParked is the retry worker's handler: it waits until the entry is due, then
// delivers it again through the same path as a live event.
func (p *Processor) handleParked(l *lane, r *kgo.Record) bool {
	ctx := l.w.ctx
	var e parkedEntry
	if err := parseParkedEntry(r, &e); err != nil {
		p.logs.warn(p.log, "retry:unreadable", "unreadable retry entry sent to the DLQ", "offset", r.Offset, "err", err)
		return p.deadLetter(ctx, l, newEntry(r, "", p.cfg.Now()).fail(0, err, "unreadable retry entry"))
	}
	if !sleepCtx(ctx, time.UnixMilli(e.DueMs).Sub(p.cfg.Now())) {
		return false
	}
	// While the destination's circuit stays open, the retry lane waits on it rather than
	// parking the entry again: it is durable here already, and re-parking every entry on
	// each cooldown would cost the broker as much as the live traffic.
	return p.redeliver(delivery{ctx: ctx, ev: &l.ev, sinks: &l.sinks, live: l, holdOnOpenCircuit: true}, &l.dec, &e, 1).settled()
}

// redeliver runs a parked entry through its hook again. A hook deleted meanwhile sends
// the entry to the DLQ rather than dropping it.
func (p *Processor) redeliver(d delivery, dec *hooks.Decoder, e *parkedEntry, inlineBudget int) outcome {
	ch := p.hs.Load().byID[e.HookID]
	if ch == nil {
		e.Reason = "hook_deleted"
		return p.deadLetterFor(d, nil, e)
	}
	orig := e.original()
	if err := dec.Decode(orig, d.ev); err != nil {
		e.Reason = "malformed: " + err.Error()
		return p.deadLetterFor(d, ch, e)
	}
	retriesDue.Inc()
	return p.serve(d, ch, e, inlineBudget)
}
