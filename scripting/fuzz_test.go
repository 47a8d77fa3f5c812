package scripting

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

// FuzzTemplate compiles arbitrary sources and renders them against arbitrary data: it
// must never panic or hang; errors are fine.
func FuzzTemplate(f *testing.F) {
	for _, s := range []struct{ src, data string }{
		{slackText, slackData},
		{"{* entity.username *} {{ event }}", slackData},
		{`{{ range $i, $e := .items }}{{ $e.a.b }}{{ json $e }}{{ end }}`, `{"items":[{"a":null},{"a":{"b":1}},3]}`},
		{`{{ if .x }}{{ .x.y | upper | quote }}{{ else }}{{ default "d" .z }}{{ end }}`, `{"x":{"y":"v"}}`},
		{`{{ b64dec .s }}{{ hmac_sha256 .k .m }}{{ join "," .l }}{{ replace "a" "b" .s }}`, `{"s":"aGk=","k":1,"m":null,"l":[1,"2",{}]}`},
		{`{{ define "t" }}{{ template "t" . }}{{ end }}{{ template "t" . }}`, `{}`},
		{"{% if x %}", `{}`},
		{"{{ .a }\n}", `{}`},
		{"{{ entity.user-name }} {{ 1 }} {{ now }} {{ index . \"x\" 0 }} {{ slice .s 1 }}", `{"x":[1],"s":"abc"}`},
		{"{{ range 100000000 }}{{ end }}", `{}`},
		{"{{ (.a).b }} {{ $.a.b }} {{ with $x := .a }}{{ $x.b }}{{ end }}", `{"a":{"b":1}}`},
	} {
		f.Add(s.src, s.data)
	}
	f.Fuzz(func(t *testing.T, src, data string) {
		// A hang never returns to the elapsed-time check below: crash with the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("render hangs: src %q data %q", src, data)) })
		defer watchdog.Stop()
		tm, err := CompileTemplate("fuzz", src, TemplateLimits{MaxOutputBytes: 64 << 10, Timeout: 20 * time.Millisecond})
		if err != nil {
			var te *TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("compile error %T is not a *TemplateError: %v", err, err)
			}
			return
		}
		v, err := fastjson.Parse(data)
		if err != nil {
			v = fastjson.MustParse(`{}`)
		}
		ctx := EventContext("s", "e", v)
		start := time.Now()
		out, err := tm.Render([]byte("x"), ctx)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("render took %v", elapsed)
		}
		if tm.tmpl == nil { // a template of paths renders the same from the parsed data
			var d EventData
			d.Reset("s", "e", v)
			fromData, derr := tm.RenderEvent([]byte("x"), &d)
			if string(fromData) != string(out) || (derr == nil) != (err == nil) {
				t.Fatalf("RenderEvent = %q, %v; Render = %q, %v", fromData, derr, out, err)
			}
		}
		if err != nil && string(out) != "x" {
			t.Fatalf("failed render changed dst: %q", out)
		}
		if len(out) > 64<<10+1 {
			t.Fatalf("output of %d bytes over the cap", len(out))
		}
	})
}

var (
	fuzzRuntimeOnce sync.Once
	fuzzRuntime     *Runtime
	fuzzLambda      *Lambda
)

// FuzzLambdaInput feeds arbitrary data to a fixed lambda: no panic, and a successful call
// returns valid JSON.
func FuzzLambdaInput(f *testing.F) {
	for _, s := range []string{
		slackData, `{}`, `[]`, `null`, `"s"`, `1e400`, `-0`, `{"__proto__":{"x":1}}`, `{"toString":1,"constructor":{}}`,
		`{"a":[1,2,{"b":[null,true,false,1.5e-7,12345678901234567890]}]}`, `{"u":"\ud800\udc00\u0000é"}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, `{"a":1,"a":2}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRuntimeOnce.Do(func() {
			fuzzRuntime = NewRuntime(RuntimeConfig{MaxOutputBytes: 1 << 20})
			fuzzLambda = mustLambda(t, `(d, event, source) => ({
  url: "https://example.com/" + source + "/" + event,
  kind: Array.isArray(d) ? "array" : typeof d,
  keys: d !== null && typeof d === "object" ? Object.keys(d).slice(0, 10) : [],
  body: JSON.stringify(d),
  copy: d,
})`)
		})
		out, err := fuzzRuntime.Call(fuzzLambda, "fuzz", data, "e", "s", time.Second)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for input %q: %s", data, out)
		}
	})
}
