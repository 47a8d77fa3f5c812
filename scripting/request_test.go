package scripting

import (
	"github.com/valyala/fastjson"

	"testing"
	"time"
)

func TestCallRequest(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	accept := func(*Request) bool { return true }
	cases := []struct {
		src  string
		read bool
		json string
	}{
		{`(d) => ({url: "http://x/" + d.a, method: "put", headers: {"x-a": "1", "x-u": undefined}, body: JSON.stringify(d), ssl_verify: false, extra: undefined})`, true, ""},
		{`(d) => ({url: "http://x/", body: null, headers: null})`, true, ""},
		{`(d) => ({url: "http://x/", headers: {"x-n": 1}})`, false, `{"url":"http://x/","headers":{"x-n":1}}`},
		{`(d) => ({url: "http://x/", body: {a: 1}})`, false, `{"url":"http://x/","body":{"a":1}}`},
		{`(d) => ({url: "http://x/", other: 1})`, false, `{"url":"http://x/","other":1}`},
		{`(d) => ({url: "http://x/", toJSON() { return 7 }})`, false, `7`},
		{`(d) => ({body: "b"})`, false, `{"body":"b"}`},
		{`(d) => [{url: "http://x/"}]`, false, `[{"url":"http://x/"}]`},
		{`(d) => null`, false, `null`},
		{`(d) => ({url: "http://x/", get body() { throw new Error("no") }})`, false, ""},
	}
	for _, c := range cases {
		l := mustLambda(t, c.src)
		var req Request
		out, read, err := rt.CallRequest(l, "h", fastjson.MustParse(`{"a":1}`), "e", "s", time.Second, &req, accept)
		if c.json == "" && !c.read {
			if err == nil {
				t.Errorf("%s: want an error, got %s", c.src, out)
			}
			continue
		}
		if err != nil || read != c.read || string(out) != c.json {
			t.Errorf("%s: got %q, %v, %v; want %q, %v", c.src, out, read, err, c.json, c.read)
		}
	}
	var req Request
	l := mustLambda(t, cases[0].src)
	if _, _, err := rt.CallRequest(l, "h", fastjson.MustParse(`{"a":1}`), "e", "s", time.Second, &req, accept); err != nil {
		t.Fatal(err)
	}
	if req.URL != "http://x/1" || req.Method != "put" || req.Body != `{"a":1}` || !req.HasBody || req.SSLVerify ||
		len(req.Headers) != 2 || req.Headers[0] != "x-a" || req.Headers[1] != "1" {
		t.Errorf("read %+v", req)
	}
	// use refusing the request gets the JSON.
	out, read, err := rt.CallRequest(l, "h", fastjson.MustParse(`{"a":1}`), "e", "s", time.Second, &req, func(*Request) bool { return false })
	if err != nil || read || string(out) != `{"url":"http://x/1","method":"put","headers":{"x-a":"1"},"body":"{\"a\":1}","ssl_verify":false}` {
		t.Errorf("refused: %s, %v, %v", out, read, err)
	}
}
