package scripting

import (
	"time"

	"github.com/dop251/goja"
	"github.com/valyala/fastjson"
)

// Request is a request object read straight from a lambda's final value by CallRequest,
// without a JSON round trip. Its strings belong to the caller until the next call on the
// Runtime; Headers is reused between calls.
type Request struct {
	URL       string
	Method    string // "" when absent
	Headers   []string
	Body      string
	HasBody   bool // body is a string (absent, undefined and null mean no body)
	SSLVerify bool // true unless ssl_verify is false
	// HasHeaders reports a headers object (possibly empty).
	HasHeaders bool
}

// Data is the event data of a CallRequest, as hooks.Event holds it: an object, which the
// runtime reads from its text when it can and parses only if a script reads a member.
type Data interface {
	// Data returns the data parsed (nil for none: the data is then {}). It is only
	// read, and only during the call, so the caller may reuse it afterwards.
	Data() *fastjson.Value
	// DataMembers returns the JSON text between the object's braces, with no
	// whitespace between tokens and valid UTF-8, if the caller has it: what Data parses.
	DataMembers() (members []byte, ok bool)
}

// parsedData is Data that is already parsed, without its text.
type parsedData struct{ v *fastjson.Value }

func (d parsedData) Data() *fastjson.Value                  { return d.v }
func (d parsedData) DataMembers() (members []byte, ok bool) { return nil, false }

// CallRequest runs l as Call does. When the final value is a plain request object, one
// whose own enumerable properties are url, method and body (strings; body may be null),
// headers (a plain object of strings) and ssl_verify (a boolean) only, each read once, it
// is read into req and use(req) is called; if use returns true, CallRequest returns
// (nil, true, nil) and no JSON is built. Otherwise — any other value, a property of
// another type or a getter that throws, or use returning false — it returns the value's
// JSON as Call does, with false. A request object read this way serializes to the same
// JSON fields, so use sees what parsing Call's result would give. (A getter on the
// object runs again when the value is serialized after use returns false.)
//
// data is the event data (see Data), read only during the call.
func (rt *Runtime) CallRequest(l *Lambda, hookID string, data Data, event, source string, timeout time.Duration, req *Request, use func(*Request) bool) ([]byte, bool, error) {
	if l == nil || len(l.fns) == 0 {
		return nil, false, errNoFunctions
	}
	in, err := rt.input(data)
	if err != nil {
		return nil, false, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rt.hookID, rt.fn, rt.lines = hookID, 0, 0
	rt.arm(timeout)
	v, err := rt.run(l, in, event, source)
	var out []byte
	used := false
	if err == nil {
		if rt.readRequest(v, req) && use(req) {
			used = true
		} else {
			out, err = rt.result(l, v)
		}
	}
	if err = rt.lateError(l, rt.disarm(), err); err != nil {
		rt.hookID, in.src = "", nil
		return nil, false, err
	}
	rt.hookID, in.src = "", nil
	if used {
		return nil, true, nil
	}
	return out, false, err
}

// readRequest reads v into req when it is a plain request object; it runs inside the VM
// (getters, proxies and interrupts become errors, which mean "not read").
func (rt *Runtime) readRequest(v goja.Value, req *Request) bool {
	obj, ok := v.(*goja.Object)
	if !ok {
		return false
	}
	rt.req, rt.reqOK = req, false
	_, err := rt.invoke(rt.readReq, obj)
	rt.req = nil
	return err == nil && rt.reqOK
}

// plainObject reports whether v is an ordinary object that JSON encodes as its own
// enumerable properties.
func plainObject(v goja.Value) (*goja.Object, bool) {
	obj, ok := v.(*goja.Object)
	if !ok || obj.ClassName() != "Object" {
		return nil, false
	}
	if _, ok := goja.AssertFunction(obj); ok {
		return nil, false
	}
	if t := obj.Get("toJSON"); t != nil && !goja.IsUndefined(t) {
		return nil, false
	}
	return obj, true
}

// fillRequest is the body of the readReq native function.
func (rt *Runtime) fillRequest(v goja.Value) bool {
	obj, ok := plainObject(v)
	if !ok {
		return false
	}
	r := rt.req
	*r = Request{Headers: r.Headers[:0], SSLVerify: true}
	hasURL := false
	for _, k := range obj.Keys() {
		pv := obj.Get(k)
		if pv == nil || goja.IsUndefined(pv) {
			continue // JSON drops it
		}
		switch k {
		case "url":
			if !goja.IsString(pv) {
				return false
			}
			r.URL, hasURL = pv.String(), true
		case "method":
			if !goja.IsString(pv) {
				return false
			}
			r.Method = pv.String()
		case "body":
			switch {
			case goja.IsNull(pv):
			case goja.IsString(pv):
				r.Body, r.HasBody = pv.String(), true
			default:
				return false
			}
		case "ssl_verify":
			b, ok := pv.Export().(bool)
			if !ok {
				return false
			}
			r.SSLVerify = b
		case "headers":
			if goja.IsNull(pv) {
				continue
			}
			h, ok := plainObject(pv)
			if !ok {
				return false
			}
			r.HasHeaders = true
			for _, hk := range h.Keys() {
				hv := h.Get(hk)
				if hv == nil || goja.IsUndefined(hv) {
					continue
				}
				if !goja.IsString(hv) {
					return false
				}
				r.Headers = append(r.Headers, hk, hv.String())
			}
		default:
			return false
		}
	}
	return hasURL
}
