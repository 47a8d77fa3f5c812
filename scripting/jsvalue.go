package scripting

import (
	"bytes"
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
		w.buf = appendJSONString(w.buf, s)
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
		w.buf = appendJSONString(w.buf, k)
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

// smallObject is the size up to which plainKeys looks for duplicates by scanning.
const smallObject = 16

// plainKeys reports whether a JavaScript object keeps o's keys as they are, in order:
// none is an array index (objects list those first, in numeric order) or repeated, and
// all are valid UTF-8.
func plainKeys(o *fastjson.Object) bool {
	var ks keySet
	ok := true
	o.Visit(func(k []byte, _ *fastjson.Value) {
		ok = ok && plainKey(k) && ks.first(k)
	})
	return ok
}

// plainKey reports whether a JavaScript object keeps the key k as it is, wherever it
// is: not an array index, valid UTF-8.
func plainKey(k []byte) bool { return !isIndexKey(k) && utf8.Valid(k) }

// keySet tells whether each key of a JSON object is the first with its text, as the
// members are met in order. A small object's keys are kept and scanned, on a collision
// of keyBit only; past smallObject keys they go into a map. (Comparing the member with
// the one Object.Get finds would not do: true, false and null are shared values.)
type keySet struct {
	n      int
	small  [smallObject][]byte
	hashes uint64
	seen   map[string]struct{}
}

func (ks *keySet) first(k []byte) bool {
	if ks.seen == nil && ks.n < smallObject {
		bit := keyBit(k)
		first := true
		if ks.hashes&bit != 0 {
			for _, p := range ks.small[:ks.n] {
				first = first && !bytes.Equal(p, k)
			}
		}
		ks.hashes |= bit
		ks.small[ks.n] = k
		ks.n++
		return first
	}
	if ks.seen == nil {
		ks.seen = make(map[string]struct{}, 2*smallObject)
		for _, p := range ks.small[:ks.n] {
			ks.seen[string(p)] = struct{}{}
		}
	}
	_, dup := ks.seen[string(k)]
	ks.seen[string(k)] = struct{}{}
	return !dup
}

// keyBit hashes a key to one bit of 64 from its length and its first and last bytes.
func keyBit(k []byte) uint64 {
	h := uint(len(k))
	if len(k) > 0 {
		h = h*31 + uint(k[0])*7 + uint(k[len(k)-1])
	}
	return 1 << (h & 63)
}

// appendJSNumber appends the number v as JSON.stringify writes its conversion.
func appendJSNumber(dst []byte, v *fastjson.Value) []byte {
	start := len(dst)
	if dst = v.MarshalTo(dst); plainInt(dst[start:]) { // the number's text, as JavaScript writes it
		return dst
	}
	if i, ok := longInt(dst[start:]); ok {
		return appendLongInt(dst[:start], i)
	}
	dst = dst[:start]
	switch i, f, kind := jsNumber(v); kind {
	case numberInt:
		return strconv.AppendInt(dst, i, 10)
	case numberFloat:
		return appendJSONFloat(dst, f)
	}
	return append(dst, "null"...)
}

// plainInt reports whether b is an integer JavaScript writes as it is: up to 15 digits
// (below 2^53), no leading zero, not -0.
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
		if len(b) == 1 && b[0] == '0' {
			return false
		}
	}
	if len(b) == 0 || len(b) > 15 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// longInt reads b when it is an integer that plainInt rejects for its length only: 16 to
// 19 digits without a leading zero, within the int64 range (a nanosecond timestamp).
func longInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) < 16 || len(b) > 19 || b[0] == '0' {
		return 0, false
	}
	var u uint64 // 19 digits cannot overflow it
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// appendLongInt appends an integer longInt read as appendJSNumber writes it: what jsNumber
// makes of it, without parsing the text as a float first.
func appendLongInt(dst []byte, i int64) []byte {
	f := float64(i) // rounded as JavaScript rounds it: 2^53+1 is 2^53
	if math.Abs(f) <= maxExactInt {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return appendJSONFloat(dst, f)
}

// appendExact appends v as JSON.stringify writes its JavaScript conversion (as tree
// does) when that keeps v's structure, and reports exact. Otherwise — an object whose
// keys JavaScript would reorder or merge, text that is not valid UTF-8 — it still writes
// valid JSON of the same structure (members in order, duplicates kept, invalid UTF-8 as
// U+FFFD, which goja makes of it too), and exact is false. depth is how deep v nests.
func appendExact(dst []byte, v *fastjson.Value) (out []byte, depth int, exact bool) {
	x := exactWriter{buf: dst, exact: true}
	x.value(v, 0)
	return x.buf, x.depth, x.exact
}

// exactWriter is appendExact's state.
type exactWriter struct {
	buf   []byte
	depth int
	exact bool
}

func (x *exactWriter) value(v *fastjson.Value, depth int) {
	x.depth = max(x.depth, depth)
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		// The keys are checked as they are written (plainKeys in the same pass).
		var ks keySet
		x.buf = append(x.buf, '{')
		o.Visit(func(k []byte, e *fastjson.Value) {
			x.exact = x.exact && plainKey(k) && ks.first(k)
			if x.buf[len(x.buf)-1] != '{' {
				x.buf = append(x.buf, ',')
			}
			x.buf = append(appendJSONString(x.buf, k), ':')
			x.value(e, depth+1)
		})
		x.buf = append(x.buf, '}')
	case fastjson.TypeArray:
		items, _ := v.Array()
		x.buf = append(x.buf, '[')
		for i, e := range items {
			if i > 0 {
				x.buf = append(x.buf, ',')
			}
			x.value(e, depth+1)
		}
		x.buf = append(x.buf, ']')
	case fastjson.TypeString:
		s := v.GetStringBytes()
		x.exact = x.exact && utf8.Valid(s)
		x.buf = appendJSONString(x.buf, s)
	case fastjson.TypeNumber:
		x.buf = appendJSNumber(x.buf, v)
	default:
		x.buf = v.MarshalTo(x.buf) // true, false, null
	}
}

