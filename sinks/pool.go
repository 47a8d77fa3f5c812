package sinks

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// PoolConfig configures the HTTP clients of a Pool. Zero fields take the defaults below.
type PoolConfig struct {
	// MaxConnsPerHost bounds the connections to one destination (default 64).
	MaxConnsPerHost int
	// MaxConnWaitTimeout is how long a delivery waits for a free connection when
	// MaxConnsPerHost are busy (default 5s; fasthttp's 0 would fail at once).
	MaxConnWaitTimeout time.Duration
	// ReadTimeout bounds reading one response (default 30s). The hook's timeout, applied
	// per attempt with DoDeadline, is usually shorter.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one request (default 30s).
	WriteTimeout time.Duration
	// MaxResponseBodySize caps a response body (default 1 MiB). A 2xx with a larger body
	// still counts as delivered.
	MaxResponseBodySize int
	// MaxIdleConnDuration closes keep-alive connections idle for longer (default 60s).
	MaxIdleConnDuration time.Duration
	// Dial, when set, opens every connection (addr is "host:port"). It is the seam for
	// the SSRF guard: resolve, check the resolved IPs, dial one of them; return an error
	// wrapping ErrPermanent to make the refusal permanent. Nil uses fasthttp's dialer
	// (dual stack, DNS cached for a minute).
	Dial func(addr string) (net.Conn, error)
}

// Defaults for PoolConfig.
const (
	DefaultMaxConnsPerHost     = 64
	DefaultMaxConnWaitTimeout  = 5 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultWriteTimeout        = 30 * time.Second
	DefaultMaxResponseBodySize = 1 << 20
	DefaultMaxIdleConnDuration = 60 * time.Second
)

func (c *PoolConfig) applyDefaults() {
	if c.MaxConnsPerHost <= 0 {
		c.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if c.MaxConnWaitTimeout <= 0 {
		c.MaxConnWaitTimeout = DefaultMaxConnWaitTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxResponseBodySize <= 0 {
		c.MaxResponseBodySize = DefaultMaxResponseBodySize
	}
	if c.MaxIdleConnDuration <= 0 {
		c.MaxIdleConnDuration = DefaultMaxIdleConnDuration
	}
}

// destination identifies one HostClient: TLS or not, host:port, certificate checking.
type destination struct {
	addr      string // host:port, port always present
	tls       bool
	sslVerify bool
}

// Pool holds one long-lived fasthttp.HostClient per destination, shared by every hook
// that sends there. Create one per process with NewPool and Close it on shutdown.
//
// Concurrency: clients is an immutable map snapshot; readers load it without locking.
// mu serialises creation: a writer re-checks under mu, copies the map, adds the new
// client and stores the copy. Clients are never removed before Close (idle connections
// close by themselves after MaxIdleConnDuration).
type Pool struct {
	cfg     PoolConfig
	mu      sync.Mutex
	closed  bool // guarded by mu
	clients atomic.Pointer[map[destination]*fasthttp.HostClient]
}

// NewPool returns an empty Pool; clients are created on first use.
func NewPool(cfg PoolConfig) *Pool {
	cfg.applyDefaults()
	p := &Pool{cfg: cfg}
	m := map[destination]*fasthttp.HostClient{}
	p.clients.Store(&m)
	return p
}

// errPoolClosed is returned for a destination first used after Close.
var errPoolClosed = errors.New("client pool is closed")

// client returns the HostClient for d, creating it on first use.
func (p *Pool) client(d destination) (*fasthttp.HostClient, error) {
	if c, ok := (*p.clients.Load())[d]; ok {
		return c, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	old := *p.clients.Load()
	if c, ok := old[d]; ok {
		return c, nil
	}
	c := p.newHostClient(d)
	m := make(map[destination]*fasthttp.HostClient, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[d] = c
	p.clients.Store(&m)
	return c, nil
}

func (p *Pool) newHostClient(d destination) *fasthttp.HostClient {
	c := &fasthttp.HostClient{
		Addr:                d.addr,
		Name:                "eventhooks",
		IsTLS:               d.tls,
		MaxConns:            p.cfg.MaxConnsPerHost,
		MaxConnWaitTimeout:  p.cfg.MaxConnWaitTimeout,
		ReadTimeout:         p.cfg.ReadTimeout,
		WriteTimeout:        p.cfg.WriteTimeout,
		MaxResponseBodySize: p.cfg.MaxResponseBodySize,
		MaxIdleConnDuration: p.cfg.MaxIdleConnDuration,
		DialDualStack:       true,
		// The processor owns retries; the only one done here is resending once on a
		// keep-alive connection the server closed while it sat idle (see retryStale).
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStale,
	}
	if p.cfg.Dial != nil {
		c.Dial = p.cfg.Dial
	}
	if d.tls {
		c.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Kong's ssl_verify defaults to false, and hooks keep its meaning.
			InsecureSkipVerify: !d.sslVerify, //nolint:gosec // Kong-compatible opt-out
		}
	}
	return c
}

// retryStale lets fasthttp resend a request once when the connection broke before any
// response byte arrived: typically a pooled keep-alive connection the server closed while
// it was idle (Node's default keep-alive is 5 s, ours 60 s). Without it such a request
// would cost the hook an attempt and a backoff. The resend can duplicate a delivery the
// server processed before dropping the connection, which at-least-once delivery with a
// stable webhook-id already allows. Timeouts and everything else are left to the processor.
func retryStale(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > 1 {
		return false, false
	}
	return false, errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Close closes the idle connections of every client and refuses new destinations. Call it
// after the last Deliver; connections still in use close when their request ends and
// MaxIdleConnDuration passes.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	clients := *p.clients.Load()
	p.mu.Unlock()
	for _, c := range clients {
		c.CloseIdleConnections()
	}
}
