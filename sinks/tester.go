package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
)

// Tester runs a hook on demand for the Admin API. Its Test and Ping methods have the
// signatures of admin.Config.Test and admin.Config.Ping:
//
//	admin.Config{…, Test: sinks.Tester{Pool: pool, Logger: log}.Test, Ping: …}
//
// Each call compiles the hook as stored and makes a single attempt on a Lane of its own:
// no retries, no gates, no queue. Deliveries go through the pool's clients, SSRF guard
// and circuit breakers like any other.
type Tester struct {
	// Pool sends the requests (required for every handler but log).
	Pool *Pool
	// Logger receives log-handler lines, lambda results and console output (default
	// slog.Default()).
	Logger *slog.Logger
}

// TestResult is the answer of Test and Ping, Kong's {"data": …, "result": …}.
type TestResult struct {
	// Data is what the hook ran on: the posted data with "source" and "event" added
	// (Test), or the ping body (Ping).
	Data json.RawMessage `json:"data"`
	// Result is, for webhook and webhook-custom hooks and for Ping, the *Exchange of the
	// request sent; for a lambda, the chain's final value (null when it dropped the
	// event); for a log hook, "logged".
	Result any `json:"result"`
	// Responses are the requests a lambda's result made, in order (an extension).
	Responses []*Exchange `json:"responses,omitempty"`
}

// Exchange is one request a Test or Ping call sent and the response it got: Kong's
// {"status", "headers", "body"}, plus what was sent (an extension that shows rendered
// templates and signatures) and, when the response is not a success, why.
type Exchange struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	// Error is set when the attempt failed: a non-2xx status or no response at all.
	Error   string       `json:"error,omitempty"`
	Request *SentRequest `json:"request"`
}

// SentRequest is the request of an Exchange as it was sent.
type SentRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// maxCapturedBody bounds the request and response bodies an Exchange shows.
const maxCapturedBody = 64 << 10

// capture records what a Test or Ping call sent and got (see Lane.capture).
type capture struct {
	exchanges []*Exchange
	value     json.RawMessage // a lambda's final value
}

// record adds one request and its outcome; resp is read only when a status arrived.
func (c *capture) record(req *fasthttp.Request, resp *fasthttp.Response, res Result) {
	x := &Exchange{
		Status:  res.Status,
		Headers: map[string]string{},
		Request: &SentRequest{
			Method:  string(req.Header.Method()),
			URL:     req.URI().String(),
			Headers: headerMap(req.Header.All()),
			Body:    capped(req.Body()),
		},
	}
	if res.Status != 0 {
		x.Headers = headerMap(resp.Header.All())
		x.Body = capped(resp.Body())
	}
	if res.Err != nil {
		x.Error = res.Err.Error()
	}
	c.exchanges = append(c.exchanges, x)
}

// answered reports whether x is a failed attempt that got an HTTP response: the failure
// a Test result shows. A failure without one (nothing captured, no status, or a later
// step failing after x succeeded) is returned as an error instead.
func answered(x *Exchange) bool {
	return x != nil && x.Status != 0 && x.Error != ""
}

// last returns the last exchange, nil when nothing was sent.
func (c *capture) last() *Exchange {
	if len(c.exchanges) == 0 {
		return nil
	}
	return c.exchanges[len(c.exchanges)-1]
}

func headerMap(all iter.Seq2[[]byte, []byte]) map[string]string {
	m := map[string]string{}
	for k, v := range all {
		if old, ok := m[string(k)]; ok {
			m[string(k)] = old + ", " + string(v)
			continue
		}
		m[string(k)] = string(v)
	}
	return m
}

func capped(b []byte) string { return truncate(b, maxCapturedBody) }

// truncate returns b as a string of at most n bytes, cut at a rune boundary and marked
// with "…" when cut.
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(b[n]); i++ {
		n--
	}
	return string(b[:n]) + "…"
}

func (t Tester) logger() *slog.Logger {
	if t.Logger == nil {
		return slog.Default()
	}
	return t.Logger
}

