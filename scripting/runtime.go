package scripting

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/defaults"
)

var typePromise = reflect.TypeOf((*goja.Promise)(nil))

var errNoFunctions = errors.New("cannot run lambda: no functions")

// Defaults of RuntimeConfig and Call.
const (
	// DefaultTimeout bounds one lambda call when Call is given no timeout. It is
	// wall-clock time: on a host short of CPU a call can be descheduled past it.
	DefaultTimeout = 50 * time.Millisecond
	// DefaultMaxCallStack is the JavaScript call depth allowed.
	DefaultMaxCallStack = 256
	// DefaultMaxInputBytes caps the event data handed to a lambda (the envelope decoder's
	// own default).
	DefaultMaxInputBytes = 1 << 20
	// maxCachedLambdas bounds the per-Runtime cache of evaluated functions; see
	// lambdaCache.
	maxCachedLambdas = 64
)

// RuntimeConfig configures NewRuntime. A zero field takes its default.
type RuntimeConfig struct {
	// Logger receives console.log/info/debug/warn/error from scripts, with the hook's id
	// as "hook_id". Default slog.Default(). Nothing is ever written to stdout.
	Logger *slog.Logger
	// MaxCallStack is the deepest JavaScript call stack allowed (default 256); deeper
	// recursion fails with "RangeError: Maximum call stack size exceeded".
	MaxCallStack int
	// MaxOutputBytes caps a lambda's JSON result (default 1 MiB): ErrOutputTooLarge.
	MaxOutputBytes int
	// MaxInputBytes caps the event data (default 1 MiB): ErrInputTooLarge.
	//
	// Both byte caps also size the limits of the built-ins that could otherwise allocate
	// or loop without bound in a single, uninterruptible step: strings built by repeat,
	// padStart, padEnd, replace, replaceAll, RegExp [Symbol.replace], join and
	// JSON.stringify may hold at most 4 × max(MaxInputBytes, MaxOutputBytes) characters,
	// and the array methods, array iteration (for…of, spread, new Set), Array.from,
	// String.raw, Function.prototype.apply, Reflect.apply and Reflect.construct refuse
	// arrays and array-likes longer than max(MaxInputBytes, MaxOutputBytes) / 2 elements
	// (a longer array cannot come from the input and cannot fit the output). Exceeding
	// them throws a RangeError the script may catch.
	MaxInputBytes int
}

func (c RuntimeConfig) withDefaults() RuntimeConfig {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	defaults.Positive(&c.MaxCallStack, DefaultMaxCallStack)
	defaults.Positive(&c.MaxOutputBytes, DefaultMaxOutputBytes)
	defaults.Positive(&c.MaxInputBytes, DefaultMaxInputBytes)
	return c
}

// Runtime runs lambdas. It owns one goja VM and is not safe for concurrent use: create one
// per lane goroutine and keep it, because creating one costs far more than a call (see
// BenchmarkLambdaNewRuntime).
//
// # Isolation
//
// The VM is reused across events and hooks, so nothing a script does may survive its
// call. Scripts run in strict mode, so assigning an undeclared name throws. After setup
// the global object is made non-extensible and its properties read-only, and every
// built-in object reachable from it (constructors, prototypes, iterators, console,
// helpers) is frozen: `globalThis.x = 1` and `Array.prototype.x = 1` throw a TypeError
// instead of leaking into the next call. Assigning over an inherited built-in on an
// ordinary object (`err.name = "MyError"`, `obj.toString = f`) still works for the
// common cases, as in SES. Closures created by a function's top level do persist
// between calls on the same Runtime (they belong to that hook), but they are not shared
// between Runtimes or guaranteed to survive: do not rely on them.
//
// # Limits
//
// Every call has a deadline enforced with goja's Interrupt; the call stack is bounded;
// input and output are capped. goja cannot interrupt a built-in while it runs, and has no
// memory limit, so the built-ins that turn one short call into a huge allocation or a
// long native loop are capped (see RuntimeConfig.MaxInputBytes), typed arrays and
// ArrayBuffer are removed, JSON.stringify and JSON.parse are replaced by depth-bounded
// (300 levels) versions, and recursion through the array built-ins is bounded. What
// remains bounded only by the deadline, or not at all: memory grown by plain JavaScript
// in a loop (doubling a string reaches a gigabyte in about 30 steps), and regular
// expressions that need backtracking: goja runs those on regexp2, which its Interrupt
// cannot stop, so each match is bounded by RegexpMatchTimeout instead (a call that
// passed its deadline during one fails with ErrTimeout). Lambdas are configuration
// written by operators; event data, the untrusted part, is bounded by the caps.
type Runtime struct {
	cfg       RuntimeConfig
	vm        *goja.Runtime
	maxString int
	maxArray  int

	// The deadline: timer calls fire, which interrupts vmRef and then signals fired.
	timer   *time.Timer
	fired   chan struct{}
	vmRef   atomic.Pointer[goja.Runtime]
	timeout time.Duration
	armedAt time.Time

	cache    lambdaCache
	parser   fastjson.Parser // event data given as JSON
	calls    uint64          // calls made: see lazyInput
	scratch  []byte          // the JSON of a call's data, before lazyInput copies it
	jsParser fastjson.Parser // JSON.parse in scripts

	// numParser parses the numbers appendExactMembers rewrites, and the empty data of
	// an event without any.
	numParser fastjson.Parser

	// Result serialization, run inside the VM by the serialize native function.
	out        []byte
	jw         jsonWriter
	serialize  goja.Callable
	serEmitted bool
	serErr     error
	strBuf     []byte // JSON.stringify's, kept between calls
	describe   goja.Callable
	described  string

	// Request objects, read by the readReq native function for CallRequest.
	readReq goja.Callable
	req     *Request
	reqOK   bool

	// args holds the arguments of invoke.
	args [3]goja.Value

	objectProto *goja.Object
	rangeError  *goja.Object
	syntaxError *goja.Object
	nativeDepth int

	// Per call.
	hookID string
	fn     int
	lines  int
	// The goja strings for the last event and source names seen.
	lastEvent, lastSource   string
	eventValue, sourceValue goja.Value
}

