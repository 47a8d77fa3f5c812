package sinks

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/scripting"
)

// customHook returns a validated webhook-custom hook; config is the JSON object's body
// without braces, url and method set by the caller.
func customHook(t testing.TB, config string) *hooks.Hook {
	t.Helper()
	return mustHook(t, `{"source":"crud","event":"admins","handler":"webhook-custom","config":{`+config+`}}`)
}

// adminData is a crud/admins event as Kong emits it.
const adminData = `{"operation":"create","schema":"admins","entity":{"id":"a1","username":"ada","email":"ada@corp.example","rbac_token_enabled":true}}`

// slackText is Kong's documented Slack example, unchanged.
const slackText = "Admin account `{{ entity.username }}` {{ operation }}d; email address set to `{{ entity.email }}`"

func TestCustomKongSlackExample(t *testing.T) {
	ts := startServer(t, nil)
	h := customHook(t, `"url":`+quote(ts.url+"/services/T000/B000/XXXX")+`,"method":"POST",`+
		`"headers":{"content-type":"application/json"},"payload":{"text":`+quote(slackText)+`}`)
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
	if !res.Delivered || res.Status != 200 {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	if r.method != "POST" || r.uri != "/services/T000/B000/XXXX" || r.header("Content-Type") != "application/json" {
		t.Errorf("request = %s %s, Content-Type %q", r.method, r.uri, r.header("Content-Type"))
	}
	want := "{\"text\":\"Admin account `ada` created; email address set to `ada@corp.example`\"}"
	if string(r.body) != want {
		t.Errorf("body = %s\nwant   %s", r.body, want)
	}
}

func TestCustomPayloadEncodings(t *testing.T) {
	ts := startServer(t, nil)
	p := newPool(t, PoolConfig{})
	payload := `"payload":{"user":"{{ entity.username }}","note":"a&b=c d\u00e9","quote":"say \"hi\"","email":"{* entity.email *}"}`
	want := map[string]string{"user": "ada", "note": "a&b=c dé", "quote": `say "hi"`, "email": "ada@corp.example"}
	for _, tc := range []struct {
		name, headers string
		decode        func(t *testing.T, r received) map[string]string
	}{
		{"json", `{"Content-Type":"application/json; charset=utf-8"}`, func(t *testing.T, r received) map[string]string {
			var m map[string]string
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatalf("not JSON: %v: %s", err, r.body)
			}
			return m
		}},
		{"form", `{"content-type":"application/x-www-form-urlencoded"}`, func(t *testing.T, r received) map[string]string {
			if r.header("Content-Type") != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q", r.header("Content-Type"))
			}
			vs, err := url.ParseQuery(string(r.body))
			if err != nil {
				t.Fatalf("not a form: %v: %s", err, r.body)
			}
			return flatten(vs)
		}},
		{"multipart by default", `{}`, decodeMultipart},
		{"multipart for another type", `{"Content-Type":"text/plain"}`, decodeMultipart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := customHook(t, `"url":`+quote(ts.url+"/in")+`,"method":"PUT","headers":`+tc.headers+`,`+payload)
			if res := mustCompile(t, h, p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil); !res.Delivered {
				t.Fatalf("result = %+v", res)
			}
			r := ts.next(t)
			if r.method != "PUT" {
				t.Errorf("method = %s", r.method)
			}
			if got := tc.decode(t, r); !reflect.DeepEqual(got, want) {
				t.Errorf("payload = %v, want %v (body %q)", got, want, r.body)
			}
		})
	}
}

func flatten(vs url.Values) map[string]string {
	m := map[string]string{}
	for k, v := range vs {
		m[k] = strings.Join(v, ",")
	}
	return m
}

// decodeMultipart parses a multipart/form-data body with mime/multipart.
func decodeMultipart(t *testing.T, r received) map[string]string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.header("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v)", r.header("Content-Type"), err)
	}
	mr := multipart.NewReader(strings.NewReader(string(r.body)), params["boundary"])
	m := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v\n%s", err, r.body)
		}
		b, _ := io.ReadAll(part)
		m[part.FormName()] = string(b)
	}
	return m
}

func TestCustomMultipartBoundaryNeverInAValue(t *testing.T) {
	ts := startServer(t, nil)
	h := customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","payload":{"a":"{{ .entity.username }}","b":"x"}`)
	s := mustCompile(t, h, newPool(t, PoolConfig{})).(*customSink)
	// An event whose value contains the hook's boundary line.
	data := `{"entity":{"username":` + quote("--"+s.boundary+"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nforged") + `}}`
	if res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", data), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	got := decodeMultipart(t, ts.next(t))
	if got["b"] != "x" || !strings.HasSuffix(got["a"], "forged") {
		t.Errorf("parts = %q", got)
	}
}

