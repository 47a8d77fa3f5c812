package processor

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/jsonx"
	"github.com/eventhooks/eventhooks/sinks"
)

// The attempt log: a line per delivery attempt that was sent (not one a breaker or rate
// limit turned away) in Config.AttemptsTopic, for the deliveries API. A lane gathers its
// lines into one record (NDJSON), written at attemptBatchBytes or once its first line is
// attemptBatchAge old (also when the lane waits for records: lane.next): a record per
// attempt cost a fifth of the events/s, mostly in the producer and the broker. Writing it
// never blocks a lane and never holds back a commit: a record the producer has no room
// for is dropped and its lines counted. A line is JSON:
//
//	{"hook_id", "event_id", "webhook_id", "source", "event", "attempt", "at_ms",
//	 "duration_ms", "outcome" (delivered | failed | dead_lettered), "reason" (of a dead
//	 letter), "status", "error", "response", "request" (with the hook's log_request_body),
//	 "topic", "partition", "offset"}
//
// with zero-valued fields left out; "failed" is a retryable failure that is retried. The
// bytes of a line cost the producer and the broker more than writing it, so a line also
// leaves out what the reader (package deliveries) works out: hook_id, source, event,
// topic and partition when they are the previous line's of the record (a record's lines
// are one lane's: one partition, mostly one hook and source); attempt when it is 1,
// outcome when delivered; and webhook_id when it is sinks.MessageID of the hook and the
// event id and source, or the record, that the line holds. A first attempt delivered is
// then about a third of a full line. Lines written before this left nothing out, which
// the reader reads the same way.

// Attempt outcomes in the attempt log.
const (
	outcomeDelivered    = "delivered"
	outcomeFailed       = "failed"
	outcomeDeadLettered = "dead_lettered"
)

var attemptsDropped = metrics.NewCounter(describe(`eventhooks_attempt_log_dropped_total`,
	"Attempt log records dropped because the producer could not keep up (or failed to write them)."))

// attemptLogBuffered bounds the attempt log records waiting in the producer.
const attemptLogBuffered = 4096

// A lane's batch of attempt lines is written once it holds attemptBatchBytes or its
// first line is attemptBatchAge old, if the lane did not run out of records before. The
// log costs the producer and the broker per record: at 100 ms a drain lost a median 9 %
// of its events/s to it, at 500 ms 4 % (1 s was no better); the console polls every 2 s.
const (
	attemptBatchBytes = 32 << 10
	attemptBatchAge   = 500 * time.Millisecond
)

// attemptLog writes the attempt log; a nil *attemptLog writes nothing.
type attemptLog struct {
	cl    *kgo.Client
	topic string
	ctx   context.Context
}

// newAttemptLog returns the attempt log of cfg, nil when cfg has no attempts topic.
func newAttemptLog(ctx context.Context, cfg *Config) (*attemptLog, error) {
	if cfg.AttemptsTopic == "" {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, cfg.ClientOpts...),
		kgo.DefaultProduceTopic(cfg.AttemptsTopic),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.MaxBufferedRecords(attemptLogBuffered),
		kgo.ProducerLinger(10*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create attempt log producer: %w", err)
	}
	return &attemptLog{cl: cl, topic: cfg.AttemptsTopic, ctx: ctx}, nil
}

// close flushes what is buffered, for a second at most, and closes the producer.
func (a *attemptLog) close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.cl.Flush(ctx)
	a.cl.Close()
}

// attemptBatch is one goroutine's attempt lines not yet written.
type attemptBatch struct {
	buf     []byte
	since   time.Time   // of the first line
	last    lineContext // of the last line
	scratch []byte      // webhook-id identity bytes
}

// lineContext is what a line of a record may leave out when the previous line had it
// (see the attempt log): the zero value before a record's first line.
type lineContext struct {
	hookID, source, event, topic string
	partition                    int32
}

var attemptBufs = sync.Pool{New: func() any { return make([]byte, 0, attemptBatchBytes+4096) }}

// logAttempt adds the line of the attempt d made for ch to d's batch (res is its result,
// n its number, outcome what followed, reason a dead letter's) and writes the batch once
// it is full or old. Without a batch (replays) the line is written at once.
func (a *attemptLog) logAttempt(d delivery, ch *compiledHook, res *sinks.Result, at time.Time, n int, outcome, reason string) {
	if a == nil {
		return
	}
	b := d.attempts
	if b == nil {
		b = &attemptBatch{}
	}
	if len(b.buf) == 0 {
		if b.buf == nil {
			b.buf = attemptBufs.Get().([]byte)
		}
		b.since, b.last = at, lineContext{}
	}
	b.buf = b.appendAttempt(d, ch, res, at, n, outcome, reason)
	if d.attempts == nil || len(b.buf) >= attemptBatchBytes || at.Sub(b.since) >= attemptBatchAge {
		a.flush(b)
	}
}