// NewRuntime creates a Runtime and its VM. Hardening the VM materializes and freezes all
// of goja's built-ins: it takes a few milliseconds and the Runtime keeps about 0.5 MiB.
// Create one per lane, lazily when the lane first runs a lambda, and keep it.
func NewRuntime(cfg RuntimeConfig) *Runtime {
	cfg = cfg.withDefaults()
	rt := &Runtime{cfg: cfg, fired: make(chan struct{}, 1)}
	limit := max(cfg.MaxInputBytes, cfg.MaxOutputBytes)
	rt.maxString = 4 * limit
	rt.maxArray = max(limit/2, 1024)
	rt.cache.max = maxCachedLambdas
	rt.timer = time.AfterFunc(time.Hour, rt.fire)
	rt.timer.Stop()
	rt.setup()
	return rt
}

// fire runs on the timer's goroutine when a call's deadline passes.
func (rt *Runtime) fire() {
	if vm := rt.vmRef.Load(); vm != nil {
		vm.Interrupt(ErrTimeout)
	}
	rt.fired <- struct{}{}
}

// arm starts the deadline of a call.
func (rt *Runtime) arm(d time.Duration) {
	rt.timeout = d
	rt.armedAt = time.Now()
	rt.timer.Reset(d)
}

// disarm stops the deadline and, if it fired, waits for the interrupt to be delivered
// before clearing it, so it cannot hit the next call. It reports whether the call ran
// past its deadline: the timer fired, or would have but for its goroutine running late.
func (rt *Runtime) disarm() (late bool) {
	if !rt.timer.Stop() {
		<-rt.fired
		late = true
	}
	rt.vm.ClearInterrupt()
	return late || lateness(rt.armedAt, rt.timeout)
}

// lateError is the error of a call of l that ran past its deadline (late, from disarm)
// with err: a call that completed, or threw, after its deadline — typically once a
// regular expression was abandoned at RegexpMatchTimeout and read as no match — times
// out, as if the interrupt had stopped it; other errors stand.
func (rt *Runtime) lateError(l *Lambda, late bool, err error) error {
	if !late || (err != nil && !errors.Is(err, ErrThrown)) {
		return err
	}
	return &LambdaError{Index: min(rt.fn, len(l.fns)-1), Message: fmt.Sprintf("timed out after %v", rt.timeout), Err: ErrTimeout}
}

// Call runs lambda l on one event: dataJSON (the event's data) is parsed into a fresh
// JavaScript value (whose objects convert their members lazily: see lazyObject), each
// function is called as fn(data, event, source) with the previous result as data, and
// the final value is returned as JSON ("null" for null or undefined).
// A function may be async: its promise is awaited (it can only settle within the call,
// since there are no timers or I/O).
//
// timeout bounds the whole call (DefaultTimeout when <= 0); running out returns a
// *LambdaError wrapping ErrTimeout, and the Runtime stays usable. A call that completes
// or throws after its deadline (a native step such as a regular expression match cannot
// be interrupted: see RegexpMatchTimeout) times out all the same. A thrown exception
// returns a *LambdaError wrapping ErrThrown with the function's index, the message and
// the position. Oversized input or output return ErrInputTooLarge / ErrOutputTooLarge.
// hookID labels console output. The returned slice is the caller's.
func (rt *Runtime) Call(l *Lambda, hookID string, dataJSON []byte, event, source string, timeout time.Duration) ([]byte, error) {
	if l == nil || len(l.fns) == 0 {
		return nil, errNoFunctions
	}
	data, err := rt.parse(dataJSON)
	if err != nil {
		return nil, err
	}
	in, err := rt.input(parsedData{data})
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rt.hookID, rt.fn, rt.lines = hookID, 0, 0
	rt.arm(timeout)
	out, err := rt.call(l, in, event, source)
	if err = rt.lateError(l, rt.disarm(), err); err != nil {
		out = nil
	}
	rt.hookID = ""
	return out, err
}

