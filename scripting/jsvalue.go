package scripting

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"github.com/dop251/goja"
	"github.com/valyala/fastjson"
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
		o, _ := v.Object()
		obj := vm.NewObject()
		o.Visit(func(k []byte, e *fastjson.Value) {
			// Cannot fail on a fresh extensible object.
			_ = obj.DefineDataProperty(string(k), toJS(vm, e), goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_TRUE)
		})
		return obj
	case fastjson.TypeArray:
		items, _ := v.Array()
		vals := make([]any, len(items))
		for i, e := range items {
			vals[i] = toJS(vm, e)
		}
		return vm.NewArray(vals...)
	case fastjson.TypeString:
		return vm.ToValue(string(v.GetStringBytes()))
	case fastjson.TypeNumber:
		switch n := jsonNumber(v).(type) {
		case int64:
			if n >= -maxExactInt && n <= maxExactInt {
				return vm.ToValue(n)
			}
			return vm.ToValue(float64(n))
		case float64:
			return vm.ToValue(n)
		}
		return goja.Null()
	case fastjson.TypeTrue:
		return vm.ToValue(true)
	case fastjson.TypeFalse:
		return vm.ToValue(false)
	}
	return goja.Null()
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
		w.buf = appendJSONString(w.buf, v.String())
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
	f := v.ToFloat()
	if f != f || f > maxFloat || f < -maxFloat { // NaN, ±Infinity
		w.buf = append(w.buf, "null"...)
		return
	}
	w.buf = appendFloat(w.buf, f)
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
		w.buf = appendJSONString(w.buf, obj.String())
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
		w.buf = appendJSONString(w.buf, k)
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

func (w *jsonWriter) check() error {
	if len(w.buf)-w.start > w.max {
		return w.tooBig
	}
	return nil
}
