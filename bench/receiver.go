package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Receiver is the in-process delivery target: a fasthttp server on a free loopback port
// that answers 200 to everything, counts requests and records each one's latency, the
// time since the "ts" (unix nanoseconds) found in its body. One path may be made to fail
// (FailPath): its requests get another status and are counted apart, never in Count or
// the latencies.
type Receiver struct {
	// URL is where to send, "http://127.0.0.1:<port>/".
	URL string

	srv    *fasthttp.Server
	served chan error
	hist   *Histogram

	count     atomic.Int64
	missing   atomic.Int64 // bodies without a parsable "ts"
	first     atomic.Int64 // unix nanos of the first request since Reset
	target    atomic.Int64 // the count a Wait is waiting for, 0 if none
	reachedAt atomic.Int64 // unix nanos of the request that made count reach target
	reached   chan struct{}

	fail   atomic.Pointer[failRule] // nil: every path answers 200
	failed atomic.Int64             // requests answered by the fail rule since Reset

	ids   atomic.Pointer[idTracker] // nil unless TrackIDs was called since Reset
	delay atomic.Int64              // nanoseconds each request waits before it is handled
}

// failRule is the path FailPath made fail and its status.
type failRule struct {
	path   []byte
	status int
}

// NewReceiver starts a receiver; Close stops it.
func NewReceiver() (*Receiver, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cannot start receiver: %w", err)
	}
	r := &Receiver{
		URL:     "http://" + ln.Addr().String() + "/",
		served:  make(chan error, 1),
		hist:    NewHistogram(),
		reached: make(chan struct{}, 1),
	}
	r.srv = &fasthttp.Server{
		Handler:               r.handle,
		Concurrency:           1 << 16,
		ReadTimeout:           time.Minute,
		WriteTimeout:          time.Minute,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
	go func() { r.served <- r.srv.Serve(ln) }()
	return r, nil
}

func (r *Receiver) handle(ctx *fasthttp.RequestCtx) {
	if d := r.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if f := r.fail.Load(); f != nil && bytes.Equal(ctx.Path(), f.path) {
		r.failed.Add(1)
		ctx.SetStatusCode(f.status)
		return
	}
	now := time.Now()
	if t := r.ids.Load(); t != nil {
		t.record(ctx.PostBody(), now)
	}
	if ts, ok := sentAt(ctx.PostBody()); ok {
		r.hist.Record(time.Duration(now.UnixNano()-ts), ctx.ConnID())
	} else {
		r.missing.Add(1)
	}
	n := r.count.Add(1)
	if n == 1 {
		r.first.Store(now.UnixNano())
	}
	if n == r.target.Load() {
		r.reachedAt.Store(now.UnixNano())
		select {
		case r.reached <- struct{}{}:
		default:
		}
	}
	// 200 with an empty body: fasthttp's defaults.
}

// FailPath makes the receiver answer status to every request whose path is path (exactly,
// e.g. "/a"; the query is not part of it) and count them in Failed rather than Count, so
// that a failing hook on the receiver's host:port is told apart from the healthy ones.
// An empty path or a status of 0 turns it off. Call it between phases.
func (r *Receiver) FailPath(path string, status int) {
	if path == "" || status == 0 {
		r.fail.Store(nil)
		return
	}
	r.fail.Store(&failRule{path: []byte(path), status: status})
}

// SetDelay makes the receiver wait d before it handles each request, as a slow endpoint
// would: the request is counted, and its latency measured, once the wait is over. 0
// turns it off.
func (r *Receiver) SetDelay(d time.Duration) { r.delay.Store(int64(max(d, 0))) }

// Failed returns the requests answered by FailPath's rule since the last Reset.
func (r *Receiver) Failed() int64 { return r.failed.Load() }

// Count returns the requests received since the last Reset, those answered by FailPath's
// rule excepted.
func (r *Receiver) Count() int64 { return r.count.Load() }

// Missing returns how many of them had no "ts" to measure latency from.
func (r *Receiver) Missing() int64 { return r.missing.Load() }

// First returns when the first request since the last Reset arrived (zero if none).
func (r *Receiver) First() time.Time {
	if ns := r.first.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Latency returns the latency summary since the last Reset.
func (r *Receiver) Latency() Latency { return r.hist.Latency() }

// Reset starts a new phase: counts and latencies go back to zero, ids are no longer
// tracked. Call it between phases, while no requests arrive.
func (r *Receiver) Reset() {
	r.ids.Store(nil)
	r.count.Store(0)
	r.missing.Store(0)
	r.first.Store(0)
	r.failed.Store(0)
	r.hist.Reset()
}

// Wait waits until n requests arrived since the last Reset and returns when the n-th
// did; it fails after timeout.
func (r *Receiver) Wait(n int64, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.WaitContext(ctx, n)
}

// WaitContext is Wait until ctx is done. One Wait at a time.
func (r *Receiver) WaitContext(ctx context.Context, n int64) (time.Time, error) {
	select {
	case <-r.reached: // a stale signal of an earlier Wait
	default:
	}
	r.reachedAt.Store(0)
	r.target.Store(n)
	defer r.target.Store(0)
	for {
		if r.count.Load() >= n {
			if at := r.reachedAt.Load(); at != 0 {
				return time.Unix(0, at), nil
			}
			// Reached before the target was set (or overshot): now is the best we know.
			return time.Now(), nil
		}
		select {
		case <-r.reached:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("receiver got %d of %d requests: %w", r.count.Load(), n, ctx.Err())
		case <-time.After(100 * time.Millisecond): // belt and braces: re-check the count
		}
	}
}

// Close stops the server, waiting up to 5 s for connections to close.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.ShutdownWithContext(ctx)
	if serr := <-r.served; err == nil {
		err = serr
	}
	return err
}

var tsKey = []byte(`"ts":`)

// sentAt finds `"ts":<number>` in body and returns the number as unix nanoseconds. The
// number may be rendered as a float ("1.79e+18": a template or JavaScript that went
// through float64), at a loss of precision of a few hundred nanoseconds.
func sentAt(body []byte) (int64, bool) {
	i := bytes.Index(body, tsKey)
	if i < 0 {
		return 0, false
	}
	b := body[i+len(tsKey):]
	j := 0
	for j < len(b) && b[j] == ' ' {
		j++
	}
	start := j
	var v int64
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		v = v*10 + int64(b[j]-'0')
	}
	if j == start || j-start > 19 {
		return 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		end := j
		for end < len(b) && strings.IndexByte("0123456789.eE+-", b[end]) >= 0 {
			end++
		}
		f, err := strconv.ParseFloat(string(b[start:end]), 64)
		if err != nil || f <= 0 || f > 1<<62 {
			return 0, false
		}
		return int64(f), true
	}
	return v, true
}
