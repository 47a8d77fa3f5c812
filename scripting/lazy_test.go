package scripting

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// lazyData has an array index key (listed first), nesting through arrays, and every kind
// of value.
const lazyData = `{"b":1,"a":{"x":[1,{"y":2},[{"z":3}]]},"s":"str","2":"two","n":null,"t":true,"f":1.5,"big":12345678901234567890}`

// lazyBigData has more than jsonx.SmallObject members, which convert all at once.
var lazyBigData = `{"k0":0,` + strings.Repeat(`"k":{"a":1},`, 20) + lazyData[1:]

// TestLazyObjectMatchesEager runs each expression on the lazy input and on the same data
// made by JSON.parse (an ordinary object): the results must be the same.
func TestLazyObjectMatchesEager(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	for _, expr := range []string{
		`d`,
		`JSON.stringify(d)`,
		`({...d})`,
		`[Object.keys(d), Object.values(d), Object.entries(d), Object.getOwnPropertyNames(d)]`,
		`(() => { const k = []; for (const x in d) k.push(x); return k })()`,
		`['a' in d, 'zz' in d, 'toString' in d, '2' in d, d.hasOwnProperty('a'), d.hasOwnProperty('toString'), Object.hasOwn(d, 's')]`,
		`(() => { delete d.b; delete d.nope; return [d, Object.keys(d), 'b' in d, d.b] })()`,
		`(() => { d.z = 1; delete d.b; d.b = 2; d["1"] = 0; return [Object.keys(d), JSON.stringify(d)] })()`,
		`(() => { d.a.x[1].y = 5; d.a.w = true; d.a.x.push(9); return [d.a === d.a, d.a.x === d.a.x, d.a.x[1] === d.a.x[1], d] })()`,
		`[Object.assign(d, {q: 1, b: 0}), Object.assign({}, d, {s: 0})]`,
		`[JSON.stringify(d, null, 2), JSON.stringify(d, ['b', 's']), JSON.stringify(d, (k, v) => typeof v === 'number' ? v + 1 : v)]`,
		`[typeof d, d instanceof Object, Object.getPrototypeOf(d) === Object.prototype, d.constructor === Object, Array.isArray(d.a.x), String(d)]`,
		`[Object.getOwnPropertyDescriptor(d, 'b'), Object.getOwnPropertyDescriptor(d, 'toString'), Object.isFrozen(d.a.x), Object.isExtensible(d)]`,
		`[d.a.x.map((v) => typeof v), d.s.toUpperCase(), d.missing === undefined, d.n === null, d.big, d.f * 2]`,
		`(() => { Object.defineProperty(d, 'v', {value: 1, writable: true, enumerable: true, configurable: true}); return d })()`,
		`(() => { Object.defineProperty(d, 'b', {value: 7}); Object.defineProperties(d.a, {x: {value: 0}}); return d })()`,
		`(() => { Object.setPrototypeOf(d, {toJSON() { return 'proto' }}); return [JSON.stringify(d), d] })()`,
		`(() => { d.__proto__ = {inherited: 1}; return [d.inherited, Object.keys(d), d] })()`,
		`(() => { const c = {...d}; Object.freeze(c); return [Object.isFrozen(c), c] })()`,
		`(() => { const a = d.a; d.a = 1; return [a, d] })()`,
		`[{d}, [d, d.a], JSON.stringify([d.a, {k: d.a.x}])]`,
		`(() => { d.a.x[1].y = 9; d.a.x.push({}); d.a.x[2][0].z = d.s; return [JSON.stringify(d), d, d.a.x[1] === d.a.x[1]] })()`,
		`(() => { const a = d.a, s = d.s; d.a.x = null; return [a, s, d, Object.keys(d)] })()`,
		`[d.b, d.b, 'b' in d, 'q' in d, d.a.x[2][0] === d.a.x[2][0], d.k, d.k === d.k]`,
	} {
		for _, data := range []string{lazyData, lazyBigData} {
			t.Run(expr, func(t *testing.T) {
				src := `(d) => { const e = JSON.parse(` + strconv.Quote(data) + `); const f = (d) => (` + expr + `); return [f(d), f(e)] }`
				out, err := rt.Call(mustLambda(t, src), "h", []byte(data), "e", "s", time.Second)
				if err != nil {
					t.Fatal(err)
				}
				v := fastjson.MustParseBytes(out)
				lazy, eager := v.GetArray()[0].String(), v.GetArray()[1].String()
				if lazy != eager {
					t.Errorf("lazy  %s\neager %s", lazy, eager)
				}
			})
		}
	}
}

