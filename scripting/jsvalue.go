package scripting

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// maxJSONDepth bounds nesting when converting between JSON and JavaScript values, in both
// directions. It equals fastjson's parser limit, so whatever is accepted as input can be
// returned as output. goja's own JSON.stringify recurses without a limit and checks for
// cycles in quadratic time, and JSON.parse recurses without a limit: both are replaced.
const maxJSONDepth = fastjson.MaxDepth

var (
	typeInt64 = reflect.TypeOf(int64(0))

	errTooDeep = fmt.Errorf("value is cyclic or nests deeper than %d levels", maxJSONDepth)
	errBigInt  = errors.New("do not know how to serialize a BigInt")
	// errTooLong is the private cap of the serializer used by JSON.stringify and console.
	errTooLong = errors.New("string too long")
)

// toJS converts a parsed JSON value into a fresh JavaScript value owned by vm. Object
// members are defined as own data properties (as JSON.parse does), so keys such as
// "__proto__" or "toString" are plain data.
func toJS(vm *goja.Runtime, v *fastjson.Value) goja.Value {
	switch v.Type() {
	case fastjson.TypeObject:
		obj := vm.NewObject()
		defineMembers(obj, v, func(_ int, e *fastjson.Value) goja.Value { return toJS(vm, e) })
		return obj
	case fastjson.TypeArray:
		return jsArray(vm, v, func(_ int, e *fastjson.Value) goja.Value { return toJS(vm, e) })
	}
	return jsPrimitive(vm, v)
}