// flush writes b's lines as one record, unless there are none.
func (a *attemptLog) flush(b *attemptBatch) {
	if a == nil || len(b.buf) == 0 {
		return
	}
	rec := &kgo.Record{Topic: a.topic, Value: b.buf}
	b.buf = nil
	a.cl.TryProduce(a.ctx, rec, func(r *kgo.Record, err error) {
		if err != nil { // kgo.ErrMaxBuffered: it could not keep up
			attemptsDropped.Add(bytes.Count(r.Value, []byte{'\n'}))
		}
		if cap(r.Value) <= 2*attemptBatchBytes { // keep what one huge line grew out
			attemptBufs.Put(r.Value[:0])
		}
	})
}

// appendAttempt appends the JSON line of an attempt (see logAttempt) to b.buf, leaving
// out what the reader works out (see the attempt log), and returns it.
func (b *attemptBatch) appendAttempt(d delivery, ch *compiledHook, res *sinks.Result, at time.Time, n int, outcome, reason string) []byte {
	ev := d.ev
	l := strconv.AppendInt(append(b.buf, `{"at_ms":`...), at.UnixMilli(), 10)
	l = appendMillis(append(l, `,"duration_ms":`...), res.Duration)
	l = b.appendContext(l, ch.hook.ID, ev)
	if len(ev.ID) > 0 {
		l = jsonx.AppendString(append(l, `,"event_id":`...), ev.ID, false)
	}
	if !derivableID(ev) {
		l = append(l, `,"webhook_id":"`...)
		l = append(sinks.AppendMessageID(l, &b.scratch, ch.hook.ID, ev), '"')
	}
	if r := ev.Record; r != nil {
		l = strconv.AppendInt(append(l, `,"offset":`...), r.Offset, 10)
	}
	if n != 1 {
		l = strconv.AppendInt(append(l, `,"attempt":`...), int64(n), 10)
	}
	if outcome != outcomeDelivered {
		l = append(append(append(l, `,"outcome":"`...), outcome...), '"') // a constant: nothing to escape
	}
	return append(appendResult(l, d, ch, res, reason), '}', '\n')
}

// appendContext appends the fields of b.last that this line changes (see lineContext),
// and keeps them. The topic is not escaped: Kafka allows only [a-zA-Z0-9._-] in names.
func (b *attemptBatch) appendContext(l []byte, hookID string, ev *hooks.Event) []byte {
	c := lineContext{hookID: hookID, source: ev.Source, event: ev.Event}
	if r := ev.Record; r != nil {
		c.topic, c.partition = r.Topic, r.Partition
	}
	if c.hookID != b.last.hookID {
		l = jsonx.AppendString(append(l, `,"hook_id":`...), c.hookID, false)
	}
	if c.source != b.last.source {
		l = jsonx.AppendString(append(l, `,"source":`...), c.source, false)
	}
	if c.event != b.last.event {
		l = jsonx.AppendString(append(l, `,"event":`...), c.event, false)
	}
	if c.topic != b.last.topic {
		l = append(append(append(l, `,"topic":"`...), c.topic...), '"')
	}
	if c.partition != b.last.partition {
		l = strconv.AppendInt(append(l, `,"partition":`...), int64(c.partition), 10)
	}
	b.last = c
	return l
}

// derivableID reports whether the reader can work out ev's webhook-id from its line:
// sinks.MessageID hashes the envelope id and source, or else the record, and a string
// that is not UTF-8 does not read back as it was written.
func derivableID(ev *hooks.Event) bool {
	if len(ev.ID) > 0 {
		return utf8.Valid(ev.ID) && utf8.ValidString(ev.Source)
	}
	return ev.Record != nil
}

// appendResult appends what the attempt got: reason, status, error and the excerpts.
func appendResult(l []byte, d delivery, ch *compiledHook, res *sinks.Result, reason string) []byte {
	if reason != "" {
		l = jsonx.AppendString(append(l, `,"reason":`...), reason, false)
	}
	if res.Status != 0 {
		l = strconv.AppendInt(append(l, `,"status":`...), int64(res.Status), 10)
	}
	if res.Err != nil {
		l = jsonx.AppendString(append(l, `,"error":`...), res.Err.Error(), false)
	}
	if d.sinks != nil {
		req, resp := d.sinks.Excerpts()
		if len(resp) > 0 {
			l = jsonx.AppendString(append(l, `,"response":`...), resp, false)
		}
		if len(req) > 0 && ch.hook.LogRequestBody {
			l = jsonx.AppendString(append(l, `,"request":`...), req, false)
		}
	}
	return l
}

// appendMillis appends d in milliseconds to the microsecond, as strconv.AppendFloat
// writes float64(d.Microseconds())/1000 (shortest form), without its float formatting.
func appendMillis(l []byte, d time.Duration) []byte {
	us := max(d.Microseconds(), 0) // a monotonic duration; never negative
	l = strconv.AppendInt(l, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return l
	}
	l = append(l, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for l[len(l)-1] == '0' { // stops at frac's last digit that is not 0
		l = l[:len(l)-1]
	}
	return l
}
