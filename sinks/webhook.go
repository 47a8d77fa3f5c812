package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
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
	signed  bool
	signers sync.Pool // *signer
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
	s := &webhookSink{hookID: h.ID, uri: cfg.URL, ep: ep, timeout: timeoutOf(h)}
	if s.headers, s.host, err = compileHeaders(cfg.Headers); err != nil {
		return nil, err
	}
	if cfg.Secret != nil && *cfg.Secret != "" {
		secret := *cfg.Secret
		key, err := StandardKey(secret)
		if err != nil {
			return nil, fmt.Errorf("config.secret: %w", err)
		}
		s.signed = true
		s.signers.New = func() any { return newSigner(secret, key) }
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
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := m[k]
		if !validHeaderName(k) {
			return nil, nil, fmt.Errorf("%w: config.headers: invalid header name %q", ErrInvalidConfig, k)
		}
		if !validHeaderValue(v) {
			return nil, nil, fmt.Errorf("%w: config.headers.%s: value contains CR, LF or NUL", ErrInvalidConfig, k)
		}
		switch strings.ToLower(k) {
		case "content-type", "content-length", "transfer-encoding":
			continue
		case "host":
			host = []byte(v)
			continue
		}
		hs = append(hs, header{key: []byte(k), value: []byte(v)})
	}
	return hs, host, nil
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

func validHeaderValue(s string) bool {
	return strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, 0) < 0
}

// Handler implements Sink.
func (s *webhookSink) Handler() string { return hooks.HandlerWebhook }

// Deliver implements Sink: one POST of Kong's body, signed when the hook has a secret.
func (s *webhookSink) Deliver(ctx context.Context, ev *hooks.Event) Result {
	start := time.Now()
	if ctx.Err() != nil {
		return canceled(ctx, s.hookID, start)
	}
	if ev == nil {
		return Result{Err: fmt.Errorf("deliver hook %s: %w: nil event", s.hookID, ErrPermanent), Duration: time.Since(start)}
	}
	deadline := start.Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	buf := getBuffer()
	buf.B = appendWebhookBody(buf.B[:0], ev.Source, ev.Event, ev.Data)

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
	req.SetBodyRaw(buf.B) // not copied: buf outlives the request
	if s.signed {
		sg := s.signers.Get().(*signer)
		sig := sg.sign(s.hookID, ev, start.Unix(), buf.B)
		req.Header.SetBytesKV(headerWebhookID, sig.id)
		req.Header.SetBytesKV(headerWebhookTimestamp, sig.ts)
		req.Header.SetBytesKV(headerKongSignature, sig.kong)
		req.Header.SetBytesKV(headerWebhookSignature, sig.std)
		s.signers.Put(sg) // the header values were copied into req
	}

	res := send(s.ep, req, deadline, s.hookID)
	fasthttp.ReleaseRequest(req)
	putBuffer(buf)
	res.Duration = time.Since(start)
	return res
}

// maxErrorBody bounds how much of an error response's body goes into Result.Err.
const maxErrorBody = 256

// send performs one request to ep and classifies the outcome. It is shared by every
// HTTP-speaking handler, so all of them go through the destination's circuit breaker:
// while it is open, send returns a retryable Result wrapping ErrCircuitOpen without
// sending anything. req stays the caller's; the response is acquired and released here,
// after everything needed from it was read.
func send(ep *endpoint, req *fasthttp.Request, deadline time.Time, hookID string) Result {
	t, wait := ep.br.allow()
	if t == ticketRejected {
		return ep.br.rejection(hookID, wait)
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)

	err := ep.hc.DoDeadline(req, resp, deadline)
	status := 0
	if err == nil || errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// Only then was a status line read: fasthttp reports 200 when none was.
		status = resp.StatusCode()
	}
	ep.br.record(t, breakerVerdict(status, err))
	delivered, retryable := classify(status, err)
	res := Result{Status: status, Delivered: delivered, Retryable: retryable}
	if delivered {
		return res
	}
	if status != 0 {
		if ra := resp.Header.PeekBytes(headerRetry); len(ra) > 0 {
			res.RetryAfter = parseRetryAfter(ra, time.Now())
		}
	}
	res.Err = attemptError(hookID, status, err, resp.Body(), retryable)
	return res
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
