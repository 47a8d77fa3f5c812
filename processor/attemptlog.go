package processor

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/jsonx"
	"github.com/eventhooks/eventhooks/sinks"
)

// The attempt log: a line per delivery attempt that was sent (not one a breaker or rate
// limit turned away) in Config.AttemptsTopic, for the deliveries API. A lane gathers its
// lines into one record (NDJSON), written at attemptBatchBytes or once its first line is
// attemptBatchAge old (also when the lane waits for records: lane.next): a record per
// attempt cost a fifth of the events/s, mostly in the producer and the broker. Writing it never blocks a lane and
// never holds back a commit: a record the producer has no room for is dropped and its
// lines counted. A line is JSON:
//
//	{"hook_id", "event_id", "webhook_id", "source", "event", "attempt", "at_ms",
//	 "duration_ms", "outcome" (delivered | failed | dead_lettered), "reason" (of a dead
//	 letter), "status", "error", "response", "request" (with the hook's log_request_body),
//	 "topic", "partition", "offset"}
//
// with zero-valued fields left out; "failed" is a retryable failure that is retried.

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
// first line is attemptBatchAge old, if the lane did not run out of records before.
const (
	attemptBatchBytes = 32 << 10
	attemptBatchAge   = 100 * time.Millisecond
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
	since   time.Time // of the first line
	scratch []byte    // webhook-id identity bytes
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
		b.since = at
	}
	b.buf = appendAttempt(b.buf, &b.scratch, d, ch, res, at, n, outcome, reason)
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

// appendAttempt appends the JSON line of an attempt (see logAttempt) to dst.
func appendAttempt(dst []byte, scratch *[]byte, d delivery, ch *compiledHook, res *sinks.Result, at time.Time, n int, outcome, reason string) []byte {
	b := append(dst, `{"hook_id":`...)
	b = jsonx.AppendString(b, ch.hook.ID, false)
	ev := d.ev
	if len(ev.ID) > 0 {
		b = jsonx.AppendString(append(b, `,"event_id":`...), ev.ID, false)
	}
	b = append(b, `,"webhook_id":"`...)
	b = append(sinks.AppendMessageID(b, scratch, ch.hook.ID, ev), '"')
	b = jsonx.AppendString(append(b, `,"source":`...), ev.Source, false)
	b = jsonx.AppendString(append(b, `,"event":`...), ev.Event, false)
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(n), 10)
	b = strconv.AppendInt(append(b, `,"at_ms":`...), at.UnixMilli(), 10)
	b = strconv.AppendFloat(append(b, `,"duration_ms":`...), float64(res.Duration.Microseconds())/1000, 'f', -1, 64)
	b = append(append(append(b, `,"outcome":"`...), outcome...), '"')
	if reason != "" {
		b = jsonx.AppendString(append(b, `,"reason":`...), reason, false)
	}
	if res.Status != 0 {
		b = strconv.AppendInt(append(b, `,"status":`...), int64(res.Status), 10)
	}
	if res.Err != nil {
		b = jsonx.AppendString(append(b, `,"error":`...), res.Err.Error(), false)
	}
	if d.sinks != nil {
		req, resp := d.sinks.Excerpts()
		if len(resp) > 0 {
			b = jsonx.AppendString(append(b, `,"response":`...), resp, false)
		}
		if len(req) > 0 && ch.hook.LogRequestBody {
			b = jsonx.AppendString(append(b, `,"request":`...), req, false)
		}
	}
	if r := ev.Record; r != nil {
		b = jsonx.AppendString(append(b, `,"topic":`...), r.Topic, false)
		b = strconv.AppendInt(append(b, `,"partition":`...), int64(r.Partition), 10)
		b = strconv.AppendInt(append(b, `,"offset":`...), r.Offset, 10)
	}
	return append(b, '}', '\n')
}
