package sinks

// HTTP/1.1 pipelining for the hooks that opt in (config.pipeline): a hook version's
// requests to its configured destination are written one after another on a few
// connections of its own, without waiting for the previous response. The pipelined
// client is fasthttp's PipelineClient, put behind a HostClient as its Transport, so that
// send, the destination's rate limit and breaker, the hook's gate, signing and the
// classification of outcomes are the keep-alive path's, unchanged.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

// withPipeline returns the endpoint through which owner, a compiled sink, sends to its
// configured destination d: ep itself, or, when the hook opted in, a pipelined client of
// the hook version's own behind ep's breaker and rate limit (shared with every hook
// sending to d). Its connections are closed once owner is garbage: its hook version was
// replaced or deleted. timeout (the hook's) bounds a connection's set-up by the
// pipeline itself.
func withPipeline[T any](owner *T, p *Pool, ep *endpoint, d destination, o hooks.Pipelining, timeout time.Duration) *endpoint {
	if !o.Pipeline {
		return ep
	}
	pl := p.newPipeline(d, o, timeout)
	runtime.AddCleanup(owner, (*pipeline).close, pl)
	return &endpoint{hc: pl.hc, br: ep.br, lim: ep.lim}
}

// pipeline is a hook version's pipelined client of one destination. It is the
// fasthttp.RoundTripper of hc, the HostClient send uses.
//
// fasthttp's PipelineClient dials on a goroutine of its own and keeps requests queued
// while it cannot connect, so a refused or unreachable destination would show as a
// timeout of every request. When no connection is open, RoundTrip therefore dials
// itself, with the request's time left, and hands the connection over (spare): a dial
// fails the request with the error the keep-alive client gives (refused, DNS, TLS, the
// SSRF guard's permanent refusal), and classification stays the same.
type pipeline struct {
	pc      fasthttp.PipelineClient
	hc      *fasthttp.HostClient
	addr    string
	dial    fasthttp.DialFuncWithTimeout // the pool's (SSRF guard, PoolConfig.Dial)
	tls     *tls.Config                  // nil for plain HTTP
	timeout time.Duration                // of a connection the PipelineClient opens

	live  atomic.Int32   // connections open, spare included
	spare chan spareConn // capacity 1: a connection RoundTrip opened, not yet taken

	mu     sync.Mutex // guards conns and closed; serialises RoundTrip's dials
	conns  map[*pipeConn]struct{}
	closed bool
}

// spareConn is a connection RoundTrip opened for the PipelineClient, and when.
type spareConn struct {
	c  *pipeConn
	at time.Time
}

// spareMaxAge is how long a spare connection stays usable: older, a receiver may have
// closed it as idle, and a fresh one is dialed instead.
const spareMaxAge = 2 * time.Second

// errPipelineClosed is returned once a pipeline's hook version is gone.
var errPipelineClosed = errors.New("pipelined client of a replaced hook version")

// newPipeline returns the pipelined client of d, configured as the pool's clients.
func (p *Pool) newPipeline(d destination, o hooks.Pipelining, timeout time.Duration) *pipeline {
	t := &pipeline{
		addr:    d.addr,
		dial:    p.dialer(),
		timeout: timeout,
		spare:   make(chan spareConn, 1),
		conns:   map[*pipeConn]struct{}{},
	}
	if t.dial == nil {
		t.dial = fasthttp.DialDualStackTimeout
	}
	if d.tls {
		t.tls = tlsConfigOf(d)
		t.tls.ServerName, _, _ = net.SplitHostPort(d.addr)
	}
	t.pc = fasthttp.PipelineClient{
		Addr:                d.addr,
		Name:                "eventhooks",
		Dial:                t.workerDial, // TLS included: IsTLS stays false
		MaxConns:            o.Conns(),
		MaxPendingRequests:  o.Pending(),
		MaxIdleConnDuration: p.cfg.MaxIdleConnDuration,
		ReadTimeout:         p.cfg.ReadTimeout,
		WriteTimeout:        p.cfg.WriteTimeout,
		MaxResponseBodySize: p.cfg.MaxResponseBodySize,
		// As the pool's clients: the path as configured or rendered.
		DisablePathNormalizing: true,
		// Its errors reach the requests they fail; its log would repeat them.
		Logger: discardLogger{},
	}
	// The pool's client for the destination, its requests handed to the pipeline (with a
	// Transport, fasthttp neither dials nor pools connections itself).
	t.hc = p.newHostClient(d)
	t.hc.Transport = t
	return t
}

