package scripting

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/valyala/fastjson"
)

const slackText = "Admin account `{{ entity.username }}` {{ operation }}d; email address set to `{{ entity.email }}`"

const slackData = `{"operation":"create","entity":{"username":"ada","email":"ada@example.com"}}`

func ctxOf(t testing.TB, source, event, data string) map[string]any {
	t.Helper()
	v, err := fastjson.Parse(data)
	if err != nil {
		t.Fatalf("bad test data %q: %v", data, err)
	}
	return EventContext(source, event, v)
}

func fixedClock(t *testing.T) {
	t.Helper()
	old := nowFunc
	nowFunc = func() time.Time { return time.Date(2026, 11, 27, 8, 0, 0, 0, time.FixedZone("CET", 3600)) }
	t.Cleanup(func() { nowFunc = old })
}

func TestTemplateRender(t *testing.T) {
	fixedClock(t)
	const data = `{"operation":"create","schema":"consumers",
		"entity":{"username":"ada","email":"ada@example.com","user-name":"dashed","old":null,"tags":["a","b"]},
		"port":8000,"rate":0.5,"big":1627581878123456789,"huge":1e21,"exp":1.5e3,"neg":-3,
		"text":"say \"hi\"\n<b>&","flag":true,"items":[{"n":1},{"n":2}]}`
	tests := []struct {
		name, src, want string
	}{
		{"kong slack example", slackText, "Admin account `ada` created; email address set to `ada@example.com`"},
		{"kong raw output", "{* entity.username *}", "ada"},
		{"kong raw output no spaces", "{*entity.email*}", "ada@example.com"},
		{"event and source", "{{ event }}/{{ source }}", "consumers/crud"},
		{"bare names without spaces", "{{operation}}:{{schema}}", "create:consumers"},
		{"go syntax event", "{{ .event }} {{ .source }}", "consumers crud"},
		{"go syntax nested", "{{ .entity.username }}", "ada"},
		{"kong trim markers", "a  {{- entity.username -}}  b", "aadab"},
		{"integer without fraction", "{{ port }} {{ .port }}", "8000 8000"},
		{"float", "{{ rate }}", "0.5"},
		{"exponent integer", "{{ exp }}", "1500"},
		{"negative", "{{ neg }}", "-3"},
		{"large integer exact", "{{ big }}", "1627581878123456789"},
		{"huge number", "{{ huge }}", "1e+21"},
		{"bool", "{{ flag }}", "true"},
		{"missing field renders empty", "[{{ missing }}][{{ .missing }}][{{ entity.nope }}]", "[][][]"},
		{"missing parent renders empty", "[{{ nope.deeper }}][{{ .nope.deeper.still }}]", "[][]"},
		{"null and non-object parents render empty", "[{{ .entity.old }}][{{ .entity.old.x }}][{{ .operation.x }}]", "[][][]"},
		{"dashed kong name", "{{ entity.user-name }}", "dashed"},
		{"object prints as JSON", "{{ .entity.tags }}", `["a","b"]`},
		{"no HTML escaping", "{{ text }}", "say \"hi\"\n<b>&"},
		{"if", `{{ if eq .operation "create" }}new{{ else }}old{{ end }}`, "new"},
		{"if on null", `{{ if .entity.old }}yes{{ else }}no{{ end }}`, "no"},
		{"eq with number", `{{ if eq .port 8000 }}ok{{ end }}`, "ok"},
		{"range", "{{ range .entity.tags }}<{{ . }}>{{ end }}", "<a><b>"},
		{"range with variables", "{{ range $i, $e := .items }}{{ $i }}={{ $e.n }}{{ $e.missing }};{{ end }}", "0=1;1=2;"},
		{"with", "{{ with .entity }}{{ .username }}{{ end }}", "ada"},
		{"root variable in range", "{{ range .items }}{{ $.operation }}{{ end }}", "createcreate"},
		{"json", "{{ json .entity.tags }}", `["a","b"]`},
		{"json object sorted", `{{ json .items }}`, `[{"n":1},{"n":2}]`},
		{"pipeline", "{{ .entity.username | upper }}", "ADA"},
		{"upper lower trim", `{{ upper "a" }}{{ lower "B" }}[{{ trim "  c " }}]`, "Ab[c]"},
		{"b64", `{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ b64dec "aGVsbG8" }}`, "aGVsbG8= hello hello"},
		{"sha256", `{{ sha256 "" }}`, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"hmac_sha256", `{{ hmac_sha256 "key" "The quick brown fox jumps over the lazy dog" }}`, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
		{"default", `{{ default "anon" .missing }} {{ .missing | default "x" }} {{ default "anon" .operation }}`, "anon x create"},
		{"join", `{{ join ", " .entity.tags }}`, "a, b"},
		{"replace", `{{ replace "a" "o" "banana" }} {{ .operation | replace "e" "E" }}`, "bonono crEatE"},
		{"quote", `{{ quote .text }}`, `"say \"hi\"\n<b>&"`},
		{"urlpath escapes a path segment", `/users/{{ urlpath "a b/c+d?é" }}?q={{ urlquery "a b/c" }}`, "/users/a%20b%2Fc+d%3F%C3%A9?q=a+b%2Fc"},
		{"now", `{{ now }} {{ unix_now }}`, "2026-11-27T07:00:00Z 1795762800"},
		{"printf", `{{ printf "%05d" .port }}`, "08000"},
		{"len", `{{ len .entity.tags }}`, "2"},
		{"index", `{{ index .entity "user-name" }}`, "dashed"},
		{"static text", "no actions here {not a tag}", "no actions here {not a tag}"},
		{"braces that are not kong tags", "{\"a\": {\"b\": 1}} {* {%", "{\"a\": {\"b\": 1}} {* {%"},
		{"comment", "a{{/* c */}}b", "ab"},
		{"define and template", `{{ define "u" }}<{{ .username }}>{{ end }}{{ template "u" .entity }}`, "<ada>"},
		{"empty", "", ""},
	}
	ctx := ctxOf(t, "crud", "consumers", data)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := CompileTemplate("payload.text", tc.src)
			if err != nil {
				t.Fatalf("CompileTemplate(%q): %v", tc.src, err)
			}
			got, err := tm.Render([]byte("prefix:"), ctx)
			if err != nil {
				t.Fatalf("Render(%q): %v", tc.src, err)
			}
			if want := "prefix:" + tc.want; string(got) != want {
				t.Errorf("Render(%q)\n got %q\nwant %q", tc.src, got, want)
			}
		})
	}
}

