package processor

import (
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

// The attempt log: one record per delivery attempt that was sent (not one a breaker or
// rate limit turned away) in Config.AttemptsTopic, keyed by hook id, for the deliveries
// API. Writing it never blocks a lane and never holds back a commit: a record the
// producer has no room for is dropped and counted. A record is JSON:
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
const attemptLogBuffered = 20_000

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

// attemptRecord is one attempt log entry being written; pooled.
type attemptRecord struct {
	rec     kgo.Record
	buf     []byte
	scratch []byte // webhook-id identity bytes
}

var attemptRecords = sync.Pool{New: func() any { return new(attemptRecord) }}

// logAttempt writes the attempt that d made for ch: res is its result, n its number,
// outcome what followed, reason a dead letter's.
func (a *attemptLog) logAttempt(d delivery, ch *compiledHook, res *sinks.Result, at time.Time, n int, outcome, reason string) {
	if a == nil {
		return
	}
	ar := attemptRecords.Get().(*attemptRecord)
	b := append(ar.buf[:0], `{"hook_id":`...)
	b = jsonx.AppendString(b, ch.hook.ID, false)
	ev := d.ev
	if len(ev.ID) > 0 {
		b = jsonx.AppendString(append(b, `,"event_id":`...), ev.ID, false)
	}
	b = append(b, `,"webhook_id":"`...)
	b = append(sinks.AppendMessageID(b, &ar.scratch, ch.hook.ID, ev), '"')
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
	req, resp := d.sinks.Excerpts()
	if len(resp) > 0 {
		b = jsonx.AppendString(append(b, `,"response":`...), resp, false)
	}
	if len(req) > 0 && ch.hook.LogRequestBody {
		b = jsonx.AppendString(append(b, `,"request":`...), req, false)
	}
	if r := ev.Record; r != nil {
		b = jsonx.AppendString(append(b, `,"topic":`...), r.Topic, false)
		b = strconv.AppendInt(append(b, `,"partition":`...), int64(r.Partition), 10)
		b = strconv.AppendInt(append(b, `,"offset":`...), r.Offset, 10)
	}
	ar.buf = append(b, '}')
	ar.rec = kgo.Record{Topic: a.topic, Key: ar.rec.Key[:0], Value: ar.buf}
	ar.rec.Key = append(ar.rec.Key, ch.hook.ID...)
	a.cl.TryProduce(a.ctx, &ar.rec, func(_ *kgo.Record, err error) {
		if err != nil {
			attemptsDropped.Inc() // kgo.ErrMaxBuffered: it could not keep up
		}
		if cap(ar.buf) <= 4*sinks.ExcerptBytes+1024 { // keep what one huge error grew out
			attemptRecords.Put(ar)
		}
	})
}