// Test runs h once on data, the event's data object as POST /event-hooks/{id}/test
// receives it, for an event of the hook's source and event (or the data's "event"
// string, or "test", for a hook on every event of its source).
//
// It answers with a *TestResult whenever the handler ran and every request it made got
// an HTTP response, whatever its status (the Exchange's Error says why a non-2xx is a
// failure). Otherwise it returns the error itself — a template or script error, the
// SSRF guard's refusal, a connection or timeout error — which Kong loses: data that is
// not a JSON object or a hook that does not compile is a *hooks.SchemaError.
func (t Tester) Test(ctx context.Context, h *hooks.Hook, data []byte) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil, &hooks.SchemaError{Fields: map[string]string{"@entity": "expected a JSON object as event data"}}
	}
	sink, err := Compile(h, t.Pool, t.logger())
	if err != nil {
		return nil, err
	}
	event := h.EventName()
	if event == "" {
		event = "test"
		if s := v.GetStringBytes("event"); len(s) > 0 {
			event = string(s)
		}
	}
	out := &TestResult{Data: appendWebhookBody(nil, h.Source, event, v)}
	ev := &hooks.Event{Source: h.Source, Event: event, Time: time.Now()}
	ev.SetData(v)
	lane := &Lane{capture: &capture{}}
	res := sink.Deliver(ctx, ev, lane)
	last := lane.capture.last()
	if res.Err != nil && !answered(last) {
		return nil, res.Err
	}
	if spec := LookupHandler(sink.Handler()); spec != nil {
		spec.testResult(out, lane.capture)
	} else {
		out.Result = last
	}
	return out, nil
}

// Ping sends GET /event-hooks/{id}/ping's request to a webhook hook: a signed POST of
// {"source":"kong:event_hooks","event":"ping","event_hooks":<the hook>} where the hook's
// config.secret is left out (Kong sends it in clear). Its answer and errors are Test's;
// a hook of another handler is a *hooks.SchemaError on "handler".
func (t Tester) Ping(ctx context.Context, h *hooks.Hook) (any, error) {
	if spec := LookupHandler(h.Handler); spec == nil || !spec.Pingable {
		return nil, &hooks.SchemaError{Fields: map[string]string{"handler": "only webhook hooks can be pinged, not " + h.Handler}}
	}
	sink, err := Compile(h, t.Pool, t.logger())
	if err != nil {
		return nil, err
	}
	ws, ok := sink.(*webhookSink)
	if !ok {
		return nil, fmt.Errorf("ping hook %s: handler %s compiled to %T", h.ID, h.Handler, sink)
	}
	body, err := PingBody(h)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if ctx.Err() != nil {
		return nil, canceled(ctx, h.ID, start).Err
	}
	ev := &hooks.Event{Source: "kong:event_hooks", Event: "ping", Time: start}
	lane := &Lane{capture: &capture{}}
	res := ws.post(ctx, ev, lane, body, start)
	last := lane.capture.last()
	if res.Err != nil && !answered(last) {
		return nil, res.Err
	}
	return &TestResult{Data: body, Result: last}, nil
}

// PingBody returns the body Ping sends for h: {"source":"kong:event_hooks",
// "event":"ping","event_hooks":<h as the Admin API shows it, without config.secret>}:
// no secret value, current or previous, is ever sent.
func PingBody(h *hooks.Hook) ([]byte, error) {
	entity, err := json.Marshal(h.View(time.Now(), false))
	if err != nil {
		return nil, fmt.Errorf("cannot encode hook %s: %w", h.ID, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(entity, &fields); err != nil {
		return nil, fmt.Errorf("cannot decode hook %s: %w", h.ID, err)
	}
	var cfg map[string]json.RawMessage
	if json.Unmarshal(fields["config"], &cfg) == nil && cfg != nil {
		delete(cfg, "secret")
		if fields["config"], err = marshalNoEscape(cfg); err != nil {
			return nil, err
		}
	}
	entity, err = marshalNoEscape(fields)
	if err != nil {
		return nil, err
	}
	body := append([]byte(`{"source":"kong:event_hooks","event":"ping","event_hooks":`), entity...)
	return append(body, '}'), nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cannot encode ping body: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
