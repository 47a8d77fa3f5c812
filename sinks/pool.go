package sinks

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/defaults"
	"github.com/eventhooks/eventhooks/internal/promhelp"
	"github.com/eventhooks/eventhooks/scripting"
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
	// Dial, when set, opens every connection (addr is "host:port"); tests use it to
	// reach in-memory listeners. An error wrapping ErrPermanent makes the attempt
	// permanent. Nil uses fasthttp's dialer (dual stack, DNS cached for a minute), or
	// the Guard's.
	Dial func(addr string) (net.Conn, error)
	// Guard, when set, checks every connection against the SSRF rules (see Guard): it
	// resolves the host at dial time and connects only to an allowed address, within
	// the time left before the request's deadline. When Dial is set too, the Guard
	// checks first and then connects through Dial, passing it the checked "ip:port".
	// Nil: no check.
	Guard *Guard

	// DestinationRate caps the requests per second to one destination (host:port), every
	// hook together (0: no cap); a hook's own rate_limit applies as well. Over it an
	// attempt is turned away with ErrRateLimited, nothing sent.
	DestinationRate float64

	// BreakerThreshold is how many consecutive failures open a circuit breaker
	// (default 5): connection-level failures (refused, reset, DNS, TLS, timeouts) open
	// the destination's, shared by every hook sending to its host:port; HTTP status
	// failures (429, 5xx, a final 0 or 1xx) and script failures (a lambda or template
	// that throws or times out) open the breaker of the hook version alone.
	BreakerThreshold int
	// FirstAnswerWait is how long a delivery that could be parked waits for the first
	// answer of a destination or hook that has not answered yet (its first request, the
	// probe, is out) before it is turned away (default 250ms): a healthy one answers
	// well within it, even over a WAN at start-up, so it is not deferred at every start;
	// one that never answers costs its own deliveries that long, once.
	FirstAnswerWait time.Duration
	// BreakerCooldown is how long a breaker stays open before letting one probe
	// through (default 5s). Each failed probe doubles it, up to BreakerMaxCooldown.
	// A hook whose retry.max_backoff_ms is shorter is turned away for that long at
	// most: then its attempt is the probe.
	BreakerCooldown time.Duration
	// BreakerMaxCooldown caps the doubled cooldown (default 60s; at least
	// BreakerCooldown).
	BreakerMaxCooldown time.Duration
	// DisableBreaker turns the circuit breakers (and their metrics) off: every attempt
	// is sent.
	DisableBreaker bool

	// MaxDestinations bounds the destinations created for URLs computed per event (the
	// requests a lambda returns, a templated webhook-custom url), default 1024. Each
	// destination keeps a HostClient, a breaker and two metric series until Close, so a
	// script must not be able to grow the pool without limit: once the bound is reached,
	// a request to a destination not seen before fails with ErrTooManyDestinations
	// (permanent). Destinations fixed in a hook's config are not counted.
	MaxDestinations int
	// LambdaTimeout caps the time one lambda call may run (default
	// scripting.DefaultTimeout, 50ms); a hook's timeout_ms lowers it, never raises it.
	LambdaTimeout time.Duration
	// LambdaRuntimes bounds the JavaScript runtimes lambda calls borrow (default: twice
	// the CPUs Go uses). Calls beyond it wait for a runtime.
	LambdaRuntimes int
	// Logger receives the console output of lambdas (default slog.Default()).
	Logger *slog.Logger
}

// Defaults for PoolConfig.
const (
	DefaultMaxConnsPerHost     = 64
	DefaultMaxConnWaitTimeout  = 5 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultWriteTimeout        = 30 * time.Second
	DefaultMaxResponseBodySize = 1 << 20
	DefaultMaxIdleConnDuration = 60 * time.Second
	DefaultBreakerThreshold    = 5
	DefaultBreakerCooldown     = 5 * time.Second
	DefaultBreakerMaxCooldown  = 60 * time.Second
	DefaultFirstAnswerWait     = 250 * time.Millisecond
	DefaultMaxDestinations     = 1024
	DefaultLambdaTimeout       = scripting.DefaultTimeout
)

