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
		out, read, err := rt.CallRequest(l, "h", parsedData{fastjson.MustParse(`{"a":1}`)}, "e", "s", time.Second, &req, accept)
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
	if _, _, err := rt.CallRequest(l, "h", parsedData{fastjson.MustParse(`{"a":1}`)}, "e", "s", time.Second, &req, accept); err != nil {
		t.Fatal(err)
	}
	if req.URL != "http://x/1" || req.Method != "put" || req.Body != `{"a":1}` || !req.HasBody || req.SSLVerify ||
		len(req.Headers) != 2 || req.Headers[0] != "x-a" || req.Headers[1] != "1" {
		t.Errorf("read %+v", req)
	}
	// use refusing the request gets the JSON.
	out, read, err := rt.CallRequest(l, "h", parsedData{fastjson.MustParse(`{"a":1}`)}, "e", "s", time.Second, &req, func(*Request) bool { return false })
	if err != nil || read || string(out) != `{"url":"http://x/1","method":"put","headers":{"x-a":"1"},"body":"{\"a\":1}","ssl_verify":false}` {
		t.Errorf("refused: %s, %v, %v", out, read, err)
	}
}

// textData is Data as hooks.Event holds a compact record's: the text of the members,
// parsed when asked (parses counts the times).
type textData struct {
	members []byte
	p       fastjson.Parser
	parses  int
}

func (d *textData) Data() *fastjson.Value {
	d.parses++
	v, err := d.p.Parse("{" + string(d.members) + "}")
	if err != nil {
		panic(err) // the test's data is JSON
	}
	return v
}

func (d *textData) DataMembers() ([]byte, bool) { return d.members, true }

// TestCallRequestText runs lambdas on data given as text: the same results as on the
// parsed data, which is parsed only when a member is read.
func TestCallRequestText(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	accept := func(*Request) bool { return false }
	members := `"a":1,"ts":1795000000123456789,"s":"é","o":{"x":[1.50,{"y":null}]},"b":true`
	for _, c := range []struct {
		src    string
		parses int
	}{
		{`(d) => ({url: "http://x/", body: JSON.stringify(d)})`, 0},
		{`(d) => d`, 1}, // read as a request object
		{`(d) => ({url: "http://x/" + d.a, body: JSON.stringify(d)})`, 1},
		{`(d) => { d.o.x[1].y = 2; return JSON.stringify(d) }`, 1},
		{`(d) => Object.keys(d).concat(Object.keys(d.o))`, 1},
	} {
		l := mustLambda(t, c.src)
		want, _, err := rt.CallRequest(l, "h", parsedData{fastjson.MustParse("{" + members + "}")}, "e", "s", time.Second, &Request{}, accept)
		if err != nil {
			t.Fatal(err)
		}
		data := &textData{members: []byte(members)}
		got, _, err := rt.CallRequest(l, "h", data, "e", "s", time.Second, &Request{}, accept)
		if err != nil || string(got) != string(want) || data.parses != c.parses {
			t.Errorf("%s: got %s, %v, %d parses; want %s, %d parses", c.src, got, err, data.parses, want, c.parses)
		}
	}
}
