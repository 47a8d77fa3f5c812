// Package testkit holds the in-process fakes the end-to-end tests share: an embedded
// broker on a free port and a real HTTP receiver that records what arrives. It is imported
// by tests only and must not be used by the service.
package testkit

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/broker"
)

// Broker starts an embedded broker on a free loopback port, with the eventhooks topics
// bootstrapped (partitions each), and returns its address.
func Broker(t testing.TB, partitions int32) *broker.Embedded {
	t.Helper()
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{Addr: "127.0.0.1:0", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	err = broker.Bootstrap(context.Background(), kadm.NewClient(cl), broker.NewTopics("", nil),
		broker.BootstrapConfig{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return emb
}

// Request is one request the Receiver got.
type Request struct {
	Method  string
	Path    string
	Headers map[string]string
	Body    []byte
	At      time.Time
	// Status is what the receiver answered.
	Status int
}

// AnswerAfter is a Receiver.Respond that answers 200 after d: a healthy but not instant
// endpoint.
func AnswerAfter(d time.Duration) func(int, *Request) int {
	return func(int, *Request) int {
		time.Sleep(d)
		return 200
	}
}

// Receiver is a fasthttp server on a free loopback port that records every request.
type Receiver struct {
	URL string
	// Respond picks the status of the n-th request (from 0); nil answers 200.
	Respond func(n int, r *Request) int
	// RespondHeaders adds response headers to the n-th request; may be nil.
	RespondHeaders func(n int) map[string]string

	inFlight atomic.Int64
	mu       sync.Mutex
	n        int
	reqs     []*Request
	changed  chan struct{}
	srv      *fasthttp.Server
}

// NewReceiver starts a receiver, stopped when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &Receiver{URL: "http://" + ln.Addr().String(), changed: make(chan struct{})}
	rc.srv = &fasthttp.Server{Handler: rc.handle, Concurrency: 4096, DisablePreParseMultipartForm: true} // bodies as sent
	go func() { _ = rc.srv.Serve(ln) }()
	t.Cleanup(func() { _ = rc.srv.Shutdown() })
	return rc
}

func (rc *Receiver) handle(ctx *fasthttp.RequestCtx) {
	rc.inFlight.Add(1)
	defer rc.inFlight.Add(-1)
	r := &Request{
		Method:  string(ctx.Method()),
		Path:    string(ctx.RequestURI()),
		Headers: map[string]string{},
		Body:    append([]byte(nil), ctx.PostBody()...),
		At:      time.Now(),
	}
	for k, v := range ctx.Request.Header.All() {
		r.Headers[string(k)] = string(v)
	}
	rc.mu.Lock()
	n := rc.n
	rc.n++
	respond, headers := rc.Respond, rc.RespondHeaders
	rc.mu.Unlock()
	r.Status = fasthttp.StatusOK
	if respond != nil {
		r.Status = respond(n, r)
	}
	if headers != nil {
		for k, v := range headers(n) {
			ctx.Response.Header.Set(k, v)
		}
	}
	ctx.SetStatusCode(r.Status)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r)
	close(rc.changed)
	rc.changed = make(chan struct{})
	rc.mu.Unlock()
}

// InFlight returns how many requests are being answered now.
func (rc *Receiver) InFlight() int { return int(rc.inFlight.Load()) }

// Requests returns a copy of what arrived so far, in arrival order.
func (rc *Receiver) Requests() []*Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*Request(nil), rc.reqs...)
}

// WaitFor waits until at least n requests arrived, failing the test after timeout.
func (rc *Receiver) WaitFor(t testing.TB, n int, timeout time.Duration) []*Request {
	t.Helper()
	deadline := time.After(timeout)
	for {
		rc.mu.Lock()
		got, ch := len(rc.reqs), rc.changed
		rc.mu.Unlock()
		if got >= n {
			return rc.Requests()
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("receiver got %d requests within %v, want %d", got, timeout, n)
		}
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago, for processes
// that must be told their listen address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// EndOffsets sums the end offsets of topic's partitions: how many records it has had.
func EndOffsets(t testing.TB, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

// Buffer is a bytes.Buffer safe for concurrent use: the output of a logger or a process
// that the test reads while it may still be written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Peak counts what is in flight (Enter, Leave) and keeps the most there were at once:
// how a test sees whether calls overlapped, or that no more than n ever did.
type Peak struct {
	now, max atomic.Int64
}

// Enter counts one more in flight.
func (p *Peak) Enter() {
	n := p.now.Add(1)
	for {
		m := p.max.Load()
		if n <= m || p.max.CompareAndSwap(m, n) {
			return
		}
	}
}

// Leave counts one fewer in flight.
func (p *Peak) Leave() { p.now.Add(-1) }

// Max returns the most in flight at once since the start or the last Reset.
func (p *Peak) Max() int64 { return p.max.Load() }

// Reset forgets the peak, to measure a later phase alone.
func (p *Peak) Reset() { p.max.Store(0) }