// TestTemplateFastPathMatchesTextTemplate renders the templates that take the fast path
// through text/template too: both must print the same.
func TestTemplateFastPathMatchesTextTemplate(t *testing.T) {
	ctx := ctxOf(t, "balancer", "health", `{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"w":0.25,
		"big":1e21,"ok":false,"nested":{"a":{"b":"c"}},"list":[1,"x",null],"nul":null,"x-y":"dash"}`)
	for _, src := range []string{
		slackText,
		"{{ upstream_id }} {{ ip }}:{{ port }} {{ w }} {{ big }} {{ ok }}",
		"{{ .nested.a.b }} {{ nested.a }} {{ list }} [{{ nul }}] [{{ nope.x }}] [{{ ip.x }}]",
		"{{ x-y }} {* nested.a.b *}",
		"plain",
	} {
		fast, err := CompileTemplate("t", src)
		if err != nil {
			t.Fatal(err)
		}
		if fast.segs == nil {
			t.Fatalf("%q: expected the fast path", src)
		}
		slow := compileWithTextTemplate(t, src)
		a, errA := fast.Render(nil, ctx)
		b, errB := slow.Render(nil, ctx)
		if errA != nil || errB != nil || string(a) != string(b) {
			t.Errorf("%q: fast %q (%v) != text/template %q (%v)", src, a, errA, b, errB)
		}
	}
}

// compileWithTextTemplate compiles src like CompileTemplate but never takes the fast path.
func compileWithTextTemplate(t *testing.T, src string) *Template {
	t.Helper()
	translated, err := translateKong("t", src)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("t").Option("missingkey=default").Funcs(helperFuncs).Parse(translated)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tmpl.Templates() {
		rewriteTree(tt.Tree)
	}
	return &Template{name: "t", tmpl: tmpl, limits: TemplateLimits{MaxOutputBytes: DefaultMaxOutputBytes, Timeout: time.Second}}
}

func TestTemplateCompileErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"lua block", "{% if entity.username then %}x{% end %}", "template payload.text: line 1: Lua blocks {% … %} are not supported"},
		{"lua block line", "ok\n\n{% for i = 1, 3 do %}", "template payload.text: line 3: Lua blocks"},
		{"lua expression in raw output", "{* string.upper(entity.username) *}", "template payload.text: line 1: Kong raw output {* string.upper(entity.username) *} is supported only for field paths"},
		{"parse error reports the line", "first line\n{{ .a }\n}", `template payload.text: line 2: unexpected "}" in operand`},
		{"unclosed action", "a\nb\n{{ if .x }}", "template payload.text: line 3: unexpected EOF"},
		{"unknown function", "{{ nosuch .x }}", `template payload.text: line 1: function "nosuch" not defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileTemplate("payload.text", tc.src)
			if err == nil {
				t.Fatalf("CompileTemplate(%q) succeeded", tc.src)
			}
			var te *TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TemplateError", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n got %q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestTemplateLimits(t *testing.T) {
	items := make([]string, 1000)
	for i := range items {
		items[i] = `{"n":1}`
	}
	ctx := ctxOf(t, "s", "e", `{"items":[`+strings.Join(items, ",")+`],"long":"`+strings.Repeat("x", 100)+`"}`)
	tests := []struct {
		name    string
		src     string
		limits  TemplateLimits
		wantErr error
	}{
		{"range output over the cap", "{{ range .items }}0123456789{{ end }}", TemplateLimits{MaxOutputBytes: 500}, ErrOutputTooLarge},
		{"fast path over the cap", "{{ long }}{{ long }}", TemplateLimits{MaxOutputBytes: 150}, ErrOutputTooLarge},
		{"static text over the cap", strings.Repeat("x", 200), TemplateLimits{MaxOutputBytes: 100}, ErrOutputTooLarge},
		{"default cap", "{{ range .items }}{{ range $.items }}{{ $.long }}{{ end }}{{ end }}", TemplateLimits{Timeout: 5 * time.Second}, ErrOutputTooLarge},
		{"nested ranges that print nothing", "{{ range .items }}{{ range $.items }}{{ range $.items }}{{ end }}{{ end }}{{ end }}", TemplateLimits{Timeout: 20 * time.Millisecond}, ErrTimeout},
		{"range over a large integer", "{{ range 1000000000 }}{{ end }}", TemplateLimits{Timeout: 20 * time.Millisecond}, ErrTimeout},
		{"exponential template recursion", `{{ define "x" }}{{ template "x" . }}{{ template "x" . }}{{ end }}{{ template "x" . }}`, TemplateLimits{Timeout: 20 * time.Millisecond}, ErrTimeout},
		{"replace amplification", `{{ replace "" .long .long }}`, TemplateLimits{MaxOutputBytes: 1000}, ErrOutputTooLarge},
		{"join separator amplification", `{{ join .long .items }}`, TemplateLimits{MaxOutputBytes: 1000}, ErrOutputTooLarge},
		{"within the cap", "{{ long }}", TemplateLimits{MaxOutputBytes: 100}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := CompileTemplate("body", tc.src, tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			dst := []byte("keep")
			out, err := tm.Render(dst, ctx)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("Render took %v", elapsed)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Render error %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && string(out) != "keep" {
				t.Errorf("on error Render returned %d bytes, want dst unchanged", len(out))
			}
		})
	}
}

func TestTemplateBlockKitBodyIsValidJSON(t *testing.T) {
	const src = `{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"Upstream {{ .upstream_id }} target {{ .ip }}:{{ .port }} is *{{ .health }}*"}}]}`
	tm, err := CompileTemplate("body", src)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxOf(t, "balancer", "health", `{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":"unhealthy"}`)
	out, err := tm.Render(nil, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out) {
		t.Fatalf("not valid JSON: %s", out)
	}
	const want = `{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"Upstream u-1 target 10.0.0.7:8000 is *unhealthy*"}}]}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestTemplateHelperErrors(t *testing.T) {
	tm, err := CompileTemplate("body", `{{ b64dec "not base64!" }}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Render(nil, ctxOf(t, "s", "e", `{}`)); err == nil || !strings.Contains(err.Error(), "cannot render template body") {
		t.Errorf("got %v, want a render error naming the template", err)
	}
}

