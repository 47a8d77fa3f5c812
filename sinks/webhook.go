package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

// header is one precomputed request header.
type header struct{ key, value []byte }

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

var (
	contentTypeJSON = []byte("application/json")
	headerRetry     = []byte("Retry-After")
)

func compileWebhook(h *hooks.Hook, p *Pool) (*webhookSink, error) {
	var cfg hooks.WebhookConfig
	if len(h.Config) > 0 {
		if err := json.Unmarshal(h.Config, &cfg); err != nil {
			return nil, fmt.Errorf("%w: cannot parse webhook config: %w", ErrInvalidConfig, err)
		}
	}
	if p == nil {
		return nil, fmt.Errorf("%w: webhook needs a client pool", ErrInvalidConfig)
	}
	dest, err := parseDestination(cfg.URL, cfg.SSLVerify)
	if err != nil {
		return nil, err
	}
	ep, err := p.client(dest)
	if err != nil {
		return nil, fmt.Errorf("cannot get a client for %s: %w", dest.addr, err)
	}
	s := &webhookSink{hookID: h.ID, uri: cfg.URL, ep: ep, timeout: timeoutOf(h), circuitErr: ep.circuitError(h.ID), gate: p.hookGate(h)}
	if s.headers, s.host, err = compileHeaders(cfg.Headers); err != nil {
		return nil, err
	}
	if err := s.setSecret(cfg.Secret); err != nil {
		return nil, err
	}
	return s, nil
}

// parseDestination checks a webhook URL and returns its pool key.
func parseDestination(raw string, sslVerify bool) (destination, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return destination{}, fmt.Errorf("%w: config.url: %w", ErrInvalidConfig, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return destination{}, fmt.Errorf("%w: config.url: scheme must be http or https", ErrInvalidConfig)
	}
	if u.Host == "" {
		return destination{}, fmt.Errorf("%w: config.url: missing host", ErrInvalidConfig)
	}
	isTLS := u.Scheme == "https"
	// ssl_verify means nothing without TLS: keep one client per plain-HTTP host.
	return destination{addr: fasthttp.AddMissingPort(u.Host, isTLS), tls: isTLS, sslVerify: sslVerify && isTLS}, nil
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

// headerNames returns the names of m sorted, checking that each is an RFC 9110 token.
func headerNames(m map[string]string) ([]string, error) {
	names := make([]string, 0, len(m))
	for k := range m {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("%w: config.headers: invalid header name %q", ErrInvalidConfig, k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

// What a configured header name means to the request builder.
const (
	roleOther       = iota
	roleContentType // Content-Type: decides the payload encoding (webhook: forced JSON)
	roleFraming     // Content-Length, Transfer-Encoding: always computed
	roleHost        // Host: sent instead of the URL's host
)

func headerRole(name string) int {
	switch {
	case strings.EqualFold(name, "content-type"):
		return roleContentType
	case strings.EqualFold(name, "content-length"), strings.EqualFold(name, "transfer-encoding"):
		return roleFraming
	case strings.EqualFold(name, "host"):
		return roleHost
	}
	return roleOther
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s is free of CR, LF and NUL, which would let a value
// inject headers.
func validHeaderValue[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
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
	s.gate.exit(t, v)
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

// deadlineOf is the deadline of an attempt started at start: the hook's timeout, or
// ctx's deadline when earlier.
func deadlineOf(ctx context.Context, start time.Time, timeout time.Duration) time.Time {
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// setSignatures sets the signature headers of sig that are present (a bodiless request
// has only webhook-id and webhook-timestamp).
func setSignatures(req *fasthttp.Request, sig signatures) {
	req.Header.SetBytesKV(headerWebhookID, sig.id)
	req.Header.SetBytesKV(headerWebhookTimestamp, sig.ts)
	if sig.kong != nil {
		req.Header.SetBytesKV(headerKongSignature, sig.kong)
		req.Header.SetBytesKV(headerWebhookSignature, sig.std)
	}
}

// maxErrorBody bounds how much of an error response's body goes into Result.Err.
const maxErrorBody = 256

// send performs one request to ep and classifies the outcome. It is shared by every
// HTTP-speaking handler, so all of them go through the destination's circuit breaker:
// while it is open, send returns a retryable Result wrapping ErrCircuitOpen without
// sending anything (maxWait, the hook's max backoff, caps how long: see breaker). The
// destination's breaker is given the attempt's verdict for the destination; the verdict
// for the hook is returned, for the caller's hookGate (neutral when nothing was sent).
// req stays the caller's; the response is acquired and released here, after everything
// needed from it was read. When lane captures (Admin API tests), the request and the
// response are recorded there.
func send(ep *endpoint, req *fasthttp.Request, deadline time.Time, hookID string, lane *Lane, maxWait time.Duration) (res Result, hook verdict) {
	a := ep.br.allow(avoidsProbes(lane), maxWait)
	if a.ticket == ticketRejected {
		return ep.br.rejection(hookID, a), verdictNeutral
	}
	t := a.ticket
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if lane != nil && lane.capture != nil {
		defer func() { lane.capture.record(req, resp, res) }()
	}

	err := ep.hc.DoDeadline(req, resp, deadline)
	status := 0
	if err == nil || errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// Only then was a status line read: fasthttp reports 200 when none was.
		status = resp.StatusCode()
	}
	dest, hook := breakerVerdict(status, err)
	ep.br.record(t, dest)
	delivered, retryable := classify(status, err)
	res = Result{Status: status, Delivered: delivered, Retryable: retryable}
	if delivered {
		return res, hook
	}
	if status != 0 {
		if ra := resp.Header.PeekBytes(headerRetry); len(ra) > 0 {
			res.RetryAfter = parseRetryAfter(ra, time.Now())
		}
	}
	res.Err = attemptError(hookID, status, err, resp.Body(), retryable)
	return res, hook
}

// attemptError describes a failed attempt, wrapping ErrPermanent or ErrTimeout where
// they apply and the transport error itself.
func attemptError(hookID string, status int, err error, body []byte, retryable bool) error {
	switch {
	case status != 0:
		var cause error = errStatus
		if !retryable {
			cause = ErrPermanent
		}
		if err != nil {
			return fmt.Errorf("deliver hook %s: %w: status %d (%w)", hookID, cause, status, err)
		}
		return fmt.Errorf("deliver hook %s: %w: status %d: %q", hookID, cause, status, bodyPrefix(body))
	case isTimeout(err) && !errors.Is(err, ErrTimeout):
		return fmt.Errorf("deliver hook %s: %w: %w", hookID, ErrTimeout, err)
	case !retryable && !errors.Is(err, ErrPermanent):
		return fmt.Errorf("deliver hook %s: %w: %w", hookID, ErrPermanent, err)
	default:
		return fmt.Errorf("deliver hook %s: %w", hookID, err)
	}
}

// errStatus is the cause of a retryable non-2xx response.
var errStatus = errors.New("unsuccessful response")

// bodyPrefix returns at most maxErrorBody bytes of body, cut at a rune boundary.
func bodyPrefix(body []byte) string {
	if len(body) <= maxErrorBody {
		return string(body)
	}
	n := maxErrorBody
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(body[n]); i++ {
		n--
	}
	b := body[:n]
	return string(b) + "…"
}