func TestCustomGetSendsPayloadAsQuery(t *testing.T) {
	ts := startServer(t, nil)
	h := customHook(t, `"url":`+quote(ts.url+"/notify?team=core")+`,"method":"get","secret":"s3cret",`+
		`"headers":{"Content-Type":"application/json"},"body":"ignored on GET",`+
		`"payload":{"user":"{{ entity.username }}","op":"{{ operation }}d now"}`)
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	ev := newEvent(t, "crud", "admins", adminData)
	if res := s.Deliver(context.Background(), ev, nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	u, err := url.ParseRequestURI(r.uri)
	if err != nil || r.method != "GET" || u.Path != "/notify" {
		t.Fatalf("request = %s %s (%v)", r.method, r.uri, err)
	}
	if got := flatten(u.Query()); !reflect.DeepEqual(got, map[string]string{"team": "core", "user": "ada", "op": "created now"}) {
		t.Errorf("query = %v", got)
	}
	if len(r.body) != 0 || r.header("Content-Length") != "" && r.header("Content-Length") != "0" {
		t.Errorf("GET carried a body: %q (Content-Length %q)", r.body, r.header("Content-Length"))
	}
	if r.header("X-Kong-Signature") != "" || r.header("webhook-signature") != "" {
		t.Errorf("a bodiless request was signed: %v", r.headers)
	}
	if r.header("webhook-id") != MessageID(h.ID, ev) || r.header("webhook-timestamp") == "" {
		t.Errorf("webhook-id %q, webhook-timestamp %q: want the stable id and a timestamp", r.header("webhook-id"), r.header("webhook-timestamp"))
	}
}

func TestCustomBodyWinsAndIsSigned(t *testing.T) {
	ts := startServer(t, nil)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	h := customHook(t, `"url":`+quote(ts.url+"/b")+`,"method":"PATCH","secret":"`+secret+`",`+
		`"headers":{"Content-Type":"text/plain","X-User":"{{ entity.username }}","X-Op":"{{ operation }}","X-Static":"v"},"headers_format":true,`+
		`"payload":{"ignored":"yes"},"body":"user={{ entity.username }} id={{ entity.id }}"`)
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	if res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	if string(r.body) != "user=ada id=a1" || r.header("Content-Type") != "text/plain" {
		t.Errorf("body %q, Content-Type %q", r.body, r.header("Content-Type"))
	}
	if r.header("X-User") != "ada" || r.header("X-Op") != "create" || r.header("X-Static") != "v" {
		t.Errorf("headers = %v", r.headers)
	}
	verifySignatures(t, secret, r)
}

// verifySignatures checks both signatures of r over the body received, independently of
// the signer.
func verifySignatures(t *testing.T, secret string, r received) {
	t.Helper()
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(r.body)
	if got := r.header("X-Kong-Signature"); got != "sha1="+hex.EncodeToString(mac.Sum(nil)) {
		t.Errorf("X-Kong-Signature = %q", got)
	}
	key := []byte(secret)
	if enc, ok := strings.CutPrefix(secret, "whsec_"); ok {
		key, _ = base64.StdEncoding.DecodeString(enc)
	}
	mac = hmac.New(sha256.New, key)
	mac.Write([]byte(r.header("webhook-id") + "." + r.header("webhook-timestamp") + "."))
	mac.Write(r.body)
	if got := r.header("webhook-signature"); got != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("webhook-signature = %q", got)
	}
}

func TestCustomNoBodyNoPayload(t *testing.T) {
	ts := startServer(t, nil)
	h := customHook(t, `"url":`+quote(ts.url+"/empty")+`,"method":"POST","secret":"k"`)
	if res := mustCompile(t, h, newPool(t, PoolConfig{})).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil); !res.Delivered {
		t.Fatalf("result = %+v", res) // Kong's queue handler crashes here
	}
	r := ts.next(t)
	if len(r.body) != 0 || r.header("Content-Type") != "" {
		t.Errorf("body %q, Content-Type %q", r.body, r.header("Content-Type"))
	}
	verifySignatures(t, "k", r) // the empty body, fully covered
}