// parse parses the event data of a call given as JSON.
func (rt *Runtime) parse(dataJSON []byte) (*fastjson.Value, error) {
	if len(dataJSON) > rt.cfg.MaxInputBytes {
		return nil, fmt.Errorf("cannot run lambda: data is %d bytes, more than %d: %w", len(dataJSON), rt.cfg.MaxInputBytes, ErrInputTooLarge)
	}
	v, err := rt.parser.ParseBytes(dataJSON)
	if err != nil {
		return nil, fmt.Errorf("cannot run lambda: data is not valid JSON: %w", err)
	}
	return v, nil
}

// input makes the event data of a new call (see lazyInput): from the text of its members
// when src has it, so that it is parsed only if a script reads a member.
func (rt *Runtime) input(src Data) (*lazyInput, error) {
	rt.calls++ // the data of earlier calls is gone: their lazy objects must parse again
	var (
		in   *lazyInput
		raw  []byte
		text bool
	)
	if members, ok := src.DataMembers(); ok {
		in, raw, text = newTextInput(rt, src, members, rt.scratch)
	}
	if !text {
		data := src.Data()
		if data == nil { // a hand-built event: fastjson values are not for sharing, even read
			data, _ = rt.numParser.Parse(`{}`)
		}
		in, raw = newLazyInput(rt, data, rt.scratch)
	}
	if cap(raw) <= maxRuntimeScratch {
		rt.scratch = raw[:0]
	}
	if len(in.raw) > rt.cfg.MaxInputBytes {
		return nil, fmt.Errorf("cannot run lambda: data is %d bytes, more than %d: %w", len(in.raw), rt.cfg.MaxInputBytes, ErrInputTooLarge)
	}
	return in, nil
}

// maxRuntimeScratch is the largest scratch buffer a Runtime keeps between calls.
const maxRuntimeScratch = 64 << 10

func (rt *Runtime) call(l *Lambda, data *lazyInput, event, source string) ([]byte, error) {
	v, err := rt.run(l, data, event, source)
	if err != nil {
		return nil, err
	}
	return rt.result(l, v)
}

