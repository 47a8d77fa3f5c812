package scripting

import (
	"bytes"
	"reflect"
	"slices"

	"github.com/dop251/goja"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// The event data reaches a lambda lazily: each JSON object in it is a goja dynamic object
// (lazyObject) over the parsed JSON, whose members are converted only when a script first
// reads, writes or lists them. JSON.stringify of an object whose own members a script
// never changed writes it straight from the parsed JSON (jsonWriter.members), so a lambda
// that forwards its input (body: JSON.stringify(d)) builds no JavaScript values for it
// at all. Arrays are converted eagerly, the objects in them lazily.
//
// A lazy object behaves as the object JSON.parse would make: the same own enumerable,
// writable, configurable data properties in the same order (array indexes first),
// Object.prototype as its prototype, a stable identity for its members (d.a === d.a,
// and changes to them persist). Being a goja dynamic object, it cannot be made
// non-extensible nor hold accessor, read-only, non-enumerable or symbol-keyed
// properties: Object.freeze, Object.seal, Object.preventExtensions, such an
// Object.defineProperty (including one that leaves an attribute out for a new key: see
// guardDefine) and assigning a symbol key throw a TypeError (Object.isFrozen says
// false). A copy ({...d}, Object.assign({}, d)) is an ordinary object.

var typeLazyObject = reflect.TypeOf((*lazyObject)(nil))

// lazyInput is the event data of one call. Its parsed tree is the caller's, read only
// during the call: a lazy object that a script keeps past its call (in a closure) finds
// its members again in raw, the data's JSON, parsed anew.
type lazyInput struct {
	rt   *Runtime
	call uint64 // the value of rt.calls while root is the caller's
	raw  []byte
	// root is nil for data read from its text until a script reads a member: src
	// parses it then (src is the caller's, for the call only).
	root *fastjson.Value
	src  Data
	own  bool // root was parsed again after the call, into a parser of its own
	// exact: raw is what JSON.stringify writes for the data unchanged (see appendExact),
	// nesting depth levels deep.
	exact bool
	depth int
}

// newLazyInput makes the event data of rt's current call from data, writing its JSON
// into scratch (which it returns, for reuse).
func newLazyInput(rt *Runtime, data *fastjson.Value, scratch []byte) (*lazyInput, []byte) {
	in := &lazyInput{rt: rt, call: rt.calls, root: data}
	raw, depth, exact := appendExact(scratch[:0], data)
	in.raw, in.exact, in.depth = bytes.Clone(raw), exact, depth
	return in, raw
}

// newTextInput makes it from the text of the data's members, as newLazyInput does from
// the parsed data, which src parses if a script reads a member; ok is false when the
// text must be parsed first (see appendExactMembers).
func newTextInput(rt *Runtime, src Data, members, scratch []byte) (in *lazyInput, out []byte, ok bool) {
	raw, depth, exact, ok := appendExactMembers(scratch[:0], members, &rt.numParser)
	if !ok {
		return nil, raw, false
	}
	in = &lazyInput{rt: rt, call: rt.calls, src: src, raw: bytes.Clone(raw), exact: exact, depth: depth}
	return in, raw, true
}

// unchangedJSON returns the JSON of o when JSON.stringify may copy it: o is the data
// itself, exactly written in raw, and none of its members that a script has read is an
// object (one it may have changed). depth is where o is being written.
func (o *lazyObject) unchangedJSON(depth int) ([]byte, bool) {
	in := o.in
	if o.parent != nil || len(o.index) > 0 || !in.exact || depth+in.depth > maxJSONDepth {
		return nil, false
	}
	for _, v := range o.vals {
		if _, isObj := v.(*goja.Object); isObj {
			return nil, false
		}
	}
	return in.raw, true
}

// tree returns the root of the parsed data, parsing it on first use when it was given as
// text, and again once its call is over.
func (in *lazyInput) tree() *fastjson.Value {
	if !in.own && in.call != in.rt.calls {
		var p fastjson.Parser
		in.root, _ = p.ParseBytes(in.raw) // JSON written from parsed JSON or its text
		in.own = true
	}
	if in.root == nil {
		in.root = in.src.Data()
	}
	return in.root
}

// rootValue converts the data for a script. Data given as text is an object, whose node
// its lazy object finds when it first needs it (see lazyObject.tree).
func (in *lazyInput) rootValue() goja.Value {
	if in.root == nil {
		return in.rt.vm.NewDynamicObject(&lazyObject{in: in})
	}
	return in.value(in.root, nil, 0, nil)
}

// value converts v, found at the member-th member of parent (the root when parent is
// nil) then through the arrays at index, for a script.
func (in *lazyInput) value(v *fastjson.Value, parent *lazyObject, member int, index []int) goja.Value {
	vm := in.rt.vm
	switch v.Type() {
	case fastjson.TypeObject:
		o := &lazyObject{in: in, node: v, nodeOwn: in.own, parent: parent, member: member, index: index}
		return vm.NewDynamicObject(o)
	case fastjson.TypeArray:
		return jsArray(vm, v, func(i int, e *fastjson.Value) goja.Value {
			if t := e.Type(); t != fastjson.TypeObject && t != fastjson.TypeArray {
				return jsPrimitive(vm, e)
			}
			return in.value(e, parent, member, append(slices.Clip(index), i))
		})
	}
	return jsPrimitive(vm, v)
}

// lazyObject is the goja DynamicObject of one JSON object of a lazyInput. Reading a
// member of a small object converts that member only, once (vals); anything else — a
// write, a delete, listing the keys, or any access to an object of more than
// jsonx.SmallObject members — converts all members into obj, an ordinary object without a
// prototype (the dynamic object has it) that holds them from then on.
type lazyObject struct {
	in   *lazyInput
	vals []goja.Value // the members read, by position, until obj is made
	obj  *goja.Object // all the members, once converted
	// Whether the parsed keys are plain (see plainKeys): 1 yes, -1 no, 0 not known yet.
	plain int8

	node    *fastjson.Value
	nodeOwn bool // node is in the tree parsed after the call
	// Where node is, to find it in a tree parsed again: the member-th member of parent
	// (the root when parent is nil), then through the arrays at index.
	parent *lazyObject
	member int
	index  []int
}

// lazyOf returns the lazyObject behind v, if v is one.
func lazyOf(v goja.Value) *lazyObject {
	obj, ok := v.(*goja.Object)
	if !ok || obj.ExportType() != typeLazyObject {
		return nil
	}
	o, _ := obj.Export().(*lazyObject)
	return o
}

// asParsed returns the lazy object behind obj when its own members are still as parsed
// (they may have been read) and its prototype is still Object.prototype (frozen,
// without toJSON): it then serializes as its parsed JSON does, but for the members read
// that are objects (see jsonWriter.parsed).
func asParsed(obj *goja.Object) *lazyObject {
	o := lazyOf(obj)
	if o == nil || o.obj != nil || obj.Prototype() != o.in.rt.objectProto {
		return nil
	}
	return o
}

// plainKeys reports plainKeys of the object's JSON, checked once.
func (o *lazyObject) plainKeys() bool {
	if o.plain == 0 {
		o.plain = -1
		if plainKeys(o.tree().GetObject()) {
			o.plain = 1
		}
	}
	return o.plain > 0
}

// tree returns the object's node in the input's current tree.
func (o *lazyObject) tree() *fastjson.Value {
	root := o.in.tree()
	if o.node != nil && o.nodeOwn == o.in.own {
		return o.node
	}
	v := root
	if o.parent != nil {
		v = nthMember(o.parent.tree(), o.member)
	}
	for _, i := range o.index {
		v = v.GetArray()[i]
	}
	o.node, o.nodeOwn = v, o.in.own
	return v
}

// nthMember returns the value of the n-th member of the JSON object v.
func nthMember(v *fastjson.Value, n int) *fastjson.Value {
	var m *fastjson.Value
	i := 0
	v.GetObject().Visit(func(_ []byte, e *fastjson.Value) {
		if i == n {
			m = e
		}
		i++
	})
	return m
}

// lastMember returns the value and the position of the last member named key of the
// JSON object v (JSON.parse keeps the last of duplicates), or nil and -1.
func lastMember(v *fastjson.Value, key string) (*fastjson.Value, int) {
	var m *fastjson.Value
	i, at := 0, -1
	v.GetObject().Visit(func(k []byte, e *fastjson.Value) {
		if string(k) == key {
			m, at = e, i
		}
		i++
	})
	return m, at
}

// object returns all the converted members, converting them on first use.
func (o *lazyObject) object() *goja.Object {
	if o.obj == nil {
		obj := o.in.rt.vm.NewObject()
		_ = obj.SetPrototype(nil) // cannot fail on a fresh object
		defineMembers(obj, o.tree(), func(i int, e *fastjson.Value) goja.Value {
			if v := memberAt(o.vals, i); v != nil {
				return v
			}
			return o.in.value(e, o, i, nil)
		})
		o.obj, o.vals = obj, nil
	}
	return o.obj
}

// read returns member i (e) of a small object, converted once.
func (o *lazyObject) read(i int, e *fastjson.Value) goja.Value {
	if o.vals == nil {
		o.vals = make([]goja.Value, o.tree().GetObject().Len())
	}
	if o.vals[i] == nil {
		o.vals[i] = o.in.value(e, o, i, nil)
	}
	return o.vals[i]
}

// small reports whether members are read one by one: a lookup scans the object, and
// compares keys as goja would only when they are plain (goja replaces invalid UTF-8).
func (o *lazyObject) small() bool {
	return o.obj == nil && o.tree().GetObject().Len() <= jsonx.SmallObject && o.plainKeys()
}

// Get implements goja.DynamicObject.
func (o *lazyObject) Get(key string) goja.Value {
	if !o.small() {
		return o.object().Get(key)
	}
	if e, i := lastMember(o.tree(), key); e != nil {
		return o.read(i, e)
	}
	return nil
}

// Set implements goja.DynamicObject.
func (o *lazyObject) Set(key string, v goja.Value) bool { return o.object().Set(key, v) == nil }

// Has implements goja.DynamicObject: obj has no prototype, so Get finds own properties
// only (a property set to undefined is undefined, not nil).
func (o *lazyObject) Has(key string) bool {
	if !o.small() {
		return o.object().Get(key) != nil
	}
	_, i := lastMember(o.tree(), key)
	return i >= 0
}

// Delete implements goja.DynamicObject.
func (o *lazyObject) Delete(key string) bool { return o.object().Delete(key) == nil }

// Keys implements goja.DynamicObject.
func (o *lazyObject) Keys() []string { return o.object().Keys() }
