package scripting

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

// BenchmarkTemplateRender renders Kong's Slack example for one event, building the
// template context from the parsed event as the processor does.
func BenchmarkTemplateRender(b *testing.B) { benchRender(b, "payload.text", slackText) }

// BenchmarkTemplateRenderGoSyntax renders a template that needs text/template (a
// conditional, a pipeline and a helper): the slow path, for comparison.
func BenchmarkTemplateRenderGoSyntax(b *testing.B) {
	benchRender(b, "body", `{"text":{{ quote .entity.username }},"op":"{{ .operation | upper }}"{{ if .entity.email }},"email":"{{ .entity.email }}"{{ end }}}`)
}

// BenchmarkTemplateRenderEvent renders the bench command's webhook-custom body for its
// event (a nanosecond time beyond 2^53) on the fast path: no allocation.
func BenchmarkTemplateRenderEvent(b *testing.B) {
	tm, err := CompileTemplate("body", `{"text":"{{ .upstream_id }} is {{ .health }}","ts":{{ .ts }}}`)
	if err != nil {
		b.Fatal(err)
	}
	data := fastjson.MustParse(benchData)
	var (
		d   EventData
		buf []byte
	)
	b.ReportAllocs()
	for b.Loop() {
		d.Reset("balancer", "health", data)
		if buf, err = tm.RenderEvent(buf[:0], &d); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRender renders src, compiled as field, for Kong's Slack event.
func benchRender(b *testing.B, field, src string) {
	tm, err := CompileTemplate(field, src)
	if err != nil {
		b.Fatal(err)
	}
	data := fastjson.MustParse(slackData)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		ctx := EventContext("crud", "admins", data)
		if buf, err = tm.Render(buf[:0], ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLambda returns a request object built from the event, the typical lambda.
const benchLambda = `(data, event, source) => ({
  url: "https://hooks.example.com/" + source + "/" + event,
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ text: "Admin account " + data.entity.username + " " + data.operation + "d" }),
})`

// BenchmarkLambdaReusedRuntime calls a lambda on a Runtime kept across events, as a lane
// does.
func BenchmarkLambdaReusedRuntime(b *testing.B) {
	l := mustLambda(b, benchLambda)
	rt := NewRuntime(RuntimeConfig{})
	data := []byte(slackData)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Call(l, "hook-1", data, "admins", "crud", time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLambdaNewRuntime creates a Runtime per event: what one runtime per lane
// avoids.
func BenchmarkLambdaNewRuntime(b *testing.B) {
	l := mustLambda(b, benchLambda)
	data := []byte(slackData)
	b.ReportAllocs()
	for b.Loop() {
		rt := NewRuntime(RuntimeConfig{})
		if _, err := rt.Call(l, "hook-1", data, "admins", "crud", time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTemplateRenderAllocs guards the fast path: rendering a Kong payload into a reused
// buffer allocates nothing.
func TestTemplateRenderAllocs(t *testing.T) {
	tm, err := CompileTemplate("payload.text", slackText)
	if err != nil {
		t.Fatal(err)
	}
	ctx := EventContext("crud", "admins", fastjson.MustParse(slackData))
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		buf, _ = tm.Render(buf[:0], ctx)
	}); n != 0 {
		t.Errorf("Render allocates %v times per call, want 0", n)
	}
}

// TestLambdaCallAllocs guards against allocation regressions in a reused Runtime.
func TestLambdaCallAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation guard")
	}
	l := mustLambda(t, benchLambda)
	rt := NewRuntime(RuntimeConfig{})
	data := []byte(slackData)
	n := testing.AllocsPerRun(50, func() {
		if _, err := rt.Call(l, "hook-1", data, "admins", "crud", time.Second); err != nil {
			t.Fatal(err)
		}
	})
	if n > 150 {
		t.Errorf("Call allocates %v times, want at most 150", n)
	}
}

// benchData is an event like the bench command's (about 250 bytes, a nanosecond time
// beyond 2^53).
const benchData = `{"upstream_id":"u-42","ip":"10.0.0.42","port":8000,"hostname":"u-42.internal",` +
	`"health":"unhealthy","ts":1795000000123456789,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// BenchmarkLambdaCallRequest is the bench command's lambda (the whole event as the body)
// on the bench command's event, read with CallRequest, as the lambda sink does: the
// event's data given as the record's text.
func BenchmarkLambdaCallRequest(b *testing.B) {
	l := mustLambda(b, `(d, ev, src) => ({url: "http://127.0.0.1:1/", method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(d)})`)
	rt := NewRuntime(RuntimeConfig{})
	data := &textData{members: []byte(benchData[1 : len(benchData)-1])}
	var req Request
	use := func(*Request) bool { return true }
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := rt.CallRequest(l, "hook-1", data, "admins", "crud", time.Second, &req, use); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
