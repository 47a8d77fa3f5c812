package sinks

import (
	"sync"

	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// buffer is a pooled byte slice for request bodies and scratch space.
type buffer struct{ B []byte }

// maxPooledBuffer is the largest buffer kept in the pool; bigger ones are left to the GC
// so one huge event does not pin memory.
const maxPooledBuffer = 1 << 20

var bufferPool = sync.Pool{New: func() any { return &buffer{B: make([]byte, 0, 1024)} }}

func getBuffer() *buffer { return bufferPool.Get().(*buffer) }

func putBuffer(b *buffer) {
	if cap(b.B) > maxPooledBuffer {
		return
	}
	b.B = b.B[:0]
	bufferPool.Put(b)
}

// appendEventBody appends Kong's webhook body for ev (see appendWebhookBody), copying the
// data's members as the record holds them when it can (hooks.Event.DataMembers): a
// webhook then never parses the event.
func appendEventBody(dst []byte, ev *hooks.Event) []byte {
	members, ok := ev.DataMembers()
	if !ok {
		return appendWebhookBody(dst, ev.Source, ev.Event, ev.Data())
	}
	dst = appendBodyHead(dst, ev.Source, ev.Event)
	if len(members) > 0 {
		dst = append(append(dst, ','), members...)
	}
	return append(dst, '}')
}

// appendBodyHead opens Kong's body with its "source" and "event" members.
func appendBodyHead(dst []byte, source, event string) []byte {
	dst = append(dst, `{"source":`...)
	dst = appendJSONString(dst, source)
	dst = append(dst, `,"event":`...)
	return appendJSONString(dst, event)
}

// appendWebhookBody appends Kong's webhook body to dst: the data object with "source" and
// "event" added first. Top-level "source"/"event" keys of data are dropped (replaced, not
// duplicated). A nil or non-object data yields just the two keys.
//
// It writes JSON itself rather than through fastjson's MarshalTo, whose string escaping
// (strconv.AppendQuote) emits \x01, \a and \v, which are not JSON; and it re-checks
// numbers, because fastjson's parser accepts NaN, Inf and "1-2" as numbers.
func appendWebhookBody(dst []byte, source, event string, data *fastjson.Value) []byte {
	dst = appendBodyHead(dst, source, event)
	if data != nil && data.Type() == fastjson.TypeObject {
		o, _ := data.Object() // cannot fail: the type was just checked
		o.Visit(func(k []byte, v *fastjson.Value) {
			if string(k) == "source" || string(k) == "event" {
				return
			}
			dst = append(dst, ',')
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONValue(dst, v)
		})
	}
	return append(dst, '}')
}

// appendJSONValue appends v as valid JSON. Recursion is bounded by fastjson.MaxDepth.
func appendJSONValue(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, vv *fastjson.Value) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONValue(dst, vv)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, vv := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONValue(dst, vv)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		return appendJSONString(dst, v.GetStringBytes())
	case fastjson.TypeNumber:
		start := len(dst)
		dst = v.MarshalTo(dst) // the number's source text
		if validJSONNumber(dst[start:]) {
			return dst
		}
		// NaN, Inf, "1-2"…: keep the text, as a string, rather than emit invalid JSON.
		n := string(dst[start:])
		return appendJSONString(dst[:start], n)
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	default:
		return append(dst, "null"...)
	}
}

// validJSONNumber reports whether b is one number of RFC 8259's grammar.
func validJSONNumber(b []byte) bool {
	n := jsonx.NumberLen(b)
	return n > 0 && n == len(b)
}

// appendJSONString appends s as a JSON string that is also valid JavaScript.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	return jsonx.AppendString(dst, s, true)
}
