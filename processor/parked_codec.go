package processor

import (
	"encoding/base64"
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
	if e.Blocking != blockNone {
		dst = appendIntField(dst, "blocking", int64(e.Blocking))
	}
	if e.Marks != "" {
		dst = appendStringField(dst, "blocking_marks", e.Marks)
	}
	if e.Cursor != markerNone {
		dst = appendIntField(dst, "cursor", int64(e.Cursor))
		dst = appendIntField(dst, "cursor_at", e.CursorAt)
	}
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

// historyParsers parse eh-delivery headers: one per record read back from the retry
// topic, so a parser (and its cache) is reused rather than grown anew each time.
var historyParsers fastjson.ParserPool

var errNotParkedEntry = errors.New("not a parked delivery: no eh-hook-id, eh-reason, eh-delivery headers")

// parseParkedEntry reads a record that parkedEntry.record wrote: ours are the last
// eh-delivery header and the two before it (headers a tool appended after them are
// dropped). A record without them is read as the JSON entry of earlier versions.
func parseParkedEntry(r *kgo.Record, e *parkedEntry) error {
	n := len(r.Headers) - 1
	for n >= 0 && r.Headers[n].Key != headerDelivery {
		n--
	}
	if n < 0 {
		return parseLegacyEntry(r.Value, e)
	}
	if n < 2 || r.Headers[n-2].Key != headerHookID || r.Headers[n-1].Key != headerReason {
		return errNotParkedEntry
	}
	p := historyParsers.Get()
	defer historyParsers.Put(p)
	v, err := p.ParseBytes(r.Headers[n].Value)
	if err != nil {
		return fmt.Errorf("%s header: %w", headerDelivery, err)
	}
	if v.Type() != fastjson.TypeObject {
		return fmt.Errorf("%s header: %w", headerDelivery, errNotParkedEntry)
	}
	readHistory(v, e)
	e.HookID, e.Reason = string(r.Headers[n-2].Value), string(r.Headers[n-1].Value)
	e.Key, e.Value = r.Key, r.Value
	if n > 2 {
		e.Headers = r.Headers[: n-2 : n-2]
	}
	return nil
}

// readHistory sets *e to the delivery history in v, an eh-delivery object (or an entry
// of earlier versions, which has the same fields).
func readHistory(v *fastjson.Value, e *parkedEntry) {
	*e = parkedEntry{
		Attempts: v.GetInt("attempts"), LastStatus: v.GetInt("last_status"),
		LastError:      string(v.GetStringBytes("last_error")),
		FirstAttemptMs: v.GetInt64("first_attempt_ms"), LastAttemptMs: v.GetInt64("last_attempt_ms"),
		DueMs: v.GetInt64("due_ms"), Topic: string(v.GetStringBytes("topic")),
		Partition: int32(v.GetInt("partition")), Offset: v.GetInt64("offset"), TimestampMs: v.GetInt64("timestamp_ms"),
	}
	if m := blockMark(v.GetInt("blocking")); m <= blockByHook {
		e.Blocking = m
	}
	e.Marks = string(v.GetStringBytes("blocking_marks"))
	if k := markerKind(v.GetInt("cursor")); k <= markerEnd {
		e.Cursor, e.CursorAt = k, v.GetInt64("cursor_at")
	}
}

// parseLegacyEntry reads the entry earlier versions wrote as the record's value: the
// history and the hook, with the original key, value and headers in base64.
func parseLegacyEntry(b []byte, e *parkedEntry) error {
	var p fastjson.Parser
	v, err := p.ParseBytes(b)
	if err != nil || v.Type() != fastjson.TypeObject || v.Get("value") == nil {
		return errNotParkedEntry
	}
	readHistory(v, e)
	e.HookID, e.Reason = string(v.GetStringBytes("hook_id")), string(v.GetStringBytes("reason"))
	if e.Key, err = base64Field(v, "key"); err != nil {
		return err
	}
	if e.Value, err = base64Field(v, "value"); err != nil {
		return err
	}
	for _, h := range v.GetArray("headers") {
		val, err := base64Field(h, "value")
		if err != nil {
			return err
		}
		e.Headers = append(e.Headers, kgo.RecordHeader{Key: string(h.GetStringBytes("key")), Value: val})
	}
	return nil
}

// base64Field decodes a base64 string field; null or absent is nil.
func base64Field(v *fastjson.Value, name string) ([]byte, error) {
	s := v.GetStringBytes(name)
	if s == nil {
		return nil, nil
	}
	return base64.StdEncoding.AppendDecode(make([]byte, 0, base64.StdEncoding.DecodedLen(len(s))), s)
}