// TestLazyObjectInvalidUTF8Key reads a key that is not valid UTF-8, which goja turns
// into U+FFFD, as the eager conversion does.
func TestLazyObjectInvalidUTF8Key(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	data := "{\"\xc3\":1,\"b\":2}"
	eager := toJS(rt.vm, fastjson.MustParse(data)).(*goja.Object)
	if keys := strings.Join(eager.Keys(), ","); keys != "\ufffd,b" {
		t.Fatalf("eager keys %q", keys)
	}
	out, err := rt.Call(mustLambda(t, `(d) => [d["\ufffd"], d.b, Object.keys(d)]`), "h", []byte(data), "e", "s", time.Second)
	if want := "[1,2,[\"\ufffd\",\"b\"]]"; err != nil || string(out) != want {
		t.Errorf("got %s, %v; want %s", out, err, want)
	}
}

// TestLazyObjectLimits covers what a goja dynamic object cannot do: each throws a
// TypeError instead of misbehaving silently, and a copy can.
func TestLazyObjectLimits(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	for _, expr := range []string{
		`Object.freeze(d)`,
		`Object.seal(d.a)`,
		`Object.preventExtensions(d)`,
		`Object.defineProperty(d, 'h', {value: 1})`,
		`Object.defineProperty(d, 'h', {value: 1, enumerable: true, configurable: true})`,
		`Reflect.defineProperty(d, 'h', {value: 1, writable: true, enumerable: true})`,
		`Object.defineProperties(d.a, {ok: {value: 1, writable: true, enumerable: true, configurable: true}, h: {value: 1}})`,
		`Object.defineProperty(d, 'g', {get() { return 1 }, enumerable: true, configurable: true})`,
		`d[Symbol.iterator] = 1`,
	} {
		t.Run(expr, func(t *testing.T) {
			src := `(d) => { try { ` + expr + `; return "no error" } catch (e) { return [e.name, d.b] } }`
			out, err := rt.Call(mustLambda(t, src), "h", []byte(lazyData), "e", "s", time.Second)
			if err != nil || string(out) != `["TypeError",1]` {
				t.Errorf("got %s, %v; want a TypeError caught", out, err)
			}
		})
	}
	out, err := rt.Call(mustLambda(t, `(d) => Object.freeze({...d, a: Object.freeze({...d.a})})`), "h", []byte(lazyData), "e", "s", time.Second)
	if err != nil || !strings.HasPrefix(string(out), `{"2":"two","b":1,"a":{"x":`) {
		t.Errorf("freezing a copy: %s, %v", out, err)
	}
}

