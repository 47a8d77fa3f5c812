package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
	"github.com/valyala/fastjson"
)

// Built-ins removed from the VM: typed arrays allocate their whole length at once
// (new Uint8Array(1e9) is a gigabyte in one uninterruptible step), and nothing a webhook
// lambda does needs binary buffers.
var removedGlobals = []string{
	"ArrayBuffer", "SharedArrayBuffer", "DataView",
	"Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
	"Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array",
	"BigUint64Array", "WeakRef", "FinalizationRegistry",
}

// maxNativeDepth bounds recursion through the wrapped array built-ins (join calling
// toString calling join on a nested array, flat, toLocaleString…), which goja runs as Go
// recursion outside the JavaScript call-stack limit.
const maxNativeDepth = 512

// maxKeptBuffer bounds the JSON.stringify buffer a Runtime keeps between calls.
const maxKeptBuffer = 64 << 10

// maxConsoleLines and maxConsoleBytes bound what one call may log.
const (
	maxConsoleLines = 64
	maxConsoleBytes = 4 << 10
)

// setup creates the VM: limits, capped built-ins, console, helpers, then hardening.
func (rt *Runtime) setup() {
	vm := goja.New()
	rt.vm = vm
	vm.SetParserOptions(parser.WithDisableSourceMaps) // eval/Function must not read files
	vm.SetMaxCallStackSize(rt.cfg.MaxCallStack)
	g := vm.GlobalObject()
	for _, name := range removedGlobals {
		_ = g.Delete(name)
	}
	rt.objectProto = g.Get("Object").ToObject(vm).Get("prototype").ToObject(vm)
	rt.rangeError = g.Get("RangeError").ToObject(vm)
	rt.syntaxError = g.Get("SyntaxError").ToObject(vm)

	rt.serialize = rt.native(func(call goja.FunctionCall) goja.Value {
		rt.serEmitted, rt.serErr = rt.jw.value("", call.Argument(0), 0)
		return goja.Undefined()
	})
	rt.readReq = rt.native(func(call goja.FunctionCall) goja.Value {
		rt.reqOK = rt.fillRequest(call.Argument(0))
		return goja.Undefined()
	})
	rt.describe = rt.native(func(call goja.FunctionCall) goja.Value {
		rt.described = call.Argument(0).String()
		return goja.Undefined()
	})

	match := rt.capStrings(g.Get("String").ToObject(vm))
	rt.capRegExp(g.Get("RegExp").ToObject(vm), match)
	rt.capArrays(g.Get("Array").ToObject(vm))
	rt.capApply(g)
	rt.guardDefine(g)
	rt.replaceJSON(g.Get("JSON").ToObject(vm))
	rt.installConsole(g)
	rt.installHelpers(g)

	if _, err := vm.RunProgram(hardenProgram); err != nil {
		// The hardening script is ours and runs on a fresh VM: failing is a bug.
		panic(fmt.Sprintf("scripting: cannot harden the JavaScript runtime: %v", err))
	}
	rt.vmRef.Store(vm)
}

// native wraps a Go function as a goja Callable, so that it runs inside the VM: goja then
// turns whatever JavaScript it triggers (getters, toJSON, toString) and throws, or an
// interrupt, into an error instead of a panic.
func (rt *Runtime) native(f func(goja.FunctionCall) goja.Value) goja.Callable {
	fn, _ := goja.AssertFunction(rt.vm.ToValue(f))
	return fn
}