func TestEventContext(t *testing.T) {
	ctx := ctxOf(t, "crud", "consumers", `{"event":"overridden","n":1,"f":1.25,"s":"x","b":false,"z":null,"a":[1,{"k":"v"}],"o":{"p":2}}`)
	want := map[string]any{
		"source": "crud", "event": "consumers", "n": int64(1), "f": 1.25, "s": "x", "b": false, "z": nil,
		"a": []any{int64(1), map[string]any{"k": "v"}}, "o": map[string]any{"p": int64(2)},
	}
	got, _ := json.Marshal(ctx)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("got  %s\nwant %s", got, exp)
	}
	if _, ok := ctx["n"].(int64); !ok {
		t.Errorf("integer is %T, want int64", ctx["n"])
	}
	if m := EventContext("s", "e", nil); len(m) != 2 || m["source"] != "s" || m["event"] != "e" {
		t.Errorf("nil data: %v", m)
	}
	if m := EventContext("s", "e", fastjson.MustParse(`[1]`)); len(m) != 2 {
		t.Errorf("array data: %v", m)
	}
}

// TestTemplateConcurrentRender shares one template and one context between goroutines, as
// the hooks of one event may (run with -race).
func TestTemplateConcurrentRender(t *testing.T) {
	fast, err := CompileTemplate("fast", slackText)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := CompileTemplate("slow", `{{ range $k, $v := .entity }}{{ $k }}={{ $v | upper }};{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxOf(t, "crud", "admins", slackData)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := 0; i < 200; i++ {
				var err error
				if buf, err = fast.Render(buf[:0], ctx); err != nil {
					t.Error(err)
					return
				}
				if buf, err = slow.Render(buf[:0], ctx); err != nil || string(buf) != "email=ADA@EXAMPLE.COM;username=ADA;" {
					t.Errorf("got %q, %v", buf, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestAppendFloatLikeJavaScript(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0", 1: "1", -1.5: "-1.5", 0.1: "0.1", 1e21: "1e+21", 1e20: "100000000000000000000",
		1e-6: "0.000001", 1e-7: "1e-7", 1.5e-7: "1.5e-7", 123456789.5: "123456789.5", 2.5e300: "2.5e+300",
	} {
		if got := formatFloat(f); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

// TestRenderEventMatchesRender: a template of text and paths reads the parsed data as
// Render reads EventContext's map.
func TestRenderEventMatchesRender(t *testing.T) {
	const data = `{"s":"x\"y\u00e9","i":8000,"f":0.5,"big":12345678901234567890,"e":1e21,"neg":-0,` +
		`"t":true,"n":null,"o":{"a":{"b":"deep"},"l":[1,"2",{"k":null}]},"dup":1,"dup":2,` +
		`"source":"spoofed","event":"spoofed","esc\u0061ped":"k","list":[1,2]}`
	srcs := []string{
		"{{ s }}|{{ i }}|{{ f }}|{{ big }}|{{ e }}|{{ neg }}|{{ t }}|{{ n }}",
		"{{ o }}|{{ o.a }}|{{ o.a.b }}|{{ o.l }}|{{ o.missing.x }}|{{ s.x }}|{{ n.x }}|{{ list.0 }}",
		"{{ dup }} {{ source }} {{ event }} {{ source.x }} {{ escaped }} {{ missing }}",
		"{* o.a.b *} {{ .o.a.b }} text only",
		"",
	}
	for _, data := range []string{data, `{}`, `[1]`, `"str"`} {
		v := fastjson.MustParse(data)
		for _, src := range srcs {
			tm, err := CompileTemplate("t", src)
			if err != nil {
				t.Fatal(err)
			}
			if tm.tmpl != nil {
				t.Fatalf("%q is not a template of paths", src)
			}
			want, err := tm.Render(nil, EventContext("balancer", "health", v))
			if err != nil {
				t.Fatal(err)
			}
			var d EventData
			d.Reset("balancer", "health", v)
			got, err := tm.RenderEvent(nil, &d)
			if err != nil || string(got) != string(want) {
				t.Errorf("data %s, %q: RenderEvent = %q, %v; Render = %q", data, src, got, err, want)
			}
		}
	}
}