// TestLazyObjectKeptAcrossCalls keeps lazy objects in a closure past their call, when the
// Runtime's parser holds the next event: they must still show their own event.
func TestLazyObjectKeptAcrossCalls(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	l := mustLambda(t, `const kept = [];
return (d) => {
  kept.push({root: d, el: d.a ? d.a.x[1] : null, deep: d.a ? d.a.x[2] : null});
  if (kept.length < 3) return null;
  const [k0, k1] = kept;
  return [k0.root, JSON.stringify(k0.root), k1.el, k1.deep, k1.root.s, k1.el === k1.root.a.x[1]];
}`)
	events := []string{
		`{"s":"first","a":{"x":[0,{"y":"one"},[{"z":1}]]},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`,
		lazyData,
		`{"other":[1,2,3],"s":"third, and longer than the others so that the parser's memory moves"}`,
	}
	var out []byte
	for _, ev := range events {
		var err error
		if out, err = rt.Call(l, "h", []byte(ev), "e", "s", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	want := `[` + events[0] + `,` + string(jsonx.AppendString(nil, events[0], false)) + `,{"y":2},[{"z":3}],"str",true]`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

// TestLazyObjectKeptAcrossCallsInexact: data that JavaScript reorders (an index key)
// and whose strings were read before the call keeps its values once its call is over.
func TestLazyObjectKeptAcrossCallsInexact(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	l := mustLambda(t, `let kept = null;
return (d) => {
  if (kept === null) { kept = d; return null; }
  return [kept.m, Object.keys(kept.x), kept["k\u0007"]];
}`)
	for i, ev := range []string{`{"m":"bell\u0007\u00ff","x":{"1":0,"a":1},"k\u0007":"v"}`, `{"other":"event, longer than the first so the parser's memory moves"}`} {
		data := fastjson.MustParse(ev)
		data.GetObject().Visit(func(_ []byte, v *fastjson.Value) { _, _ = v.StringBytes() }) // unescaped, as a gate would
		out, _, err := rt.CallRequest(l, "h", parsedData{data}, "e", "s", time.Second, &Request{}, func(*Request) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		if want := `["bell\u0007ÿ",["1","a"],"v"]`; i == 1 && string(out) != want {
			t.Errorf("got %s, want %s", out, want)
		}
	}
}

// lazyInputSeeds are inputs whose JavaScript form differs from their text: key order,
// duplicates, numbers, escapes and invalid UTF-8, depth.
var lazyInputSeeds = []string{
	lazyData, slackData, `{}`, `[]`, `null`, `"s"`, `1e400`, `-0`, `{"__proto__":{"x":1}}`,
	`{"a":1,"a":2,"b":{"c":1,"c":[{"d":1,"d":2}]}}`, `{"n":null,"t":true,"n":null,"f":false,"t":true}`, `{"10":1,"9":2,"x":3,"01":4,"4294967295":5,"4294967294":6,"-1":7}`,
	`{"n":[0,-0,1.0,1e21,1e-7,1.5e-7,123e-20,9007199254740993,-9007199254740993,12345678901234567890,1e400,-1e400,0.1]}`,
	`{"u":"\ud800\udc00\u0000é\u2028","\ud800":"lone","k\"ey":"\"quoted\""}`, "{\"bad\":\"\xff\xfe\",\"\xc3\":1}",
	`[{"a":[{"b":{}}]},[[{}]]]`, strings.Repeat(`{"a":`, 299) + `1` + strings.Repeat(`}`, 299),
	strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300), `{"big":{` + strings.Repeat(`"k":1,`, 40) + `"k":2}}`,
}

// FuzzLazyStringify checks that an untouched lazy input serializes, as a lambda's result
// (also after reading some members) and through JSON.stringify, exactly as its eager
// conversion (toJS) does.
func FuzzLazyStringify(f *testing.F) {
	for _, s := range lazyInputSeeds {
		f.Add([]byte(s))
	}
	rt := NewRuntime(RuntimeConfig{})
	identity := mustLambda(f, `(d) => d`)
	stringify := mustLambda(f, `(d) => JSON.stringify(d)`)
	// Members read are converted one by one, then written as JavaScript values.
	read := mustLambda(f, `(d) => { if (d !== null && typeof d === "object") { d.a; d.b && d.b.c; d[0]; d.k } return d }`)
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := p.ParseBytes(data)
		if err != nil {
			return
		}
		w := jsonWriter{vm: rt.vm, max: DefaultMaxOutputBytes, tooBig: ErrOutputTooLarge}
		_, eagerErr := w.value("", toJS(rt.vm, v), 0)
		want := string(w.buf)
		got, err := rt.Call(identity, "h", data, "e", "s", time.Second)
		switch {
		case eagerErr != nil && (err == nil || errors.Is(eagerErr, ErrOutputTooLarge) != errors.Is(err, ErrOutputTooLarge)):
			t.Fatalf("%q: eager fails with %v, lazy gives %s, %v", data, eagerErr, got, err)
		case eagerErr == nil && (err != nil || string(got) != want):
			t.Fatalf("%q:\nlazy  %s, %v\neager %s", data, got, err, want)
		}
		if got, err = rt.Call(read, "h", data, "e", "s", time.Second); eagerErr == nil && (err != nil || string(got) != want) {
			t.Fatalf("%q with members read:\nlazy  %s, %v\neager %s", data, got, err, want)
		}
		got, err = rt.Call(stringify, "h", data, "e", "s", time.Second)
		if eagerErr == nil && (err != nil || string(got) != string(jsonx.AppendString(nil, want, false))) {
			t.Fatalf("JSON.stringify of %q:\nlazy  %s, %v\neager %s", data, got, err, want)
		}
	})
}

// TestExactMembers checks that appendExactMembers writes what appendExact writes for the
// parsed object, and that it reads compact UTF-8 data without escapes from its text.
func TestExactMembers(t *testing.T) {
	var p fastjson.Parser
	for _, s := range append(lazyInputSeeds, benchData, forwardData, `{"x":{"a":1,"a":2}}`, `{"a":"\u00e9"}`, `{"`+strings.Repeat("k", 20)+`":[]}`) {
		v, err := p.Parse(s)
		if err != nil || v.Type() != fastjson.TypeObject {
			continue
		}
		want, wantDepth, wantExact := appendExact(nil, v)
		got, depth, exact, ok := appendExactMembers(nil, []byte(s[1:len(s)-1]), &fastjson.Parser{})
		switch {
		case !utf8.ValidString(s): // not what appendExactMembers is given
		case !ok && !strings.Contains(s, `\`):
			t.Errorf("%s: not read from its text", s)
		case ok && (string(got) != string(want) || depth != wantDepth || exact != wantExact):
			t.Errorf("%s:\ngot  %s %d %v\nwant %s %d %v", s, got, depth, exact, want, wantDepth, wantExact)
		}
	}
}

// FuzzExactMembers checks appendExactMembers on arbitrary text: it never panics, and
// what it reads of valid JSON and UTF-8 it writes as appendExact writes the parsed
// object.
func FuzzExactMembers(f *testing.F) {
	for _, s := range lazyInputSeeds {
		if strings.HasPrefix(s, "{") {
			f.Add([]byte(s[1 : len(s)-1]))
		}
	}
	var p, num fastjson.Parser
	f.Fuzz(func(t *testing.T, members []byte) {
		got, depth, exact, ok := appendExactMembers(nil, members, &num)
		if !ok {
			return
		}
		text := append(append([]byte{'{'}, members...), '}')
		if !json.Valid(text) || !utf8.Valid(text) {
			return // not what appendExactMembers is given
		}
		v, err := p.ParseBytes(text)
		if err != nil {
			t.Fatalf("%q read, but it does not parse: %v", members, err)
		}
		want, wantDepth, wantExact := appendExact(nil, v)
		if string(got) != string(want) || depth != wantDepth || exact != wantExact {
			t.Fatalf("%q:\ngot  %s %d %v\nwant %s %d %v", members, got, depth, exact, want, wantDepth, wantExact)
		}
	})
}

// forwardData is like the bench command's events.
const forwardData = `{"upstream_id":"u-42","ip":"10.0.0.42","port":8000,"hostname":"u-42.internal",` +
	`"health":"unhealthy","ts":1795000000123456789,"tags":["a",{"b":1}],"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// TestLazyForwardAllocs guards the lazy input: forwarding the event (JSON.stringify(d)
// as the body of a request read by CallRequest) builds no JavaScript values for it.
func TestLazyForwardAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation guard")
	}
	l := mustLambda(t, `(d, ev, src) => ({url: "http://127.0.0.1:1/", method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(d)})`)
	rt := NewRuntime(RuntimeConfig{})
	var req Request
	use := func(*Request) bool { return true }
	data := fastjson.MustParse(forwardData)
	n := testing.AllocsPerRun(50, func() {
		if _, ok, err := rt.CallRequest(l, "hook-1", parsedData{data}, "e", "s", time.Second, &req, use); err != nil || !ok {
			t.Fatal(ok, err)
		}
	})
	if n > 60 {
		t.Errorf("CallRequest allocates %v times, want at most 60", n)
	}
}

func TestPlainInt(t *testing.T) {
	for in, want := range map[string]bool{
		"0": true, "7": true, "-7": true, "123456789012345": true, "-123456789012345": true,
		"-0": false, "01": false, "1234567890123456": false, "1.0": false, "1e3": false, "": false, "-": false, "NaN": false,
	} {
		if got := plainInt([]byte(in)); got != want {
			t.Errorf("plainInt(%q) = %v, want %v", in, got, want)
		}
	}
}
