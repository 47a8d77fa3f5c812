package scripting

import (
	"math"
	"strconv"

	"github.com/valyala/fastjson"
)

// EventContext builds the map templates see for one event: the fields of data at the top
// level plus "source" and "event" (which win over data fields of the same name), as
// Kong's templates see them.
//
// JSON objects become map[string]any, arrays []any, strings string, booleans bool, null
// nil. A number that is an integer (within int64) becomes an int64, so it prints as
// `8000` (not `8000.0` or `8e+03`) and compares with `eq .port 8000`; other numbers
// become float64 and print as JavaScript prints them (`0.5`, `1e+21`).
//
// Build it once per event and share it between the hooks of that event: Render only
// reads it, also from concurrent goroutines. It does not point into data, so it stays
// valid after the event's parser is reused. A nil or non-object data yields only source
// and event.
func EventContext(source, event string, data *fastjson.Value) map[string]any {
	obj := data.GetObject() // nil for a nil or non-object data
	n := 2
	if obj != nil {
		n += obj.Len()
	}
	m := make(map[string]any, n)
	if obj != nil {
		obj.Visit(func(k []byte, v *fastjson.Value) {
			m[string(k)] = fromFastJSON(v)
		})
	}
	m["source"] = source
	m["event"] = event
	return m
}

// EventData is what a template reads of one event. A template made only of text and field
// paths (the common Kong case) looks its fields up in the parsed data; any other template
// reads the map EventContext builds, made on its first need and kept for the event's
// other templates.
//
// It points into the parsed data: it is valid until the event's parser is reused, and,
// like the data, not safe for concurrent use (fastjson unescapes strings in place).
type EventData struct {
	source, event string
	data          *fastjson.Value // an object, or nil
	ctx           map[string]any  // EventContext's, once built
}

// Reset makes d the data of another event.
func (d *EventData) Reset(source, event string, data *fastjson.Value) {
	*d = EventData{source: source, event: event}
	if data != nil && data.Type() == fastjson.TypeObject {
		d.data = data
	}
}

// context returns EventContext's map of the event, built once.
func (d *EventData) context() map[string]any {
	if d.ctx == nil {
		d.ctx = EventContext(d.source, d.event, d.data)
	}
	return d.ctx
}

// appendField appends what the action {{ .path }} prints for the event: what Render does
// with the map, without building it.
func (d *EventData) appendField(dst []byte, path []string) []byte {
	switch {
	case path[0] != "source" && path[0] != "event":
	case len(path) > 1: // they win over data fields; a field of a string is nothing
		return dst
	case path[0] == "source":
		return append(dst, d.source...)
	default:
		return append(dst, d.event...)
	}
	v := d.data
	for _, k := range path {
		if v == nil || v.Type() != fastjson.TypeObject {
			return dst // a field of a missing value, a null or a non-object
		}
		v, _ = lastMember(v, k) // the last of duplicates, as in EventContext's map
	}
	if v == nil {
		return dst
	}
	return appendJSONField(dst, v)
}

// appendJSONField appends a field's value as a template prints the value
// fromFastJSON converts it to.
func appendJSONField(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		return append(dst, v.GetStringBytes()...)
	case fastjson.TypeNull:
		return dst
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	case fastjson.TypeNumber:
		f, i, isInt, ok := parseNumber(v)
		switch {
		case !ok:
			return dst
		case isInt:
			return strconv.AppendInt(dst, i, 10)
		}
		return appendFloat(dst, f)
	}
	return appendValue(dst, fromFastJSON(v))
}

// fromFastJSON converts a parsed JSON value into plain Go values. Recursion depth is
// bounded by fastjson's parser (MaxDepth).
func fromFastJSON(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, e *fastjson.Value) {
			m[string(k)] = fromFastJSON(e)
		})
		return m
	case fastjson.TypeArray:
		items, _ := v.Array()
		out := make([]any, len(items))
		for i, e := range items {
			out[i] = fromFastJSON(e)
		}
		return out
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNumber:
		return jsonNumber(v)
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

// maxExactInt is 2^53: every integer up to it is exact in a float64.
const maxExactInt = 1 << 53

func jsonNumber(v *fastjson.Value) any {
	f, i, isInt, ok := parseNumber(v)
	switch {
	case !ok:
		return nil
	case isInt:
		return i
	}
	return f
}

// parseNumber is jsonNumber without the interface, which boxes a large integer (an
// allocation per field a template prints): the number as an int64 i when isInt, else f.
func parseNumber(v *fastjson.Value) (f float64, i int64, isInt, ok bool) {
	f, err := v.Float64()
	if err != nil {
		return 0, 0, false, false
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return f, 0, false, true
	}
	if math.Abs(f) <= maxExactInt {
		return f, int64(f), true, true
	}
	// A large integer: keep every digit when it fits in an int64 (ids, nanosecond times).
	if i, err := v.Int64(); err == nil {
		return f, i, true, true
	}
	return f, 0, false, true
}
