package sinks

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// classify is the one place that decides what an attempt's outcome means (see "Delivery
// outcome" in docs/design.md).
// status is the response status, or 0 when no usable response arrived; err is the
// transport error, nil when a complete response arrived.
func classify(status int, err error) (delivered, retryable bool) {
	if err != nil {
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge) && status >= 200 && status <= 299:
			// The destination answered 2xx but its response body is over
			// PoolConfig.MaxResponseBodySize: the event was accepted, the body is
			// irrelevant.
			return true, false
		case errors.Is(err, fasthttp.ErrBodyTooLarge) && status != 0:
			// A non-2xx with an oversized body: the status decides, as below.
			return classify(status, nil)
		case errors.Is(err, ErrPermanent):
			// Our own verdict (a request that cannot be built) or a Dial guard refusing
			// the destination: the same attempt would fail the same way.
			return false, false
		case isTimeout(err):
			// Connect, TLS handshake, write or response timeout, or the deadline passed:
			// the destination may be slow or briefly unreachable.
			return false, true
		case errors.Is(err, context.Canceled):
			// The processor is shutting down: not the destination's fault.
			return false, true
		default:
			// Connection refused or reset, closed before the response, DNS failure, TLS
			// errors (a certificate being rotated), no free connection in the pool:
			// transient as far as we can tell, and max_attempts bounds the cost.
			return false, true
		}
	}
	switch {
	case status >= 200 && status <= 299:
		// 2xx: delivered. Kong counts any response as delivered; we do not.
		return true, false
	case status == fasthttp.StatusRequestTimeout:
		// 408: the server gave up waiting for the request; sending it again may work.
		return false, true
	case status == statusTooEarly:
		// 425: the server does not want to risk a replay yet; later is fine.
		return false, true
	case status == fasthttp.StatusTooManyRequests:
		// 429: rate limited; retry, honouring Retry-After.
		return false, true
	case status >= 500:
		// 5xx (and anything beyond 599): the server failed, not the request.
		return false, true
	case status >= 400:
		// Other 4xx: the request is wrong for this destination (auth, URL, payload);
		// resending the same bytes gets the same answer. Dead-letter it.
		return false, false
	case status >= 300:
		// 3xx: redirects are not followed (the signature covers one URL); the hook's URL
		// needs fixing, so retrying would not help.
		return false, false
	default:
		// 0 or 1xx as a final status: a broken server. Treat like a 5xx.
		return false, true
	}
}

// isTimeout reports whether err is one of the many shapes a timeout takes.
func isTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// statusTooEarly is 425 (RFC 8470), which fasthttp does not name.
const statusTooEarly = 425

// maxRetryAfter bounds a parsed Retry-After so the Duration cannot overflow; the
// processor clamps it further to the hook's max backoff.
const maxRetryAfter = 1_000_000 * time.Hour

// parseRetryAfter parses a Retry-After value, delay-seconds or HTTP-date (RFC 9110
// §10.2.3), relative to now. It returns 0 when v is empty, unparsable or in the past.
func parseRetryAfter(v []byte, now time.Time) time.Duration {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if len(v) == 0 {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		var secs int64
		for _, c := range v {
			if c < '0' || c > '9' {
				return 0
			}
			secs = secs*10 + int64(c-'0')
			if secs > int64(maxRetryAfter/time.Second) {
				return maxRetryAfter
			}
		}
		return time.Duration(secs) * time.Second
	}
	t, err := fasthttp.ParseHTTPDate(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}
