package deliveries

import (
	"bytes"
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// lineReader reads the attempt lines of the attempts topic, without reflection: while
// the log is in use it reads a line per attempt of every instance. It is not safe for
// concurrent use.
//
// A line may leave out what the reader works out (the processor's attempt log says
// which): hook_id, source, event, topic and partition are then the previous line's of
// the record, attempt is 1, outcome delivered, and webhook_id is sinks.MessageID of the
// hook and the event the line names. Lines written before they left anything out read
// the same way.
type lineReader struct {
	parser fastjson.Parser
	ev     hooks.Event // the event a webhook-id is worked out of
	rec    kgo.Record
	id     []byte // webhook-id scratch
	idents []byte // sinks.AppendMessageID's scratch
}

// errNoHook marks a JSON line that names no hook.
var errNoHook = errors.New("no hook_id")

// each calls add with the attempt of each line of a record's value (a lane's batch, a
// line each), and skip with the error of each line that is not one.
func (lr *lineReader) each(value []byte, add func(Attempt), skip func(error)) {
	var prev Attempt // the record's previous line
	for line := range bytes.SplitSeq(value, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var a Attempt
		if err := lr.parse(line, &prev, &a); err != nil {
			skip(err)
			continue
		}
		add(a)
		prev = a
	}
}

// parse reads line into a; prev is the previous line of its record.
func (lr *lineReader) parse(line []byte, prev, a *Attempt) error {
	v, err := lr.parser.ParseBytes(line)
	if err != nil {
		return err
	}
	str := func(k string) string { return string(v.GetStringBytes(k)) }
	*a = Attempt{
		HookID: strOr(v, "hook_id", prev.HookID), EventID: str("event_id"), WebhookID: str("webhook_id"),
		Source: strOr(v, "source", prev.Source), Event: strOr(v, "event", prev.Event), Attempt: intOr(v, "attempt", 1),
		AtMs: v.GetInt64("at_ms"), DurationMs: v.GetFloat64("duration_ms"),
		Outcome: strOr(v, "outcome", OutcomeDelivered), Reason: str("reason"), Status: v.GetInt("status"),
		Error: str("error"), Response: str("response"), Request: str("request"),
		Topic: strOr(v, "topic", prev.Topic), Partition: int32(intOr(v, "partition", int(prev.Partition))), Offset: v.GetInt64("offset"),
	}
	if a.HookID == "" {
		return errNoHook
	}
	if a.WebhookID == "" {
		a.WebhookID = lr.messageID(a)
	}
	return nil
}

// messageID works out the webhook-id of a line that leaves it out: the processor writes
// it when the event id, or else the record, that the line names would not do.
func (lr *lineReader) messageID(a *Attempt) string {
	lr.rec.Topic, lr.rec.Partition, lr.rec.Offset = a.Topic, a.Partition, a.Offset
	lr.ev.Record, lr.ev.Source, lr.ev.ID = &lr.rec, a.Source, append(lr.ev.ID[:0], a.EventID...)
	lr.id = sinks.AppendMessageID(lr.id[:0], &lr.idents, a.HookID, &lr.ev)
	return string(lr.id)
}

// strOr returns the string at key k of v, def when v has no k.
func strOr(v *fastjson.Value, k, def string) string {
	f := v.Get(k)
	if f == nil {
		return def
	}
	return string(f.GetStringBytes())
}

// intOr returns the int at key k of v, def when v has no k.
func intOr(v *fastjson.Value, k string, def int) int {
	f := v.Get(k)
	if f == nil {
		return def
	}
	return f.GetInt()
}