// RoundTrip implements fasthttp.RoundTripper: one request through the PipelineClient,
// within the request's time left. The body must be raw (Request.SetBodyRaw), as every
// sink sets it: it is copied into a buffer of the request's own, which the pipeline
// keeps if the request times out while queued, so that the caller's buffer can go back
// to its pool; it is set back for the excerpts and captures read after send.
func (t *pipeline) RoundTrip(_ *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (retry bool, err error) {
	timeout := req.GetTimeOut()
	if t.live.Load() == 0 {
		if err := t.connect(timeout); err != nil {
			return false, err
		}
	}
	body := req.Body()
	if len(body) > 0 {
		req.SetBody(body)
	}
	err = t.pc.DoTimeout(req, resp, timeout)
	if len(body) > 0 {
		req.SetBodyRaw(body)
	}
	return err != nil, err // retryStale decides
}

// connect opens a connection for the PipelineClient unless one is open, so that a
// destination that cannot be reached fails the request at once with the dial's error.
// Concurrent callers wait for one dial.
func (t *pipeline) connect(timeout time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errPipelineClosed
	}
	if t.live.Load() > 0 {
		return nil
	}
	c, err := t.dialConn(timeout)
	if err != nil {
		return err
	}
	// Never blocks: only connect sends, under mu, while nothing is live (a spare counts).
	t.spare <- spareConn{c: t.trackLocked(c), at: time.Now()}
	return nil
}

// workerDial is the PipelineClient's Dial: the spare connection when there is a fresh
// one, else a new connection.
func (t *pipeline) workerDial(string) (net.Conn, error) {
	select {
	case s := <-t.spare:
		if time.Since(s.at) < spareMaxAge {
			return s.c, nil
		}
		_ = s.c.Close()
	default:
	}
	c, err := t.dialConn(t.timeout)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = c.Close()
		return nil, errPipelineClosed
	}
	return t.trackLocked(c), nil
}

// dialConn opens a connection through the pool's dialer, TLS handshake done for https.
func (t *pipeline) dialConn(timeout time.Duration) (net.Conn, error) {
	c, err := t.dial(t.addr, timeout)
	if err != nil || t.tls == nil {
		return c, err
	}
	tc := tls.Client(c, t.tls)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", t.addr, err)
	}
	return tc, nil
}

// trackLocked counts c as open until it is closed. t.mu must be held.
func (t *pipeline) trackLocked(c net.Conn) *pipeConn {
	pc := &pipeConn{Conn: c, t: t}
	t.conns[pc] = struct{}{}
	t.live.Add(1)
	return pc
}

// forgetLocked stops counting c as open. t.mu must be held.
func (t *pipeline) forgetLocked(c *pipeConn) {
	delete(t.conns, c)
	t.live.Add(-1)
}

// close closes every connection and refuses new ones: the hook version is gone. The
// PipelineClient's goroutines end with their connections (nobody uses it any more).
func (t *pipeline) close() {
	t.mu.Lock()
	t.closed = true
	conns := make([]*pipeConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// pipeConn is a connection of a pipeline, forgotten by it when closed.
type pipeConn struct {
	net.Conn
	t    *pipeline
	once sync.Once
}

// Close closes the connection and takes it off its pipeline's count.
func (c *pipeConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.t.mu.Lock()
		c.t.forgetLocked(c)
		c.t.mu.Unlock()
	})
	return err
}

// discardLogger drops the PipelineClient's log lines.
type discardLogger struct{}

// Printf implements fasthttp.Logger.
func (discardLogger) Printf(string, ...any) {}