func (c *PoolConfig) applyDefaults() {
	defaults.Positive(&c.MaxConnsPerHost, DefaultMaxConnsPerHost)
	defaults.Positive(&c.MaxConnWaitTimeout, DefaultMaxConnWaitTimeout)
	defaults.Positive(&c.ReadTimeout, DefaultReadTimeout)
	defaults.Positive(&c.WriteTimeout, DefaultWriteTimeout)
	defaults.Positive(&c.MaxResponseBodySize, DefaultMaxResponseBodySize)
	defaults.Positive(&c.MaxIdleConnDuration, DefaultMaxIdleConnDuration)
	defaults.Positive(&c.BreakerThreshold, DefaultBreakerThreshold)
	defaults.Positive(&c.BreakerCooldown, DefaultBreakerCooldown)
	defaults.Positive(&c.BreakerMaxCooldown, DefaultBreakerMaxCooldown)
	defaults.Positive(&c.FirstAnswerWait, DefaultFirstAnswerWait)
	c.BreakerMaxCooldown = max(c.BreakerMaxCooldown, c.BreakerCooldown)
	defaults.Positive(&c.MaxDestinations, DefaultMaxDestinations)
	if c.LambdaRuntimes <= 0 {
		c.LambdaRuntimes = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	defaults.Positive(&c.LambdaTimeout, DefaultLambdaTimeout)
}

// destination identifies one HostClient: TLS or not, host:port, certificate checking.
type destination struct {
	addr      string // host:port, port always present
	tls       bool
	sslVerify bool
}

// endpoint is one pooled destination: its HostClient and its circuit breaker (nil when
// PoolConfig.DisableBreaker). Every HTTP handler sends through send(endpoint, …).
type endpoint struct {
	hc  *fasthttp.HostClient
	br  *breaker
	lim *destLimiter // PoolConfig.DestinationRate; nil: none
}

// early is a handler's check of ep's breaker before it builds a request, so that a
// destination that would be turned away costs no work (send asks the breaker again).
// circuitErr is the hook's rejection error, built once (see breaker.hookError); maxWait
// the hook's max backoff (see breaker.allow).
func (ep *endpoint) early(circuitErr error, lane *Lane, maxWait time.Duration, start time.Time) (Result, bool) {
	wait, away := ep.br.turnsAway(avoidsProbes(lane), maxWait)
	if !away {
		return Result{}, false
	}
	ep.br.reject()
	return Result{Err: circuitErr, Retryable: true, RetryAfter: wait, Duration: time.Since(start)}, true
}

// awaitsFirstAnswer reports whether an attempt through g to ep now would be the first
// request to either: ep's, or g's while ep lets it through (see FirstAnswerAwaiter).
func (ep *endpoint) awaitsFirstAnswer(g *hookGate) bool {
	return ep.br.awaitsFirstAnswer() || (g.br.awaitsFirstAnswer() && !ep.br.turnsAwayAvoiders())
}

// avoidsProbes reports lane.AvoidProbes; false for a nil lane.
func avoidsProbes(lane *Lane) bool { return lane != nil && lane.AvoidProbes }

// hookGate is the part of a compiled HTTP sink that guards the hook itself: its own
// circuit breaker (one per hook version, counting the hook's HTTP status and script
// failures: see breakerVerdict) and the hook's max backoff, which caps how long any
// breaker turns the hook's attempts away. The zero value lets everything through.
type hookGate struct {
	br      *breaker      // nil when PoolConfig.DisableBreaker
	err     error         // the rejection error, built once
	maxWait time.Duration // retry.max_backoff_ms, or hooks.DefaultMaxBackoffMs
	lim     *limiter      // rate_limit, max_in_flight and a receiver's 429s
}

// hookGate returns the gate of hook h, with a breaker configured as the pool's.
func (p *Pool) hookGate(h *hooks.Hook) hookGate {
	g := hookGate{maxWait: maxBackoffOf(h), lim: newLimiter(h)}
	if p != nil && !p.cfg.DisableBreaker {
		g.br = newHookBreaker(p.breakerConfig(), h.ID)
		g.err = g.br.hookError(h.ID)
	}
	return g
}

// maxBackoffOf is the hook's retry.max_backoff_ms, or the default when unset.
func maxBackoffOf(h *hooks.Hook) time.Duration {
	if h.Retry != nil && h.Retry.MaxBackoffMs > 0 {
		return time.Duration(h.Retry.MaxBackoffMs) * time.Millisecond
	}
	return hooks.DefaultMaxBackoffMs * time.Millisecond
}

// enter asks the hook's rate limiter and breaker whether an attempt may start. When it
// may not, it returns the rejection (retryable, wrapping ErrRateLimited or
// ErrCircuitOpen) and false; else the ticket to give back to exit with the attempt's
// verdict for the hook.
func (g *hookGate) enter(lane *Lane, start time.Time) (ticket, Result, bool) {
	if ok, wait := g.lim.take(start); !ok {
		return ticketRejected, Result{Err: g.lim.err, Retryable: true, RetryAfter: min(wait, g.maxWait), Duration: time.Since(start)}, false
	}
	a := g.br.allow(avoidsProbes(lane), g.maxWait)
	if a.ticket != ticketRejected {
		return a.ticket, Result{}, true
	}
	g.lim.done(start, 0, 0)
	return ticketRejected, Result{
		Err:        g.err,
		Retryable:  true,
		RetryAfter: a.wait,
		ProbeDone:  a.probeDone,
		Duration:   time.Since(start),
	}, false
}

// exit records what the attempt enter let through says about the hook: v for its
// breaker, res (a 429 and its Retry-After) for its rate.
func (g *hookGate) exit(t ticket, v verdict, res *Result) {
	g.lim.done(time.Now(), res.Status, res.RetryAfter)
	if t != ticketRejected {
		g.br.record(t, v)
	}
}

// run makes one attempt behind the hook's breaker: turned away when enter says so, else
// attempt runs on lane (a fresh one when the caller has none) and exit records its
// verdict. The lane's scratch is trimmed after, and the result's Duration is the whole
// attempt's, from start.
func (g *hookGate) run(lane *Lane, start time.Time, attempt func(*Lane) (Result, verdict)) Result {
	t, res, ok := g.enter(lane, start)
	if !ok {
		return res
	}
	if lane == nil {
		lane = &Lane{}
	}
	res, v := attempt(lane)
	g.exit(t, v, &res)
	lane.trim()
	res.Duration = time.Since(start)
	return res
}

// circuitError is the error of hookID's attempts turned away by ep's breaker; nil
// without a breaker.
func (ep *endpoint) circuitError(hookID string) error {
	if ep.br == nil {
		return nil
	}
	return ep.br.hookError(hookID)
}

// Pool holds one long-lived fasthttp.HostClient and one circuit breaker per destination,
// shared by every hook that sends there (each compiled hook has its own breaker too: see
// hookGate). Create one per process with NewPool and Close it
// on shutdown.
//
// Metrics: per destination label (host:port), eventhooks_breaker_state (0 closed, 1
// half-open, 2 open; the worst of the label's breakers when http and https or both
// ssl_verify values share a host:port) and eventhooks_breaker_rejections_total, created
// with the destination's client in a metrics.Set the pool registers with the
// VictoriaMetrics default registry and unregisters on Close.
//
// Concurrency: clients is an immutable map snapshot; readers load it without locking.
// mu serialises creation: a writer re-checks under mu, copies the map, adds the new
// endpoint and stores the copy. Endpoints are never removed before Close (idle
// connections close by themselves after MaxIdleConnDuration).
type Pool struct {
	cfg     PoolConfig
	metrics *metrics.Set // nil when the breakers are disabled
	mu      sync.Mutex
	closed  bool                    // guarded by mu
	dynamic int                     // guarded by mu; endpoints created by dynamicClient
	labels  map[string]*destMetrics // guarded by mu; by metric label suffix
	clients atomic.Pointer[map[destination]*endpoint]
	js      *runtimePool
}

// NewPool returns an empty Pool; clients are created on first use.
func NewPool(cfg PoolConfig) *Pool {
	cfg.applyDefaults()
	p := &Pool{cfg: cfg, js: newRuntimePool(cfg.LambdaRuntimes, cfg.Logger)}
	if !cfg.DisableBreaker {
		p.metrics = metrics.NewSet()
		p.labels = map[string]*destMetrics{}
		metrics.RegisterSet(p.metrics)
	}
	m := map[destination]*endpoint{}
	p.clients.Store(&m)
	return p
}

// errPoolClosed is returned for a destination first used after Close.
var errPoolClosed = errors.New("client pool is closed")

// ErrTooManyDestinations is wrapped by the error of a request to a destination computed
// per event (a lambda's request, a templated webhook-custom url) when the pool already
// holds PoolConfig.MaxDestinations such destinations. It also wraps ErrPermanent.
var ErrTooManyDestinations = fmt.Errorf("%w: too many destinations", ErrPermanent)

// client returns the endpoint for d, creating it on first use. It is for destinations
// fixed by a hook's config, resolved once at Compile.
func (p *Pool) client(d destination) (*endpoint, error) {
	return p.endpoint(d, false)
}

// dynamicClient is client for a destination computed per event: creating one counts
// against PoolConfig.MaxDestinations.
func (p *Pool) dynamicClient(d destination) (*endpoint, error) {
	return p.endpoint(d, true)
}

func (p *Pool) endpoint(d destination, dynamic bool) (*endpoint, error) {
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
	if dynamic {
		if p.dynamic >= p.cfg.MaxDestinations {
			return nil, fmt.Errorf("%w: %s would be destination %d computed by scripts and templates, over the pool's limit of %d",
				ErrTooManyDestinations, d.addr, p.dynamic+1, p.cfg.MaxDestinations)
		}
		p.dynamic++
	}
	c := &endpoint{hc: p.newHostClient(d), br: p.newBreakerLocked(d), lim: newDestLimiter(d.addr, p.cfg.DestinationRate)}
	m := make(map[destination]*endpoint, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[d] = c
	p.clients.Store(&m)
	return c, nil
}

// The families of a destination's breakers, labelled destination (host:port).
var (
	familyRejections   = promhelp.Describe("eventhooks_breaker_rejections_total", "Requests to the destination its open circuit breaker turned away.")
	familyBreakerState = promhelp.Describe("eventhooks_breaker_state", "Worst circuit breaker state of the destination: 0 closed, 1 half-open, 2 open.")
)

// newBreakerLocked returns the breaker of a new destination and registers it with its
// label's series, creating them for a new label. p.mu must be held.
func (p *Pool) newBreakerLocked(d destination) *breaker {
	if p.cfg.DisableBreaker {
		return nil
	}
	label := metricLabel(d.addr)
	dm := p.labels[label]
	if dm == nil {
		dm = &destMetrics{rejections: p.metrics.NewCounter(familyRejections + label)}
		dm.breakers.Store(&[]*breaker{})
		p.metrics.NewGauge(familyBreakerState+label, dm.state)
		p.labels[label] = dm
	}
	b := newBreaker(p.breakerConfig(), d.addr, dm.rejections)
	bs := append(append([]*breaker(nil), *dm.breakers.Load()...), b)
	dm.breakers.Store(&bs)
	return b
}

// breakerConfig is the configuration of every breaker of the pool and its hooks.
func (p *Pool) breakerConfig() breakerConfig {
	return breakerConfig{
		threshold:   int32(min(p.cfg.BreakerThreshold, 1<<30)),
		cooldown:    p.cfg.BreakerCooldown,
		maxCooldown: p.cfg.BreakerMaxCooldown,

		firstAnswerWait: p.cfg.FirstAnswerWait,
	}
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
		// Send the path as configured or rendered: fasthttp would otherwise decode %2F
		// and resolve dot segments, changing the URL a receiver routes on.
		DisablePathNormalizing: true,
		// The processor owns retries; the only one done here is resending once on a
		// keep-alive connection the server closed while it sat idle (see retryStale).
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStale,
	}
	// DialTimeout rather than Dial: fasthttp passes it the time left before the
	// request's deadline.
	c.DialTimeout = p.dialer()
	if d.tls {
		c.TLSConfig = tlsConfigOf(d)
	}
	return c
}

// dialer is how the pool's clients open a connection to addr within timeout: checked by
// the Guard, then through PoolConfig.Dial when set. Nil when neither is set: fasthttp's
// own dialer. Every client of the pool, pipelined ones included, dials through it.
func (p *Pool) dialer() fasthttp.DialFuncWithTimeout {
	switch {
	case p.cfg.Guard != nil:
		g, next := p.cfg.Guard, p.cfg.Dial
		return func(addr string, timeout time.Duration) (net.Conn, error) {
			return g.dial(addr, timeout, next)
		}
	case p.cfg.Dial != nil:
		next := p.cfg.Dial
		return func(addr string, _ time.Duration) (net.Conn, error) { return next(addr) }
	}
	return nil
}

// tlsConfigOf is the TLS configuration of a client of destination d.
func tlsConfigOf(d destination) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Kong's ssl_verify defaults to false, and hooks keep its meaning.
		InsecureSkipVerify: !d.sslVerify, //nolint:gosec // Kong-compatible opt-out
	}
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

// Close closes the idle connections of every client, refuses new destinations and
// unregisters the pool's metrics. Call it after the last Deliver; connections still in
// use close when their request ends and MaxIdleConnDuration passes.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	clients := *p.clients.Load()
	p.mu.Unlock()
	for _, c := range clients {
		c.hc.CloseIdleConnections()
	}
	if p.metrics != nil {
		metrics.UnregisterSet(p.metrics, false)
	}
}
