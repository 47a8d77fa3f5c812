package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
)

// received is one request as it arrived at a test server.
type received struct {
	method  string
	uri     string
	host    string
	headers map[string][]string // lower-cased names
	body    []byte
}

func (r received) header(name string) string {
	v := r.headers[strings.ToLower(name)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// testServer is a real fasthttp server on 127.0.0.1 recording what it receives.
type testServer struct {
	url  string
	addr string
	reqs chan received
	srv  *fasthttp.Server
}

// startServer serves handle (which may be nil for "200 OK") after recording each request.
func startServer(t testing.TB, handle fasthttp.RequestHandler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: ln.Addr().String(), reqs: make(chan received, 1024)}
	ts.url = "http://" + ts.addr
	// DisablePreParseMultipartForm: else PostBody re-encodes a multipart body in map order.
	ts.srv = &fasthttp.Server{DisablePreParseMultipartForm: true, Handler: func(ctx *fasthttp.RequestCtx) {
		r := received{
			method:  string(ctx.Method()),
			uri:     string(ctx.RequestURI()),
			host:    string(ctx.Host()),
			headers: map[string][]string{},
			body:    append([]byte(nil), ctx.PostBody()...),
		}
		for k, v := range ctx.Request.Header.All() {
			name := strings.ToLower(string(k))
			r.headers[name] = append(r.headers[name], string(v))
		}
		select {
		case ts.reqs <- r:
		default:
		}
		if handle != nil {
			handle(ctx)
		}
	}}
	go func() { _ = ts.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.srv.ShutdownWithContext(ctx)
	})
	return ts
}

// next returns the next received request or fails the test.
func (ts *testServer) next(t testing.TB) received {
	t.Helper()
	select {
	case r := <-ts.reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no request arrived")
		return received{}
	}
}

// mustHook parses and validates a hook body, as the Admin API would.
func mustHook(t testing.TB, body string) *hooks.Hook {
	t.Helper()
	h, err := hooks.ParseHook([]byte(body))
	if err != nil {
		t.Fatalf("ParseHook: %v", err)
	}
	if err := hooks.Validate(h, nil, time.Now()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return h
}

// webhookHook returns a validated webhook hook for url; extra is spliced into config.
func webhookHook(t testing.TB, url, extraConfig, extraHook string) *hooks.Hook {
	t.Helper()
	cfg := `{"url":` + quote(url) + extraConfig + `}`
	return mustHook(t, `{"source":"crud","event":"consumers","handler":"webhook","config":`+cfg+extraHook+`}`)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

const consumerData = `{"operation":"create","schema":"consumers",` +
	`"entity":{"id":"0fd2b1c6-0d5c-4a8a-9c1e-0f2d2a9c3e11","username":"Ada Lovelace",` +
	`"created_at":1627581878,"type":0,"custom_id":null,"tags":["a","b"],"ratio":1.5e3}}`

// newEvent parses data and returns an event as the Decoder would produce it.
func newEvent(t testing.TB, source, event, data string) *hooks.Event {
	t.Helper()
	ev, err := decodeEvent(source, event, data)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// decodeEvent decodes a record of an envelope with source, event and data, as the
// processor would.
func decodeEvent(source, event, data string) (*hooks.Event, error) {
	src, _ := json.Marshal(source)
	name, _ := json.Marshal(event)
	rec := &kgo.Record{
		Topic: "eventhooks-events", Partition: 3, Offset: 5, Key: []byte("0fd2b1c6"),
		Value: []byte(`{"id":"01JDQ4Z9X8Y7W6V5T4S3R2Q1P0","source":` + string(src) + `,"event":` + string(name) + `,"data":` + data + `}`),
	}
	ev := new(hooks.Event)
	if err := new(hooks.Decoder).Decode(rec, ev); err != nil {
		return nil, fmt.Errorf("decode %s: %w", rec.Value, err)
	}
	return ev, nil
}

// handBuiltEvent is newEvent for data the decoder rejects (fastjson's lenient JSON, as a
// hand-built event may hold).
func handBuiltEvent(t testing.TB, source, event, data string) *hooks.Event {
	t.Helper()
	var p fastjson.Parser
	v, err := p.Parse(data)
	if err != nil {
		t.Fatalf("parse %s: %v", data, err)
	}
	ev := &hooks.Event{Source: source, Event: event, Key: []byte("0fd2b1c6")}
	ev.SetData(v)
	return ev
}

// newPool returns a pool closed at the end of the test.
func newPool(t testing.TB, cfg PoolConfig) *Pool {
	p := NewPool(cfg)
	t.Cleanup(p.Close)
	return p
}

func mustCompile(t testing.TB, h *hooks.Hook, p *Pool) Sink {
	t.Helper()
	s, err := Compile(h, p, nil)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

// statusServer answers with the status in the path ("/418") and an optional header set
// by the caller.
func statusServer(t testing.TB, extra func(ctx *fasthttp.RequestCtx)) *testServer {
	return startServer(t, func(ctx *fasthttp.RequestCtx) {
		code := 0
		for _, c := range ctx.Path()[1:] {
			code = code*10 + int(c-'0')
		}
		ctx.SetStatusCode(code)
		ctx.SetBodyString("status body")
		if extra != nil {
			extra(ctx)
		}
	})
}

func readTestdata(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name))
}

// signatureCase is a vector of testdata/signatures.json, computed by the Standard
// Webhooks reference library.
type signatureCase struct {
	Secret    string `json:"secret"`
	Body      string `json:"body"`
	ID        string `json:"webhook-id"`
	Timestamp string `json:"webhook-timestamp"`
	Signature string `json:"webhook-signature"`
	Kong      string `json:"x-kong-signature"`
}

// signatureCases reads testdata/signatures.json, failing t when it has no case.
func signatureCases(t *testing.T) []signatureCase {
	t.Helper()
	raw, err := readTestdata("signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []signatureCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil || len(file.Cases) == 0 {
		t.Fatalf("signatures.json: %v, %d cases", err, len(file.Cases))
	}
	return file.Cases
}

func bytesReader(s string) *strings.Reader { return strings.NewReader(s) }
