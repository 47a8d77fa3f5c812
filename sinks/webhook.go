package sinks

import (
	"context"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

// webhookSink is the compiled webhook handler: POST Kong's body to config.url.
// Immutable after compileWebhook except for the signer pool.
type webhookSink struct {
	hookID  string
	uri     string
	ep      *endpoint
	headers []header // config.headers, validated, sorted, without managed names
	host    []byte   // a Host from config.headers, sent instead of the URL's; nil if none
	timeout time.Duration
	// circuitErr is the error of an attempt the destination's breaker turns away, built
	// once.
	circuitErr error
	gate       hookGate // the hook's own breaker and max backoff
	signing
}

func compileWebhook(h *hooks.Hook, p *Pool) (*webhookSink, error) {
	cfg, err := httpConfig[hooks.WebhookConfig](h, p, hooks.HandlerWebhook)
	if err != nil {
		return nil, err
	}
	dest, err := parseDestination(cfg.URL, cfg.SSLVerify)
	if err != nil {
		return nil, err
	}
	ep, err := p.client(dest)
	if err != nil {
		return nil, fmt.Errorf("cannot get a client for %s: %w", dest.addr, err)
	}
	s := &webhookSink{hookID: h.ID, uri: cfg.URL, timeout: timeoutOf(h), circuitErr: ep.circuitError(h.ID), gate: p.hookGate(h)}
	s.ep = withPipeline(s, p, ep, dest, cfg.Pipelining, s.timeout)
	if s.headers, s.host, err = compileHeaders(cfg.Headers); err != nil {
		return nil, err
	}
	if err := s.setSecret(cfg.Secret, h.Secrets); err != nil {
		return nil, err
	}
	return s, nil
}

// compileHeaders validates config.headers and returns them in a stable order. Names the
// request framing depends on are left to us (Content-Type is forced to JSON, as Kong
// does; Content-Length and Transfer-Encoding are computed); a Host header is returned
// apart. A name that is not an RFC 9110 token or a value with CR, LF or NUL would let a
// config inject headers, so it is an error.
func compileHeaders(m map[string]string) (hs []header, host []byte, err error) {
	names, err := headerNames(m)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range names {
		v := m[k]
		if !validHeaderValue(v) {
			return nil, nil, fmt.Errorf("%w: config.headers.%s: value contains CR, LF or NUL", ErrInvalidConfig, k)
		}
		switch headerRole(k) {
		case roleContentType, roleFraming:
			continue
		case roleHost:
			host = []byte(v)
			continue
		}
		hs = append(hs, header{key: []byte(k), value: []byte(v)})
	}
	return hs, host, nil
}

// Handler implements Sink.
func (s *webhookSink) Handler() string { return hooks.HandlerWebhook }

// Deliver implements Sink: one POST of Kong's body, signed when the hook has a secret.
func (s *webhookSink) Deliver(ctx context.Context, ev *hooks.Event, lane *Lane) Result {
	start := time.Now()
	if res, stop := unusable(ctx, s.hookID, ev, start); stop {
		return res
	}
	if res, away := s.ep.early(s.circuitErr, lane, s.gate.maxWait, start); away {
		return res
	}
	t, res, ok := s.gate.enter(lane, start)
	if !ok {
		return res
	}
	buf := getBuffer()
	buf.B = appendEventBody(buf.B[:0], ev)
	res, v := s.send(ctx, ev, lane, buf.B, start)
	putBuffer(buf)
	s.gate.exit(t, v, &res)
	return res
}

// post sends body as the hook's POST: its URL, headers and signatures. ev names the
// event for the webhook-id. Ping uses it with its own body, outside the hook's breaker
// (the destination's still applies).
func (s *webhookSink) post(ctx context.Context, ev *hooks.Event, lane *Lane, body []byte, start time.Time) Result {
	res, _ := s.send(ctx, ev, lane, body, start)
	return res
}

// send is post, also returning what the attempt says about the hook (see
// breakerVerdict).
func (s *webhookSink) send(ctx context.Context, ev *hooks.Event, lane *Lane, body []byte, start time.Time) (Result, verdict) {
	deadline := deadlineOf(ctx, start, s.timeout)
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(s.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	for i := range s.headers {
		req.Header.SetBytesKV(s.headers[i].key, s.headers[i].value)
	}
	if s.host != nil {
		req.UseHostHeader = true
		req.Header.SetHostBytes(s.host)
	}
	req.Header.SetContentTypeBytes(contentTypeJSON)
	req.SetBodyRaw(body) // not copied: body outlives the request
	s.signInto(req, s.hookID, ev, -1, start.Unix(), body, true)

	res, v := send(s.ep, req, deadline, s.hookID, lane, s.gate.maxWait)
	fasthttp.ReleaseRequest(req)
	res.Duration = time.Since(start)
	return res, v
}

// AwaitsFirstAnswer implements FirstAnswerAwaiter: the hook version or its destination
// (not the hook's while the destination turns the attempt away first).
func (s *webhookSink) AwaitsFirstAnswer() bool { return s.ep.awaitsFirstAnswer(&s.gate) }