// define installs f as a method (writable, configurable, not enumerable, like built-ins)
// with the given name and length.
func (rt *Runtime) define(obj *goja.Object, name string, length int, f func(goja.FunctionCall) goja.Value) {
	fn := rt.vm.ToValue(f).ToObject(rt.vm)
	_ = fn.DefineDataProperty("name", rt.vm.ToValue(name), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = fn.DefineDataProperty("length", rt.vm.ToValue(length), goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_FALSE)
	_ = obj.DefineDataProperty(name, fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// original returns a built-in method's Go implementation.
func original(obj *goja.Object, name string) (func(goja.FunctionCall) goja.Value, int) {
	v := obj.Get(name)
	fo, ok := v.(*goja.Object)
	if !ok {
		return nil, 0
	}
	f, _ := fo.Export().(func(goja.FunctionCall) goja.Value)
	return f, int(fo.Get("length").ToInteger())
}

// throwRange throws a RangeError into the script.
func (rt *Runtime) throwRange(format string, args ...any) {
	obj, err := rt.vm.New(rt.rangeError, rt.vm.ToValue(fmt.Sprintf(format, args...)))
	if err != nil {
		panic(rt.vm.NewTypeError(fmt.Sprintf(format, args...)))
	}
	panic(obj)
}

func strLen(v goja.Value) int {
	if s, ok := v.ToString().(goja.String); ok {
		return s.Length()
	}
	return len(v.String())
}

// capStrings wraps the String methods whose result can be much longer than their inputs,
// and returns the original String.prototype.match.
func (rt *Runtime) capStrings(ctor *goja.Object) func(goja.FunctionCall) goja.Value {
	proto := ctor.Get("prototype").ToObject(rt.vm)
	if repeat, n := original(proto, "repeat"); repeat != nil {
		rt.define(proto, "repeat", n, func(call goja.FunctionCall) goja.Value {
			count := call.Argument(0).ToFloat()
			if l := strLen(call.This); count >= 1 && float64(l)*count > float64(rt.maxString) {
				rt.throwRange("Invalid string length: repeat would build %.0f characters, the limit is %d", float64(l)*count, rt.maxString)
			}
			return repeat(call)
		})
	}
	for _, name := range []string{"padStart", "padEnd"} {
		pad, n := original(proto, name)
		if pad == nil {
			continue
		}
		rt.define(proto, name, n, func(call goja.FunctionCall) goja.Value {
			if target := call.Argument(0).ToFloat(); target > float64(rt.maxString) {
				rt.throwRange("Invalid string length: %s to %.0f characters, the limit is %d", name, target, rt.maxString)
			}
			return pad(call)
		})
	}
	match, _ := original(proto, "match")
	for _, name := range []string{"replace", "replaceAll"} {
		replace, n := original(proto, name)
		if replace == nil {
			continue
		}
		all := name == "replaceAll"
		rt.define(proto, name, n, func(call goja.FunctionCall) goja.Value {
			// A RegExp pattern is checked by RegExp.prototype[Symbol.replace], which
			// replace calls.
			if re, ok := call.Argument(0).(*goja.Object); !ok || re.ClassName() != "RegExp" {
				rt.checkReplace(call.This, call.Argument(0), call.Argument(1), all, match)
			}
			return replace(call)
		})
	}
	// String.raw walks raw.length, which an array-like can make huge.
	if raw, n := original(ctor, "raw"); raw != nil {
		rt.define(ctor, "raw", n, func(call goja.FunctionCall) goja.Value {
			if strs, ok := call.Argument(0).(*goja.Object); ok {
				rt.checkLength(strs.Get("raw"))
			}
			return raw(call)
		})
	}
	return match
}

// capRegExp wraps RegExp.prototype[Symbol.replace], which String.prototype.replace calls
// for a RegExp pattern and scripts may call directly.
func (rt *Runtime) capRegExp(ctor *goja.Object, match func(goja.FunctionCall) goja.Value) {
	proto := ctor.Get("prototype").ToObject(rt.vm)
	fo, ok := proto.GetSymbol(goja.SymReplace).(*goja.Object)
	if !ok {
		return
	}
	replace, ok := fo.Export().(func(goja.FunctionCall) goja.Value)
	if !ok {
		return
	}
	fn := rt.vm.ToValue(func(call goja.FunctionCall) goja.Value {
		rt.checkReplace(call.Argument(0), call.This, call.Argument(1), false, match)
		return replace(call)
	})
	_ = proto.DefineDataPropertySymbol(goja.SymReplace, fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

// checkReplace throws when replacing pattern in subject with a string replacement could
// build a string over the limit: each match may insert the replacement, and each "$"
// pattern in it ($&, $`, $') up to the whole subject. A function replacement runs
// JavaScript per match, which the deadline bounds.
func (rt *Runtime) checkReplace(subject, pattern, repl goja.Value, all bool, match func(goja.FunctionCall) goja.Value) {
	if _, ok := goja.AssertFunction(repl); ok {
		return
	}
	l, rl, dollars := float64(strLen(subject)), float64(strLen(repl)), float64(strings.Count(repl.String(), "$"))
	limit := float64(rt.maxString)
	perMatch := rl + dollars*l
	if l+(l+1)*perMatch <= limit {
		return
	}
	matches := 1.0
	if re, ok := pattern.(*goja.Object); ok && re.ClassName() == "RegExp" {
		if strings.Contains(re.Get("flags").String(), "g") && match != nil {
			m := match(goja.FunctionCall{This: subject, Arguments: []goja.Value{pattern}})
			matches = 0
			if arr, ok := m.(*goja.Object); ok {
				matches = float64(arr.Get("length").ToInteger())
			}
		}
	} else if all {
		if p := pattern.String(); p == "" {
			matches = l + 1
		} else {
			matches = float64(strings.Count(subject.String(), p))
		}
	}
	if l+matches*perMatch > limit {
		rt.throwRange("Invalid string length: the replacement could build %.0f characters, the limit is %d", l+matches*perMatch, rt.maxString)
	}
}

// capArrays wraps every Array.prototype method (and Array.from) with a length check, and
// join with a check of the separator's contribution. A sparse array is cheap to make
// (a.length = 1e9) and every built-in walks its whole length in Go, uninterruptibly.
func (rt *Runtime) capArrays(ctor *goja.Object) {
	proto := ctor.Get("prototype").ToObject(rt.vm)
	for _, name := range proto.GetOwnPropertyNames() {
		if name == "constructor" {
			continue
		}
		orig, n := original(proto, name)
		if orig == nil {
			continue
		}
		join := name == "join"
		concat := name == "concat"
		rt.define(proto, name, n, func(call goja.FunctionCall) goja.Value {
			length := rt.checkLength(call.This)
			if join && length > 1 {
				if sep := call.Argument(0); !goja.IsUndefined(sep) {
					if float64(strLen(sep))*float64(length-1) > float64(rt.maxString) {
						rt.throwRange("Invalid string length: join would build more than %d characters", rt.maxString)
					}
				}
			}
			if concat {
				for _, a := range call.Arguments {
					rt.checkLength(a)
				}
			}
			rt.nativeDepth++
			defer func() { rt.nativeDepth-- }()
			if rt.nativeDepth > maxNativeDepth {
				rt.throwRange("Maximum call stack size exceeded")
			}
			return orig(call)
		})
	}
	// [Symbol.iterator] feeds for…of, spread, new Set(a), Object.fromEntries(a)…: check
	// the length where the iteration starts.
	if it, ok := proto.GetSymbol(goja.SymIterator).(*goja.Object); ok {
		if orig, ok := it.Export().(func(goja.FunctionCall) goja.Value); ok {
			fn := rt.vm.ToValue(func(call goja.FunctionCall) goja.Value {
				rt.checkLength(call.This)
				return orig(call)
			})
			_ = proto.DefineDataPropertySymbol(goja.SymIterator, fn, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
		}
	}
	if from, n := original(ctor, "from"); from != nil {
		rt.define(ctor, "from", n, func(call goja.FunctionCall) goja.Value {
			rt.checkLength(call.Argument(0))
			return from(call)
		})
	}
}

// checkLength throws when v is an object whose length is over the array limit, and
// returns the length.
func (rt *Runtime) checkLength(v goja.Value) int64 {
	obj, ok := v.(*goja.Object)
	if !ok {
		return 0
	}
	n := obj.Get("length")
	if n == nil || goja.IsUndefined(n) {
		return 0
	}
	length := n.ToInteger()
	if length > int64(rt.maxArray) {
		rt.throwRange("Invalid array length: %d elements, the limit is %d", length, rt.maxArray)
	}
	return length
}

// capApply bounds the array-likes spread into arguments by Function.prototype.apply,
// Reflect.apply and Reflect.construct (f.apply(null, {length: 1e9}) allocates 1e9
// values at once).
func (rt *Runtime) capApply(g *goja.Object) {
	fproto := g.Get("Function").ToObject(rt.vm).Get("prototype").ToObject(rt.vm)
	if apply, n := original(fproto, "apply"); apply != nil {
		rt.define(fproto, "apply", n, func(call goja.FunctionCall) goja.Value {
			rt.checkLength(call.Argument(1))
			return apply(call)
		})
	}
	reflect := g.Get("Reflect").ToObject(rt.vm)
	if apply, n := original(reflect, "apply"); apply != nil {
		rt.define(reflect, "apply", n, func(call goja.FunctionCall) goja.Value {
			rt.checkLength(call.Argument(2))
			return apply(call)
		})
	}
	if construct, n := original(reflect, "construct"); construct != nil {
		rt.define(reflect, "construct", n, func(call goja.FunctionCall) goja.Value {
			rt.checkLength(call.Argument(1))
			return construct(call)
		})
	}
}

// guardDefine wraps Object.defineProperty, Object.defineProperties and
// Reflect.defineProperty for lazy objects (the event data), which hold only writable,
// enumerable, configurable data properties: defining a new property whose descriptor
// leaves one of these attributes out (false by default) throws a TypeError, where goja
// would silently make it true. goja itself throws for the other descriptors they
// cannot hold.
func (rt *Runtime) guardDefine(g *goja.Object) {
	wrap := func(obj *goja.Object, name string, check func(goja.FunctionCall)) {
		if orig, n := original(obj, name); orig != nil {
			rt.define(obj, name, n, func(call goja.FunctionCall) goja.Value {
				check(call)
				return orig(call)
			})
		}
	}
	one := func(call goja.FunctionCall) { rt.checkDefine(call.Argument(0), call.Argument(1), call.Argument(2)) }
	object := g.Get("Object").ToObject(rt.vm)
	wrap(object, "defineProperty", one)
	wrap(g.Get("Reflect").ToObject(rt.vm), "defineProperty", one)
	wrap(object, "defineProperties", func(call goja.FunctionCall) {
		props, ok := call.Argument(1).(*goja.Object)
		if !ok || lazyOf(call.Argument(0)) == nil {
			return
		}
		for _, k := range props.Keys() {
			rt.checkDefine(call.Argument(0), rt.vm.ToValue(k), props.Get(k))
		}
	})
}

// checkDefine throws when defining key on target as desc says would need an attribute
// a lazy object cannot hold.
func (rt *Runtime) checkDefine(target, key, desc goja.Value) {
	o := lazyOf(target)
	d, ok := desc.(*goja.Object)
	if _, sym := key.(*goja.Symbol); o == nil || !ok || sym {
		return
	}
	// goja rejects accessors itself, and redefining a key keeps its attributes.
	if o.Has(key.String()) || d.Get("get") != nil || d.Get("set") != nil {
		return
	}
	for _, attr := range [...]string{"writable", "enumerable", "configurable"} {
		if d.Get(attr) == nil {
			panic(rt.vm.NewTypeError("Cannot define property " + key.String() + " of the event data without " + attr + ": true (it holds plain properties only; copy it first: {...d})"))
		}
	}
}

// replaceJSON swaps JSON.stringify and JSON.parse for depth-bounded versions. With a
// replacer, indentation or a reviver the original runs, after the bounded version has
// checked the value.
func (rt *Runtime) replaceJSON(j *goja.Object) {
	stringify, _ := original(j, "stringify")
	rt.define(j, "stringify", 3, func(call goja.FunctionCall) goja.Value {
		// The buffer is taken while in use: a toJSON method may call JSON.stringify.
		w := jsonWriter{vm: rt.vm, buf: rt.strBuf[:0], max: rt.maxString, tooBig: errTooLong}
		rt.strBuf = nil
		emitted, err := w.value("", call.Argument(0), 0)
		if cap(w.buf) <= maxKeptBuffer {
			defer func() { rt.strBuf = w.buf }()
		}
		switch {
		case err == errTooLong:
			rt.throwRange("Invalid string length: JSON.stringify would build more than %d characters", rt.maxString)
		case err != nil:
			panic(rt.vm.NewTypeError("JSON.stringify: " + err.Error()))
		}
		if len(call.Arguments) > 1 && stringify != nil && (!isNullish(call.Argument(1)) || !isNullish(call.Argument(2))) {
			return stringify(call)
		}
		if !emitted {
			return goja.Undefined()
		}
		return rt.vm.ToValue(string(w.buf))
	})
	parse, _ := original(j, "parse")
	rt.define(j, "parse", 2, func(call goja.FunctionCall) goja.Value {
		text := call.Argument(0).String()
		// Parse bounds the depth but accepts more than JSON (NaN, 01, "\x"); Validate is
		// strict but recurses without a limit, so it runs second.
		v, err := rt.jsParser.Parse(text)
		if err == nil {
			err = fastjson.Validate(text)
		}
		if err != nil {
			obj, nerr := rt.vm.New(rt.syntaxError, rt.vm.ToValue("JSON.parse: "+err.Error()))
			if nerr != nil {
				panic(rt.vm.NewTypeError("JSON.parse: " + err.Error()))
			}
			panic(obj)
		}
		if _, ok := goja.AssertFunction(call.Argument(1)); ok && parse != nil {
			return parse(call) // the depth is known to be bounded now
		}
		return toJS(rt.vm, v)
	})
}

func isNullish(v goja.Value) bool { return v == nil || goja.IsUndefined(v) || goja.IsNull(v) }

// installConsole provides console.log/info/debug/warn/error, logging to cfg.Logger with
// the hook id and the function index, at most maxConsoleLines lines of maxConsoleBytes
// per call.
func (rt *Runtime) installConsole(g *goja.Object) {
	console := rt.vm.NewObject()
	for name, level := range map[string]slog.Level{
		"log": slog.LevelInfo, "info": slog.LevelInfo, "debug": slog.LevelDebug,
		"warn": slog.LevelWarn, "error": slog.LevelError,
	} {
		rt.define(console, name, 0, func(call goja.FunctionCall) goja.Value {
			rt.consoleLog(level, call.Arguments)
			return goja.Undefined()
		})
	}
	_ = g.DefineDataProperty("console", console, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func (rt *Runtime) consoleLog(level slog.Level, args []goja.Value) {
	ctx := context.Background()
	if !rt.cfg.Logger.Enabled(ctx, level) {
		return
	}
	rt.lines++
	switch {
	case rt.lines == maxConsoleLines+1:
		rt.cfg.Logger.Warn("lambda console output truncated", "hook_id", rt.hookID, "function", rt.fn, "max_lines", maxConsoleLines)
		return
	case rt.lines > maxConsoleLines:
		return
	}
	var b []byte
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = rt.appendConsoleArg(b, a)
		if len(b) > maxConsoleBytes {
			b = append(b[:maxConsoleBytes], "…"...)
			break
		}
	}
	rt.cfg.Logger.Log(ctx, level, string(b), "hook_id", rt.hookID, "function", rt.fn)
}

func (rt *Runtime) appendConsoleArg(b []byte, v goja.Value) []byte {
	switch {
	case v == nil || goja.IsUndefined(v):
		return append(b, "undefined"...)
	case goja.IsString(v):
		return append(b, v.String()...)
	}
	if _, ok := goja.AssertFunction(v); ok {
		return append(b, "[Function]"...)
	}
	if _, ok := v.(*goja.Object); !ok {
		return append(b, v.String()...)
	}
	w := jsonWriter{vm: rt.vm, buf: b, start: len(b), max: maxConsoleBytes, tooBig: errTooLong}
	if _, err := w.value("", v, 0); err != nil && err != errTooLong {
		return append(b, "[Object]"...)
	}
	return w.buf
}

// installHelpers provides the helpers JavaScript lacks, shared with templates:
// helpers.b64enc, b64dec, hmac_sha256, sha256, now, unix_now.
func (rt *Runtime) installHelpers(g *goja.Object) {
	h := rt.vm.NewObject()
	str := func(f func(string) string) func(goja.FunctionCall) goja.Value {
		return func(call goja.FunctionCall) goja.Value { return rt.vm.ToValue(f(argString(call, 0))) }
	}
	rt.define(h, "b64enc", 1, str(func(s string) string { return b64enc(s) }))
	rt.define(h, "sha256", 1, str(func(s string) string { return sha256Hex(s) }))
	rt.define(h, "b64dec", 1, func(call goja.FunctionCall) goja.Value {
		s, err := b64dec(argString(call, 0))
		if err != nil {
			panic(rt.vm.NewTypeError(err.Error()))
		}
		return rt.vm.ToValue(s)
	})
	rt.define(h, "hmac_sha256", 2, func(call goja.FunctionCall) goja.Value {
		return rt.vm.ToValue(hmacSHA256(argString(call, 0), argString(call, 1)))
	})
	rt.define(h, "now", 0, func(goja.FunctionCall) goja.Value { return rt.vm.ToValue(nowRFC3339()) })
	rt.define(h, "unix_now", 0, func(goja.FunctionCall) goja.Value { return rt.vm.ToValue(unixNow()) })
	_ = g.DefineDataProperty("helpers", h, goja.FLAG_TRUE, goja.FLAG_TRUE, goja.FLAG_FALSE)
}

func argString(call goja.FunctionCall, i int) string {
	v := call.Argument(i)
	if goja.IsUndefined(v) || goja.IsNull(v) {
		return ""
	}
	return v.String()
}

// hardenProgram freezes every built-in reachable from the global object (and the hidden
// intrinsics: iterator and generator prototypes), keeping assignment over common
// inherited properties working on ordinary objects (SES's "override mistake" fix), then
// freezes the global object itself.
var hardenProgram = goja.MustCompile("harden", `
(function () {
  'use strict';
  const { getOwnPropertyNames, getOwnPropertySymbols, getOwnPropertyDescriptor,
          getPrototypeOf, defineProperty, freeze } = Object;
  const hasOwn = Object.prototype.hasOwnProperty;
  const call = Function.prototype.call.bind(hasOwn);

  // Keep o.key = v working on objects that inherit key from a frozen prototype.
  function override(obj, key) {
    const d = getOwnPropertyDescriptor(obj, key);
    if (!d || !('value' in d) || !d.configurable) return;
    const value = d.value;
    defineProperty(obj, key, {
      get() { return value; },
      set(v) {
        if (this === obj) {
          throw new TypeError("Cannot assign to read only property '" + String(key) + "' of a built-in object");
        }
        if (call(this, key)) {
          this[key] = v;
        } else {
          defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
        }
      },
      enumerable: d.enumerable,
      configurable: true,
    });
  }
  // Indexed loops throughout: for…of would create an iterator result per step, which
  // made this script several times slower (it runs once per Runtime).
  const opNames = getOwnPropertyNames(Object.prototype);
  for (let i = 0; i < opNames.length; i++) {
    if (opNames[i] !== '__proto__') override(Object.prototype, opNames[i]);
  }
  const errors = [Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError];
  const errorKeys = ['constructor', 'name', 'message', 'toString'];
  for (let i = 0; i < errors.length; i++) {
    for (let j = 0; j < errorKeys.length; j++) override(errors[i].prototype, errorKeys[j]);
  }
  override(Function.prototype, 'constructor');
  override(Array.prototype, 'constructor');
  override(Function.prototype, 'toString');
  override(Array.prototype, 'toString');
  override(Promise.prototype, 'constructor');

  const seen = new Set();
  const all = []; // every object seen, in order: the queue of the walk
  function add(v) {
    if ((typeof v === 'object' && v !== null) || typeof v === 'function') {
      if (!seen.has(v)) { seen.add(v); all[all.length] = v; }
    }
  }
  function addKeys(o, keys) {
    for (let i = 0; i < keys.length; i++) {
      const d = getOwnPropertyDescriptor(o, keys[i]);
      if (d) { add(d.value); add(d.get); add(d.set); }
    }
  }
  function addProps(o) {
    addKeys(o, getOwnPropertyNames(o));
    addKeys(o, getOwnPropertySymbols(o));
  }
  add(globalThis);
  const hidden = [
    () => getPrototypeOf(function* () {}),
    () => getPrototypeOf((function* () {})()),
    () => getPrototypeOf(async function () {}),
    () => getPrototypeOf([][Symbol.iterator]()),
    () => getPrototypeOf(new Map()[Symbol.iterator]()),
    () => getPrototypeOf(new Set()[Symbol.iterator]()),
    () => getPrototypeOf(''[Symbol.iterator]()),
    () => getPrototypeOf(/a/[Symbol.matchAll]('a')),
    () => getOwnPropertyDescriptor(Function.prototype, 'caller').get,
    () => (function () { return getOwnPropertyDescriptor(arguments, 'callee').get; })(),
  ];
  for (let i = 0; i < hidden.length; i++) {
    try { add(hidden[i]()); } catch (e) { /* not supported by this goja version */ }
  }
  for (let i = 0; i < all.length; i++) {
    addProps(all[i]);
    add(getPrototypeOf(all[i]));
  }
  for (let i = 0; i < all.length; i++) freeze(all[i]);
})();
`, true)
