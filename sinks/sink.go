package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

// Errors callers branch on. Every error a Sink returns wraps one of these or a transport
// error; test with errors.Is.
var (
	// ErrUnsupportedHandler is returned by Compile for a handler it does not know.
	ErrUnsupportedHandler = errors.New("unsupported handler")
	// ErrInvalidConfig is returned by Compile when a hook's config cannot be turned into a
	// sink (bad URL, undecodable whsec_ secret, header that would corrupt the request).
	ErrInvalidConfig = errors.New("invalid hook config")
	// ErrPermanent marks an outcome that retrying cannot fix: a 4xx other than 408, 425
	// and 429, a redirect, a request that cannot be built. Result.Retryable is false.
	// The SSRF Guard's refusals (ErrDestinationRefused) wrap it, and a PoolConfig.Dial
	// may wrap it to make a refused destination permanent.
	ErrPermanent = errors.New("permanent delivery failure")
	// ErrTimeout marks an attempt that ran out of time (connect, TLS handshake, write,
	// response, or the context's deadline). It is retryable.
	ErrTimeout = errors.New("delivery timed out")
)

// Result is the outcome of one delivery attempt.
type Result struct {
	// Status is the HTTP status received, 0 when no response arrived (or for non-HTTP
	// handlers).
	Status int
	// Err describes a failed attempt; nil when Delivered.
	Err error
	// Delivered is true when the destination accepted the event (2xx, or the log line was
	// written).
	Delivered bool
	// Retryable is true when a later attempt may succeed (408, 425, 429, 5xx, timeouts,
	// connection and TLS errors). False with Delivered false means permanent.
	Retryable bool
	// RetryAfter is the destination's Retry-After (seconds or HTTP date), 0 when absent,
	// unparsable or in the past; for an attempt rejected by an open circuit breaker
	// (ErrCircuitOpen: the destination's or the hook's), the time left before the
	// breaker lets this hook's attempt through as the probe — never more than the hook's
	// retry.max_backoff_ms (hooks.DefaultMaxBackoffMs when unset), and 0 while a probe
	// is in flight or, on a Lane that avoids probes, once the hook could probe. The
	// processor decides whether to honour it.
	RetryAfter time.Duration
	// ProbeDone, for an attempt rejected while a breaker's probe is in flight (the
	// destination's or the hook's), is closed when that probe has its answer: a caller
	// that waits for the breaker can wait on it — for RetryAfter at most when that is set
	// (an attempt on a Lane that avoids probes, to a destination that has not answered
	// yet). Nil otherwise.
	ProbeDone <-chan struct{}
	// Duration is the time the attempt took, request building included.
	Duration time.Duration
	// Dropped is true, with Delivered, when the hook decided to send nothing for this
	// event: a lambda whose chain returned null, undefined or an empty array. Nothing
	// was sent; the event is done.
	Dropped bool
}

// FirstAnswerAwaiter is implemented by the sinks that have breakers. AwaitsFirstAnswer
// reports whether an attempt now would be the first request to a hook version or a
// destination that has not answered yet (the probe, which waits for that answer up to the
// hook's timeout): a caller that must not wait that long sends it where its wait holds
// nobody else up. Racy by design: two callers may both be told true, and one of them
// probes; the other is turned away as usual (Result.ProbeDone).
type FirstAnswerAwaiter interface{ AwaitsFirstAnswer() bool }

// Sink delivers events for one compiled hook version. Implementations are immutable after
// Compile and safe for concurrent use (see the package doc for the one caveat about
// sharing an Event between goroutines).
type Sink interface {
	// Deliver makes one attempt to deliver ev and reports the outcome. It never retries;
	// it returns when the response arrived or the hook's timeout (or ctx's earlier
	// deadline) passed. Cancelling ctx does not interrupt a request in flight (fasthttp
	// has no cancellation); a ctx already done when Deliver starts yields a retryable
	// Result wrapping ctx.Err() without sending anything. ev is read, never kept.
	//
	// lane is the calling goroutine's state (its JavaScript runtime, the event's
	// template context, scratch buffers): pass the same *Lane for every Deliver made by
	// one goroutine, never one *Lane from two goroutines at once. nil works, at the cost
	// of a throwaway Lane per call (a new JavaScript runtime for a lambda).
	Deliver(ctx context.Context, ev *hooks.Event, lane *Lane) Result
	// Handler returns the hook's handler name ("webhook", "log", …).
	Handler() string
}

// Compile builds the Sink of one hook version; call it once per version and keep the
// result. h must have passed hooks.Validate. p provides the HTTP clients (it may be nil
// for handlers that send nothing, such as log); log receives the log handler's lines,
// lambda results and console output, and defaults to slog.Default().
//
// Compile is also the Admin API's create-time check: a template that does not parse or a
// JavaScript function that does not compile (or does not evaluate to a function) is
// reported as a *hooks.SchemaError naming the field ("config.payload.text",
// "config.functions.2", 1-based as Kong numbers array elements) with the line and the
// message. Other config errors wrap ErrInvalidConfig.
func Compile(h *hooks.Hook, p *Pool, log *slog.Logger) (Sink, error) {
	if h == nil {
		return nil, fmt.Errorf("compile hook: %w: nil hook", ErrInvalidConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	var (
		s   Sink
		err error
	)
	if spec := LookupHandler(h.Handler); spec != nil {
		s, err = spec.compile(h, p, log)
	} else {
		err = fmt.Errorf("unknown handler %q: %w", h.Handler, ErrUnsupportedHandler)
	}
	if err != nil {
		return nil, fmt.Errorf("compile hook %s: %w", h.ID, err)
	}
	return s, nil
}

// httpConfig decodes hook h's config (none: the zero config) for handler, one that
// sends HTTP requests and so needs the client pool p.
func httpConfig[C any](h *hooks.Hook, p *Pool, handler string) (C, error) {
	var cfg C
	if len(h.Config) > 0 {
		if err := json.Unmarshal(h.Config, &cfg); err != nil {
			return cfg, fmt.Errorf("%w: cannot parse %s config: %w", ErrInvalidConfig, handler, err)
		}
	}
	if p == nil {
		return cfg, fmt.Errorf("%w: %s needs a client pool", ErrInvalidConfig, handler)
	}
	return cfg, nil
}

// timeoutOf returns the hook's per-attempt timeout (hooks.Hook.AttemptTimeout).
func timeoutOf(h *hooks.Hook) time.Duration { return h.AttemptTimeout() }

// canceled is the Result of an attempt that did not start because ctx was done.
func canceled(ctx context.Context, hookID string, start time.Time) Result {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return Result{
		Err:       fmt.Errorf("deliver hook %s: %w", hookID, err),
		Retryable: true,
		Duration:  time.Since(start),
	}
}

// unusable answers a Deliver that must not send: the context has ended, or there is no
// event. stop is false when the delivery may go ahead.
func unusable(ctx context.Context, hookID string, ev *hooks.Event, start time.Time) (res Result, stop bool) {
	if ctx.Err() != nil {
		return canceled(ctx, hookID, start), true
	}
	if ev == nil {
		return Result{Err: fmt.Errorf("deliver hook %s: %w: nil event", hookID, ErrPermanent), Duration: time.Since(start)}, true
	}
	return Result{}, false
}
