package scripting

import (
	"math"

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
	var obj *fastjson.Object
	if data != nil && data.Type() == fastjson.TypeObject {
		obj, _ = data.Object()
	}
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
	f, err := v.Float64()
	if err != nil {
		return nil
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return f
	}
	if math.Abs(f) <= maxExactInt {
		return int64(f)
	}
	// A large integer: keep every digit when it fits in an int64 (ids, nanosecond times).
	if i, err := v.Int64(); err == nil {
		return i
	}
	return f
}
