package processor

import (
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// The JSON of a parkedEntry is written and read without reflection: with a dead endpoint
// every event of its hooks is parked, so this is a hot path then. The format is what
// encoding/json makes of the struct tags (byte slices in base64), so any JSON tool, and
// the tests, read it with encoding/json.

// appendJSON appends e's JSON to dst.
func (e *parkedEntry) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if e.HookID != "" {
		dst = appendStringField(dst, "hook_id", e.HookID)
	}
	if e.Reason != "" {
		dst = appendStringField(dst, "reason", e.Reason)
	}
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
	dst = appendBytesField(dst, "key", e.Key)
	dst = appendBytesField(dst, "value", e.Value)
	if len(e.Headers) > 0 {
		dst = append(dst, `"headers":[`...)
		for i, h := range e.Headers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			dst = appendStringField(dst, "key", h.Key)
			dst = appendBytesField(dst, "value", h.Value)
			dst = append(dst[:len(dst)-1], '}')
		}
		dst = append(dst, "],"...)
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

// appendBytesField writes b as encoding/json does: base64, or null for nil.
func appendBytesField(dst []byte, name string, b []byte) []byte {
	dst = append(append(append(dst, '"'), name...), `":`...)
	if b == nil {
		return append(dst, "null,"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, `",`...)
}

var errNotParkedEntry = errors.New("not a parked delivery entry")

// parseParkedEntry reads what appendJSON (or encoding/json) wrote.
func parseParkedEntry(b []byte, e *parkedEntry) error {
	var p fastjson.Parser
	v, err := p.ParseBytes(b)
	if err != nil {
		return err
	}
	if v.Type() != fastjson.TypeObject {
		return errNotParkedEntry
	}
	*e = parkedEntry{
		HookID: string(v.GetStringBytes("hook_id")), Reason: string(v.GetStringBytes("reason")),
		Attempts: v.GetInt("attempts"), LastStatus: v.GetInt("last_status"),
		LastError:      string(v.GetStringBytes("last_error")),
		FirstAttemptMs: v.GetInt64("first_attempt_ms"), LastAttemptMs: v.GetInt64("last_attempt_ms"),
		DueMs: v.GetInt64("due_ms"), Topic: string(v.GetStringBytes("topic")),
		Partition: int32(v.GetInt("partition")), Offset: v.GetInt64("offset"), TimestampMs: v.GetInt64("timestamp_ms"),
	}
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
		e.Headers = append(e.Headers, headerJSON{Key: string(h.GetStringBytes("key")), Value: val})
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
