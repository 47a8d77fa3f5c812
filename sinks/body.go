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
	dst = jsonx.AppendString(dst, source, true)
	dst = append(dst, `,"event":`...)
	return jsonx.AppendString(dst, event, true)
}

// appendWebhookBody appends Kong's webhook body to dst: the data object with "source" and
// "event" added first. Top-level "source"/"event" keys of data are dropped (replaced, not
// duplicated). A nil or non-object data yields just the two keys.
//
// It writes JSON with jsonx rather than through fastjson's MarshalTo, whose string
// escaping (strconv.AppendQuote) emits \x01, \a and \v, which are not JSON; jsonx
// re-checks numbers, because fastjson's parser accepts NaN, Inf and "1-2" as numbers.
// Strings are also valid JavaScript (U+2028 and U+2029 escaped).
func appendWebhookBody(dst []byte, source, event string, data *fastjson.Value) []byte {
	dst = appendBodyHead(dst, source, event)
	if data != nil && data.Type() == fastjson.TypeObject {
		o, _ := data.Object() // cannot fail: the type was just checked
		o.Visit(func(k []byte, v *fastjson.Value) {
			if string(k) == "source" || string(k) == "event" {
				return
			}
			dst = append(dst, ',')
			dst = jsonx.AppendString(dst, k, true)
			dst = append(dst, ':')
			dst = jsonx.AppendValue(dst, v, true)
		})
	}
	return append(dst, '}')
}