// defineMembers defines the members of the JSON object v on obj, in order, converted by
// member (given each one's position). A duplicate key keeps its first place and its last
// value, as JSON.parse does.
func defineMembers(obj *goja.Object, v *fastjson.Value, member func(int, *fastjson.Value) goja.Value) {
	o, _ := v.Object()
	i := 0
	o.Visit(func(k []byte, e *fastjson.Value) {
		// Cannot fail on a fresh extensible object.
		_ = obj.DefineDataProperty(string(k), member(i, e), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		i++
	})
}

// jsArray converts the JSON array v, each element by elem (given its index).
func jsArray(vm *goja.Runtime, v *fastjson.Value, elem func(int, *fastjson.Value) goja.Value) goja.Value {
	items, _ := v.Array()
	vals := make([]any, len(items))
	for i, e := range items {
		vals[i] = elem(i, e)
	}
	return vm.NewArray(vals...)
}

// jsPrimitive converts a JSON string, number, boolean or null.
func jsPrimitive(vm *goja.Runtime, v *fastjson.Value) goja.Value {
	switch v.Type() {
	case fastjson.TypeString:
		return vm.ToValue(string(v.GetStringBytes()))
	case fastjson.TypeNumber:
		switch i, f, kind := jsNumber(v); kind {
		case numberInt:
			return vm.ToValue(i)
		case numberFloat:
			return vm.ToValue(f)
		}
	case fastjson.TypeTrue:
		return vm.ToValue(true)
	case fastjson.TypeFalse:
		return vm.ToValue(false)
	}
	return goja.Null()
}

// numberKind is how JavaScript holds a parsed JSON number.
type numberKind uint8

const (
	numberNone  numberKind = iota // unreadable: null
	numberInt                     // an integer within ±2^53
	numberFloat                   // anything else, including integers beyond 2^53
)

// jsNumber reads a JSON number as JavaScript holds it.
func jsNumber(v *fastjson.Value) (int64, float64, numberKind) {
	f, err := v.Float64()
	switch {
	case err != nil:
		return 0, 0, numberNone
	case f != math.Trunc(f) || math.IsInf(f, 0):
		return 0, f, numberFloat
	case math.Abs(f) <= maxExactInt:
		return int64(f), f, numberInt
	}
	// Rounded from every digit when they fit in an int64, as the parser may not.
	if i, err := v.Int64(); err == nil {
		f = float64(i)
	}
	return 0, f, numberFloat
}

// jsonWriter serializes JavaScript values as JSON.stringify(v) does, with a depth limit
// and a size cap checked as it writes. It must run inside the VM (from a native function
// called by goja), because reading properties may run getters and toJSON methods, whose
// exceptions goja propagates as panics to its own caller.
type jsonWriter struct {
	vm     *goja.Runtime
	buf    []byte
	start  int
	max    int
	tooBig error
}

// value appends v; emitted is false when v serializes to nothing (undefined, functions,
// symbols), which drops an object member and becomes null in an array.
func (w *jsonWriter) value(key string, v goja.Value, depth int) (emitted bool, err error) {
	if depth > maxJSONDepth {
		return false, errTooDeep
	}
	if obj, ok := v.(*goja.Object); ok {
		if o := asParsed(obj); o != nil {
			return true, w.parsed(o, depth)
		}
		if toJSON, ok := goja.AssertFunction(obj.Get("toJSON")); ok {
			nv, err := toJSON(obj, w.vm.ToValue(key))
			if err != nil {
				panic(err) // rethrow into the VM: goja turns it back into the exception.
			}
			v = nv
		}
	}
	switch {
	case v == nil || goja.IsUndefined(v):
		return false, nil
	case goja.IsNull(v):
		w.buf = append(w.buf, "null"...)
	case goja.IsString(v):
		w.buf = jsonx.AppendString(w.buf, v.String(), false)
	case goja.IsNumber(v):
		w.number(v)
	case goja.IsBigInt(v):
		return false, errBigInt
	default:
		switch x := v.(type) {
		case *goja.Symbol:
			return false, nil
		case *goja.Object:
			return w.object(x, depth)
		}
		// Booleans are the only primitives left.
		w.buf = strconv.AppendBool(w.buf, v.ToBoolean())
	}
	return true, w.check()
}

func (w *jsonWriter) number(v goja.Value) {
	if v.ExportType() == typeInt64 {
		w.buf = strconv.AppendInt(w.buf, v.ToInteger(), 10)
		return
	}
	w.buf = appendJSONFloat(w.buf, v.ToFloat())
}

// appendJSONFloat appends f as JSON.stringify does: NaN and infinities as null.
func appendJSONFloat(dst []byte, f float64) []byte {
	if f != f || f > maxFloat || f < -maxFloat { // NaN, ±Infinity
		return append(dst, "null"...)
	}
	return appendFloat(dst, f)
}

const maxFloat = 1.7976931348623157e308

func (w *jsonWriter) object(obj *goja.Object, depth int) (bool, error) {
	if _, ok := goja.AssertFunction(obj); ok {
		return false, nil
	}
	switch obj.ClassName() {
	case "Number":
		w.number(obj.ToNumber())
		return true, w.check()
	case "String":
		w.buf = jsonx.AppendString(w.buf, obj.String(), false)
		return true, w.check()
	case "Boolean":
		b, _ := obj.Export().(bool)
		w.buf = strconv.AppendBool(w.buf, b)
		return true, w.check()
	case "BigInt":
		return false, errBigInt
	case "Array":
		return true, w.array(obj, depth)
	}
	keys := obj.Keys()
	w.buf = append(w.buf, '{')
	n := 0
	for _, k := range keys {
		mark := len(w.buf)
		if n > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = jsonx.AppendString(w.buf, k, false)
		w.buf = append(w.buf, ':')
		ok, err := w.value(k, obj.Get(k), depth+1)
		if err != nil {
			return false, err
		}
		if !ok {
			w.buf = w.buf[:mark]
			continue
		}
		n++
	}
	w.buf = append(w.buf, '}')
	return true, w.check()
}

func (w *jsonWriter) array(obj *goja.Object, depth int) error {
	n := obj.Get("length").ToInteger()
	w.buf = append(w.buf, '[')
	for i := int64(0); i < n; i++ {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		idx := strconv.FormatInt(i, 10)
		ok, err := w.value(idx, obj.Get(idx), depth+1)
		if err != nil {
			return err
		}
		if !ok {
			w.buf = append(w.buf, "null"...)
		}
		if err := w.check(); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, ']')
	return w.check()
}

// tree appends parsed JSON as value would append toJS's conversion of it, without
// converting: the same numbers, strings, depth limit and size cap. An object whose keys
// JavaScript would reorder or merge (array indexes, duplicates) and text that is not
// valid UTF-8 (which goja replaces) are converted and written as JavaScript values.
func (w *jsonWriter) tree(v *fastjson.Value, depth int) error {
	if depth > maxJSONDepth {
		return errTooDeep
	}
	switch v.Type() {
	case fastjson.TypeObject:
		return w.treeObject(v, depth)
	case fastjson.TypeArray:
		return w.treeArray(v, depth)
	case fastjson.TypeString:
		s := v.GetStringBytes()
		if !utf8.Valid(s) {
			return w.converted(v, depth)
		}
		w.buf = jsonx.AppendString(w.buf, s, false)
	case fastjson.TypeNumber:
		w.buf = appendJSNumber(w.buf, v)
	case fastjson.TypeTrue:
		w.buf = append(w.buf, "true"...)
	case fastjson.TypeFalse:
		w.buf = append(w.buf, "false"...)
	default:
		w.buf = append(w.buf, "null"...)
	}
	return w.check()
}

// parsed writes a lazy object whose own members are as parsed. Members read are in
// o.vals, which only objects with plain keys have (see lazyObject.small).
func (w *jsonWriter) parsed(o *lazyObject, depth int) error {
	if raw, ok := o.unchangedJSON(depth); ok {
		w.buf = append(w.buf, raw...)
		return w.check()
	}
	if !o.plainKeys() {
		return w.converted(o.tree(), depth)
	}
	return w.members(o.tree().GetObject(), o.vals, depth)
}

// treeObject writes a JSON object that no script has seen.
func (w *jsonWriter) treeObject(v *fastjson.Value, depth int) error {
	o, _ := v.Object()
	if !plainKeys(o) {
		return w.converted(v, depth)
	}
	return w.members(o, nil, depth)
}

// members writes the members of o, whose keys are plain (see plainKeys). A member that
// a script has read (in read, by position) and is an object is written as a JavaScript
// value, since the script may have changed it; the others are written as parsed.
func (w *jsonWriter) members(o *fastjson.Object, read []goja.Value, depth int) error {
	w.buf = append(w.buf, '{')
	i, n := 0, 0
	var err error
	o.Visit(func(k []byte, e *fastjson.Value) {
		if err != nil {
			return
		}
		mark := len(w.buf)
		if n > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = jsonx.AppendString(w.buf, k, false)
		w.buf = append(w.buf, ':')
		ok := true
		if obj, isObj := memberAt(read, i).(*goja.Object); isObj {
			ok, err = w.value(string(k), obj, depth+1)
		} else {
			err = w.tree(e, depth+1)
		}
		if ok {
			n++
		} else {
			w.buf = w.buf[:mark]
		}
		i++
	})
	if err != nil {
		return err
	}
	w.buf = append(w.buf, '}')
	return w.check()
}

// memberAt returns vals[i], or nil past its end.
func memberAt(vals []goja.Value, i int) goja.Value {
	if i < len(vals) {
		return vals[i]
	}
	return nil
}

func (w *jsonWriter) treeArray(v *fastjson.Value, depth int) error {
	items, _ := v.Array()
	w.buf = append(w.buf, '[')
	for i, e := range items {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		if err := w.tree(e, depth+1); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, ']')
	return w.check()
}

// converted writes v through its JavaScript conversion.
func (w *jsonWriter) converted(v *fastjson.Value, depth int) error {
	_, err := w.value("", toJS(w.vm, v), depth)
	return err
}

func (w *jsonWriter) check() error {
	if len(w.buf)-w.start > w.max {
		return w.tooBig
	}
	return nil
}
