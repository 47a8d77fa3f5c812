package processor

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// The eh-delivery header of a parked record is JSON written without reflection: with a
// dead endpoint every event of its hooks is parked, so this is a hot path then. It is
// what encoding/json makes of deliveryJSON (in the tests), so any JSON tool reads it.

// appendJSON appends the JSON of e's delivery history (the eh-delivery header) to dst.
func (e *parkedEntry) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendIntField(dst, "attempts", int64(e.Attempts))
	if e.LastStatus != 0 {
		dst = appendIntField(dst, "last_status", int64(e.LastStatus))
	}
	if e.LastError != "" {
		dst = appendStringField(dst, "last_error", e.LastError)
	}
	dst = appendIntField(dst, "first_attempt_ms", e.FirstAttemptMs)
	dst = appendIntField(dst, "last_attempt_ms", e.LastAttemptMs)
	if e.DueMs != 0 {
		dst = appendIntField(dst, "due_ms", e.DueMs)
	}
	dst = appendStringField(dst, "topic", e.Topic)
	dst = appendIntField(dst, "partition", int64(e.Partition))
	dst = appendIntField(dst, "offset", e.Offset)
	dst = appendIntField(dst, "timestamp_ms", e.TimestampMs)
	return append(dst[:len(dst)-1], '}') // the last field's comma becomes the brace
}

func appendStringField(dst []byte, name, v string) []byte {
	dst = append(append(append(dst, '"'), name...), `":`...)
	return append(jsonx.AppendString(dst, v, false), ',')
}

func appendIntField(dst []byte, name string, v int64) []byte {
	dst = append(append(append(dst, '"'), name...), `":`...)
	return append(strconv.AppendInt(dst, v, 10), ',')
}

var errNotParkedEntry = errors.New("not a parked delivery: its last headers are not eh-hook-id, eh-reason, eh-delivery")

// parseParkedEntry reads a record that parkedEntry.record wrote.
func parseParkedEntry(r *kgo.Record, e *parkedEntry) error {
	n := len(r.Headers)
	if n < 3 || r.Headers[n-3].Key != headerHookID || r.Headers[n-2].Key != headerReason || r.Headers[n-1].Key != headerDelivery {
		return errNotParkedEntry
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(r.Headers[n-1].Value)
	if err != nil {
		return fmt.Errorf("%s header: %w", headerDelivery, err)
	}
	if v.Type() != fastjson.TypeObject {
		return fmt.Errorf("%s header: %w", headerDelivery, errNotParkedEntry)
	}
	*e = parkedEntry{
		HookID: string(r.Headers[n-3].Value), Reason: string(r.Headers[n-2].Value),
		Attempts: v.GetInt("attempts"), LastStatus: v.GetInt("last_status"),
		LastError:      string(v.GetStringBytes("last_error")),
		FirstAttemptMs: v.GetInt64("first_attempt_ms"), LastAttemptMs: v.GetInt64("last_attempt_ms"),
		DueMs: v.GetInt64("due_ms"), Topic: string(v.GetStringBytes("topic")),
		Partition: int32(v.GetInt("partition")), Offset: v.GetInt64("offset"), TimestampMs: v.GetInt64("timestamp_ms"),
		Key: r.Key, Value: r.Value, Headers: r.Headers[: n-3 : n-3],
	}
	if len(e.Headers) == 0 {
		e.Headers = nil
	}
	return nil
}