// run calls the chain and returns its final value.
func (rt *Runtime) run(l *Lambda, data *lazyInput, event, source string) (goja.Value, error) {
	fns, ok := rt.cache.get(l)
	if !ok {
		var err error
		if fns, err = rt.evaluate(l); err != nil {
			return nil, err
		}
		rt.cache.put(l, fns)
	}
	v := data.rootValue()
	ev, src := rt.names(event, source)
	for i, f := range fns {
		rt.fn = i
		res, err := rt.invoke(f, v, ev, src)
		if err != nil {
			return nil, rt.callError(l, i, err)
		}
		if v, err = rt.settle(l, i, res); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// names returns the goja strings for event and source, reusing the previous ones.
func (rt *Runtime) names(event, source string) (goja.Value, goja.Value) {
	if rt.eventValue == nil || event != rt.lastEvent {
		rt.lastEvent, rt.eventValue = event, rt.vm.ToValue(event)
	}
	if rt.sourceValue == nil || source != rt.lastSource {
		rt.lastSource, rt.sourceValue = source, rt.vm.ToValue(source)
	}
	return rt.eventValue, rt.sourceValue
}

// invoke calls f(undefined, args...) with args held in rt.args: a variadic call of a
// goja.Callable would allocate their slice on every call. No function keeps it: goja
// copies arguments onto its stack, and gives native functions a slice of that stack.
func (rt *Runtime) invoke(f goja.Callable, args ...goja.Value) (goja.Value, error) {
	n := copy(rt.args[:], args)
	res, err := f(goja.Undefined(), rt.args[:n]...)
	rt.args = [len(rt.args)]goja.Value{} // keeps no value of the call alive
	return res, err
}

// evaluate runs each function's program in this VM and returns the functions.
func (rt *Runtime) evaluate(l *Lambda) ([]goja.Callable, error) {
	fns := make([]goja.Callable, len(l.fns))
	for i := range l.fns {
		rt.fn = i
		v, err := rt.vm.RunProgram(l.fns[i].prog)
		if err != nil {
			return nil, rt.callError(l, i, err)
		}
		fn, ok := goja.AssertFunction(v)
		if !ok {
			return nil, &LambdaError{Index: i, Message: "does not evaluate to a function"}
		}
		fns[i] = fn
	}
	return fns, nil
}

// settle unwraps the promise an async function returns.
func (rt *Runtime) settle(l *Lambda, i int, v goja.Value) (goja.Value, error) {
	obj, ok := v.(*goja.Object)
	if !ok || obj.ExportType() != typePromise {
		return v, nil
	}
	p, ok := obj.Export().(*goja.Promise)
	if !ok {
		return v, nil
	}
	switch p.State() {
	case goja.PromiseStateFulfilled:
		return p.Result(), nil
	case goja.PromiseStateRejected:
		return nil, &LambdaError{Index: i, Message: "Uncaught (in promise) " + rt.describeValue(p.Result()), Err: ErrThrown}
	}
	return nil, &LambdaError{Index: i, Message: "returned a promise that never settles (there are no timers or I/O)", Err: ErrThrown}
}

// result serializes the final value into a new slice.
func (rt *Runtime) result(l *Lambda, v goja.Value) ([]byte, error) {
	rt.jw = jsonWriter{vm: rt.vm, buf: rt.out[:0], max: rt.cfg.MaxOutputBytes, tooBig: ErrOutputTooLarge}
	rt.serEmitted, rt.serErr = false, nil
	_, err := rt.invoke(rt.serialize, v)
	rt.out, rt.jw = rt.jw.buf, jsonWriter{}
	last := len(l.fns) - 1
	switch {
	case err != nil:
		return nil, rt.callError(l, last, err)
	case errors.Is(rt.serErr, ErrOutputTooLarge):
		return nil, fmt.Errorf("lambda result: %w (%d bytes)", ErrOutputTooLarge, rt.cfg.MaxOutputBytes)
	case rt.serErr != nil:
		return nil, &LambdaError{Index: last, Message: "TypeError: cannot convert the result to JSON: " + rt.serErr.Error(), Err: ErrThrown}
	case !rt.serEmitted:
		return []byte("null"), nil
	}
	return append([]byte(nil), rt.out...), nil
}

// callError turns an error from goja into a *LambdaError for function i.
func (rt *Runtime) callError(l *Lambda, i int, err error) error {
	f := &l.fns[i]
	le := &LambdaError{Index: i, Err: ErrThrown}
	var stack []goja.StackFrame
	var (
		ie *goja.InterruptedError
		so *goja.StackOverflowError
		ex *goja.Exception
	)
	switch {
	case errors.As(err, &ie):
		le.Message, le.Err = fmt.Sprintf("timed out after %v", rt.timeout), ErrTimeout
		stack = ie.Stack()
	case errors.As(err, &so):
		le.Message = "RangeError: Maximum call stack size exceeded"
		stack = so.Stack()
	case errors.As(err, &ex):
		le.Message = rt.describeValue(ex.Value())
		stack = ex.Stack()
	default:
		le.Message = err.Error()
	}
	for k := range stack {
		if stack[k].SrcName() == f.name {
			le.Line, le.Column = f.position(stack[k].Position())
			break
		}
	}
	return le
}

// describeValue renders a thrown value ("TypeError: x is not a function"). Converting an
// object may run its toString, so it runs inside the VM, where goja catches whatever
// that throws.
func (rt *Runtime) describeValue(v goja.Value) string {
	if v == nil {
		return "undefined"
	}
	if _, ok := v.(*goja.Object); !ok {
		return v.String()
	}
	rt.described = ""
	if _, err := rt.invoke(rt.describe, v); err != nil || rt.described == "" {
		return "uncaught exception (its message cannot be read)"
	}
	return rt.described
}

// lambdaCache maps the Lambdas a Runtime has run to their evaluated functions. It keeps
// two generations of at most max entries: a lookup promotes from the old one, and when
// the current one fills up it becomes the old one and the previous old one is dropped.
// So hooks in use stay cached and deleted hooks are forgotten.
type lambdaCache struct {
	max      int
	cur, old map[*Lambda][]goja.Callable
}

func (c *lambdaCache) get(l *Lambda) ([]goja.Callable, bool) {
	if f, ok := c.cur[l]; ok {
		return f, true
	}
	if f, ok := c.old[l]; ok {
		delete(c.old, l)
		c.put(l, f)
		return f, true
	}
	return nil, false
}

func (c *lambdaCache) put(l *Lambda, f []goja.Callable) {
	if c.cur == nil || len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[*Lambda][]goja.Callable, c.max)
	}
	c.cur[l] = f
}

func (c *lambdaCache) len() int { return len(c.cur) + len(c.old) }