func TestCustomTemplatedURL(t *testing.T) {
	ts := startServer(t, nil)
	p := newPool(t, PoolConfig{})
	h := customHook(t, `"url":`+quote(ts.url+"/users/{{ .entity.username | urlquery }}?op={{ operation }}")+`,"method":"POST"`)
	s := mustCompile(t, h, p)
	data := `{"operation":"create","entity":{"username":"ada lovelace/x"}}`
	if res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", data), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	if r := ts.next(t); r.uri != "/users/ada+lovelace%2Fx?op=create" {
		t.Errorf("uri = %q", r.uri)
	}
	// urlpath is the path-segment escape: a space is %20 there ("+" is a plus in a path).
	h = customHook(t, `"url":`+quote(ts.url+"/users/{{ .entity.username | urlpath }}?op={{ .operation | urlquery }}")+`,"method":"POST"`)
	if res := mustCompile(t, h, p).Deliver(context.Background(), newEvent(t, "crud", "admins", data), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	if r := ts.next(t); r.uri != "/users/ada%20lovelace%2Fx?op=create" {
		t.Errorf("urlpath: uri = %q", r.uri)
	}
	// A value that moves the request to another host is a destination computed per
	// event: bounded by MaxDestinations, and never sent to the configured host's client.
	other := startServer(t, nil)
	// hooks.Validate refuses a template in the authority; Compile must not rely on it.
	h2 := &hooks.Hook{ID: "h2", Source: "crud", Handler: hooks.HandlerWebhookCustom,
		Config: []byte(`{"url":"http://127.0.0.1:1{{ .entity.path }}","method":"POST"}`)}
	s2 := mustCompile(t, h2, newPool(t, PoolConfig{MaxDestinations: 1}))
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }
	for i, want := range []bool{true, false} {
		target := ts
		if i == 1 {
			target = other
		}
		data := `{"entity":{"path":"@` + hostOf(target.url) + `/x"}}`
		res := s2.Deliver(context.Background(), newEvent(t, "crud", "admins", data), nil)
		if res.Delivered != want {
			t.Fatalf("delivery %d: result %+v, want delivered %v", i, res, want)
		}
		if !want && (res.Retryable || !errors.Is(res.Err, ErrTooManyDestinations)) {
			t.Errorf("second computed destination: %+v, want ErrTooManyDestinations (permanent)", res)
		}
	}
	if r := ts.next(t); r.uri != "/x" {
		t.Errorf("uri = %q", r.uri)
	}
}

func TestCustomTemplatedHeaderCannotInject(t *testing.T) {
	ts := startServer(t, nil)
	h := customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","headers_format":true,"headers":{"X-User":"{{ entity.username }}"}`)
	s := mustCompile(t, h, newPool(t, PoolConfig{}))
	res := s.Deliver(context.Background(), newEvent(t, "crud", "admins", `{"entity":{"username":"x\r\nX-Admin: yes"}}`), nil)
	if res.Delivered || res.Retryable || !errors.Is(res.Err, ErrPermanent) || !strings.Contains(res.Err.Error(), "CR, LF") {
		t.Errorf("result = %+v, want a permanent refusal", res)
	}
}

func TestCustomRenderErrors(t *testing.T) {
	ts := startServer(t, nil)
	p := newPool(t, PoolConfig{})
	h := customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","body":"{{ index .entity 1 }}"`)
	res := mustCompile(t, h, p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
	if res.Delivered || !res.Retryable || !errors.Is(res.Err, scripting.ErrThrown) || errors.Is(res.Err, ErrPermanent) ||
		!strings.Contains(res.Err.Error(), "config.body") {
		t.Errorf("helper error: %+v, want a retryable script error naming the template", res)
	}
	h = customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","body":"{{ range $i := .entity.tags }}{{ end }}{{ range 9999999999 }}{{ end }}"`)
	res = mustCompile(t, h, p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil)
	if res.Delivered || !res.Retryable || !errors.Is(res.Err, ErrTimeout) {
		t.Errorf("runaway loop: %+v, want a retryable timeout", res)
	}
}

func TestCustomTemplateErrorsAreSchemaViolations(t *testing.T) {
	p := newPool(t, PoolConfig{})
	for _, tc := range []struct {
		name, config, field, want string
	}{
		{"payload line", `"url":"http://x.test/","method":"POST","payload":{"text":"ok\nline two {{ .a )}}"}`,
			"config.payload.text", "invalid template: line 2: unexpected right paren"},
		{"body", `"url":"http://x.test/","method":"POST","body":"{{ if .x }}never closed"`,
			"config.body", "invalid template: line 1: unexpected EOF"},
		{"lua block", `"url":"http://x.test/","method":"POST","body":"a\n{% if x then %}b{% end %}"`,
			"config.body", "invalid template: line 2: Lua blocks {% … %} are not supported"},
		{"header", `"url":"http://x.test/","method":"POST","headers_format":true,"headers":{"X-A":"{{ .a | nope }}"}`,
			"config.headers.X-A", `invalid template: line 1: function "nope" not defined`},
		{"url", `"url":"http://x.test/{{ nope .x }}","method":"POST"`,
			"config.url", `invalid template: line 1: function "nope" not defined`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(customHook(t, tc.config), p, nil)
			var se *hooks.SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *hooks.SchemaError", err)
			}
			if got := se.Fields[tc.field]; !strings.HasPrefix(got, tc.want) {
				t.Errorf("fields = %q, want %s: %q…", se.Fields, tc.field, tc.want)
			}
		})
	}
	// Formats off: template syntax is literal text, nothing to compile.
	h := customHook(t, `"url":"http://x.test/","method":"POST","payload_format":false,"body_format":false,"payload":{"a":"{{ .a | }}"},"body":"{% x %}"`)
	if _, err := Compile(h, p, nil); err != nil {
		t.Errorf("literal config: %v", err)
	}
}

