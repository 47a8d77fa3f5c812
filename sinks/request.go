package sinks

// What every HTTP-speaking handler (webhook, webhook-custom, lambda) shares: the
// destination of a URL, configured and rendered header checks, the attempt's deadline,
// the signature headers, and send, which makes one request through the destination's
// circuit breaker and classifies the outcome.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// header is one precomputed request header.
type header struct{ key, value []byte }

var (
	contentTypeJSON = []byte("application/json")
	headerRetry     = []byte("Retry-After")
)

// parseDestination checks a destination URL (a webhook's config.url, a rendered url, a
// lambda's request url) and returns its pool key.
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
// HTTP-speaking handler, so all of them go through the destination's rate limit and
// circuit breaker: over the limit it returns a retryable Result wrapping ErrRateLimited,
// and while the breaker is open one wrapping ErrCircuitOpen, without sending anything (maxWait, the hook's max backoff, caps how long: see breaker). The
// destination's breaker is given the attempt's verdict for the destination; the verdict
// for the hook is returned, for the caller's hookGate (neutral when nothing was sent).
// req stays the caller's; the response is acquired and released here, after everything
// needed from it was read. When lane captures (Admin API tests), the request and the
// response are recorded there.
func send(ep *endpoint, req *fasthttp.Request, deadline time.Time, hookID string, lane *Lane, maxWait time.Duration) (res Result, hook verdict) {
	if ok, wait := ep.lim.take(time.Now()); !ok {
		return Result{Err: ep.lim.err, Retryable: true, RetryAfter: min(wait, maxWait)}, verdictNeutral
	}
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
	if lane != nil && lane.KeepExcerpts {
		lane.keepExcerpts(req.Body(), resp.Body())
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