// appendExactMembers appends what appendExact appends for the object whose members'
// JSON text is members (the text between its braces: valid JSON and UTF-8, with no
// whitespace between tokens), reading the text rather than a parsed tree: strings and
// keys are copied as they are, numbers rewritten only when JavaScript writes them
// differently. ok is false when the text holds what only parsing reads (an escape in a
// string or key) or is not such JSON; the caller then parses it and calls appendExact.
// num parses the numbers to rewrite.
func appendExactMembers(dst, members []byte, num *fastjson.Parser) (out []byte, depth int, exact, ok bool) {
	t := textWriter{src: members, num: num, exactWriter: exactWriter{buf: dst, exact: true}}
	ok = t.object(0, len(members)) && t.i == len(members)
	return t.buf, t.depth, t.exact, ok
}

// textWriter is appendExactMembers' state: src is read from i on.
type textWriter struct {
	exactWriter
	src []byte
	i   int
	num *fastjson.Parser
}

// value copies the value at t.i, nested depth levels deep, as exactWriter.value writes
// its parsed form.
func (t *textWriter) value(depth int) bool {
	t.depth = max(t.depth, depth)
	if depth > maxJSONDepth || t.i >= len(t.src) {
		return false
	}
	switch c := t.src[t.i]; c {
	case '{':
		t.i++
		return t.object(depth, -1)
	case '[':
		t.i++
		return t.array(depth)
	case '"':
		s, ok := t.str()
		t.buf = append(append(append(t.buf, '"'), s...), '"')
		return ok
	case 't', 'f', 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if lit[0] == c && bytes.HasPrefix(t.src[t.i:], []byte(lit)) {
				t.i += len(lit)
				t.buf = append(t.buf, lit...)
				return true
			}
		}
		return false
	}
	return t.number()
}

// object copies the members at t.i, up to its closing brace (the end of src for the
// outermost object, end being len(src) then, -1 otherwise).
func (t *textWriter) object(depth, end int) bool {
	var keys keySet
	t.buf = append(t.buf, '{')
	for n := 0; ; n++ {
		if t.i == end {
			break
		}
		if end < 0 && t.i < len(t.src) && t.src[t.i] == '}' {
			t.i++
			break
		}
		if !t.comma(n) {
			return false
		}
		k, ok := t.str()
		if !ok || t.i >= len(t.src) || t.src[t.i] != ':' {
			return false
		}
		t.i++
		t.exact = t.exact && !isIndexKey(k) && keys.first(k) // UTF-8 already
		t.buf = append(t.buf, '"')
		t.buf = append(t.buf, k...)
		t.buf = append(t.buf, '"', ':')
		if !t.value(depth + 1) {
			return false
		}
	}
	t.buf = append(t.buf, '}')
	return true
}

func (t *textWriter) array(depth int) bool {
	t.buf = append(t.buf, '[')
	for n := 0; ; n++ {
		if t.i < len(t.src) && t.src[t.i] == ']' {
			t.i++
			break
		}
		if !t.comma(n) {
			return false
		}
		if !t.value(depth + 1) {
			return false
		}
	}
	t.buf = append(t.buf, ']')
	return true
}

// comma copies the comma before the n-th member or element (none before the first).
func (t *textWriter) comma(n int) bool {
	if n == 0 {
		return true
	}
	if t.i >= len(t.src) || t.src[t.i] != ',' {
		return false
	}
	t.i++
	t.buf = append(t.buf, ',')
	return true
}

// str reads the string literal at t.i and returns its text, which JSON.stringify writes
// as it is when it holds no escape (ok is false otherwise): the text is valid JSON and
// UTF-8, so it holds no control character and no invalid byte either.
func (t *textWriter) str() (s []byte, ok bool) {
	if t.i >= len(t.src) || t.src[t.i] != '"' {
		return nil, false
	}
	rest := t.src[t.i+1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	t.i += end + 2
	return rest[:end], true
}

// number copies the number at t.i, rewritten as appendJSNumber writes its parsed form
// when it is not an integer JavaScript writes as it is.
func (t *textWriter) number() bool {
	n := jsonx.NumberLen(t.src[t.i:])
	text := t.src[t.i : t.i+n]
	t.i += n
	if n == 0 {
		return false
	}
	if plainInt(text) {
		t.buf = append(t.buf, text...)
		return true
	}
	if i, ok := longInt(text); ok {
		t.buf = appendLongInt(t.buf, i)
		return true
	}
	v, err := t.num.ParseBytes(text)
	if err != nil || v.Type() != fastjson.TypeNumber {
		return false
	}
	t.buf = appendJSNumber(t.buf, v)
	return true
}

// isIndexKey reports whether k is an array index ("0" to "4294967294", no leading zero).
func isIndexKey(k []byte) bool {
	if len(k) == 0 || k[0] < '0' || k[0] > '9' || len(k) > 10 {
		return false
	}
	if k[0] == '0' {
		return len(k) == 1
	}
	n, err := strconv.ParseUint(string(k), 10, 32)
	return err == nil && n < math.MaxUint32
}

func (w *jsonWriter) check() error {
	if len(w.buf)-w.start > w.max {
		return w.tooBig
	}
	return nil
}