func TestCustomLiteralsWhenFormatsOff(t *testing.T) {
	ts := startServer(t, nil)
	h := customHook(t, `"url":`+quote(ts.url)+`,"method":"POST","headers":{"X-T":"{{ raw }}","Content-Type":"application/json"},`+
		`"payload_format":false,"payload":{"t":"{{ entity.username }}"}`)
	if res := mustCompile(t, h, newPool(t, PoolConfig{})).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil); !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	r := ts.next(t)
	if string(r.body) != `{"t":"{{ entity.username }}"}` || r.header("X-T") != "{{ raw }}" {
		t.Errorf("body %s, X-T %q", r.body, r.header("X-T"))
	}
}

func TestLaneTemplateDataPerEvent(t *testing.T) {
	fast, err := scripting.CompileTemplate("fast", `{{ operation }}`)
	if err != nil {
		t.Fatal(err)
	}
	full, err := scripting.CompileTemplate("full", `{{ json .operation }}`) // reads the context map
	if err != nil {
		t.Fatal(err)
	}
	var lane Lane
	render := func(ev *hooks.Event) string {
		t.Helper()
		d := lane.eventData(ev)
		out, err := fast.RenderEvent(nil, d)
		if err == nil {
			out, err = full.RenderEvent(append(out, ' '), d)
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	ev := newEvent(t, "crud", "admins", `{"operation":"create"}`)
	ev.Record = &kgo.Record{Offset: 7}
	if got := render(ev); got != `create "create"` {
		t.Errorf("first event renders %s", got)
	}
	next := newEvent(t, "crud", "admins", `{"operation":"delete"}`)
	next.Record = &kgo.Record{Offset: 8}
	if got := render(next); got != `delete "delete"` {
		t.Errorf("next event renders %s: stale data", got)
	}
	noRecord := newEvent(t, "crud", "admins", `{"operation":"update"}`)
	noRecord.Record = nil
	if got := render(noRecord); got != `update "update"` {
		t.Errorf("event without a record renders %s", got)
	}
}

// TestCustomPayloadKeysSorted: the documented order of payload keys ("Keys come out in
// sorted order") holds for every encoding, multipart parts included. (A fasthttp server
// that pre-parses multipart forms re-encodes them in map order: the receivers here and
// `eventhooks receive` disable that.)
func TestCustomPayloadKeysSorted(t *testing.T) {
	ts := startServer(t, nil)
	p := newPool(t, PoolConfig{})
	payload := `"payload":{"zeta":"1","alpha":"{{ .entity.username }}","Mid":"3","beta":"4","a.b":"5","a_b":"6"}`
	want := []string{"Mid", "a.b", "a_b", "alpha", "beta", "zeta"}
	for _, ct := range []string{`{}`, `{"Content-Type":"application/json"}`, `{"Content-Type":"application/x-www-form-urlencoded"}`} {
		h := customHook(t, `"url":`+quote(ts.url+"/in")+`,"method":"POST","headers":`+ct+`,`+payload)
		if res := mustCompile(t, h, p).Deliver(context.Background(), newEvent(t, "crud", "admins", adminData), nil); !res.Delivered {
			t.Fatalf("result = %+v", res)
		}
		r := ts.next(t)
		var got []string
		switch ct {
		case `{}`:
			_, params, _ := mime.ParseMediaType(r.header("Content-Type"))
			mr := multipart.NewReader(strings.NewReader(string(r.body)), params["boundary"])
			for {
				part, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, part.FormName())
			}
		default:
			body := string(r.body)
			got = want // checked pairwise below
			idx := func(k string) int {
				if strings.Contains(ct, "json") {
					return strings.Index(body, quote(k)+":")
				}
				return strings.Index(body, url.QueryEscape(k)+"=")
			}
			for i := 1; i < len(want); i++ {
				if a, b := idx(want[i-1]), idx(want[i]); a < 0 || b < 0 || a > b {
					t.Errorf("%s: %q before %q is not kept: %s", ct, want[i-1], want[i], body)
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: keys in order %v, want %v (body %q)", ct, got, want, r.body)
		}
	}
}
