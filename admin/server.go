package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/deliveries"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/bearer"
	"github.com/eventhooks/eventhooks/internal/httpserve"
)

// HookStore is what the Admin API needs of the hook store (*hooks.Store implements it).
// Writes return once the change is in effect in this instance's snapshot.
type HookStore interface {
	Snapshot() *hooks.Snapshot
	Put(ctx context.Context, h *hooks.Hook) error
	Delete(ctx context.Context, id string) error
	PutSource(ctx context.Context, source, event string, info hooks.EventInfo) error
	DeleteSource(ctx context.Context, source, event string) error
}

// Defaults of Config and of the HTTP server.
const (
	// DefaultWriteTimeout is Config.WriteTimeout when it is zero.
	DefaultWriteTimeout = 10 * time.Second
	// MaxRequestBodySize caps request bodies; larger ones get 413.
	MaxRequestBodySize = 1 << 20
)

// Config configures a Server. Store and Catalogue are required.
type Config struct {
	// Store holds the hooks and registered sources.
	Store HookStore
	// Catalogue validates sources and events and answers /event-hooks/sources; it must be
	// the catalogue the Store updates.
	Catalogue *hooks.Catalogue
	// Check compiles a validated hook the way the processor will (templates, JS, URLs);
	// nil means no extra check. Its error is a 400 schema violation on "config", or on its
	// own fields when it is a *hooks.SchemaError.
	Check func(*hooks.Hook) error
	// Warn returns a warning about a valid hook (e.g. a destination the SSRF guard will
	// refuse), sent as a Warning header and logged; nil or "" = none.
	Warn func(*hooks.Hook) string
	// Loaded, when set, is closed once the Store has read the hooks topic to its end; writes
	// wait for it (within WriteTimeout, then 503).
	Loaded <-chan struct{}
	// Replays runs replay jobs for /replays; nil answers 501.
	Replays ReplayService
	// Deliveries is the delivery log for /event-hooks/{id}/deliveries, /deliveries and
	// /dead-letters; nil answers 501.
	Deliveries *deliveries.Log
	// Console serves the web console under /ui; nil: 404.
	Console Console
	// Ready reports readiness for /readyz (hooks loaded and partitions assigned) with a
	// reason when not ready; nil means always ready.
	Ready func() (bool, string)
	// Test runs a hook now on the posted data for POST /event-hooks/{id}/test and returns
	// the response body ({"data":…,"result":…}); nil answers 501. An error matching
	// hooks.ErrSchema is a 400 schema violation, a timeout 504, any other error 502.
	Test func(ctx context.Context, h *hooks.Hook, data []byte) (any, error)
	// Ping sends a ping to a webhook hook for GET /event-hooks/{id}/ping and returns the
	// response body (nil: empty 200); nil answers 501. Errors map as for Test.
	Ping func(ctx context.Context, h *hooks.Hook) (any, error)
	// Token, when set, is required as "Authorization: Bearer <token>" or
	// "Kong-Admin-Token: <token>" on every route except /healthz, /readyz and /metrics.
	Token string
	// MetricsToken, when set, is required as "Authorization: Bearer <token>" on /metrics;
	// unset, /metrics is public (it shows destination host:port labels, hook ids and
	// request counts).
	MetricsToken string
	// WriteTimeout bounds how long a write waits for the store (default 10s); on timeout
	// the client gets 504. Test and ping calls get at least this long too.
	WriteTimeout time.Duration
	// Logger receives request errors (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for created_at/updated_at (default time.Now).
	Now func() time.Time
}

// Server is the Admin API. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	srv      *httpserve.Server
	routes   map[string]*route
	other    *route
	writeSem chan struct{}
}

// New validates cfg, fills its defaults and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin: Config.Store is required")
	}
	if cfg.Catalogue == nil {
		return nil, errors.New("admin: Config.Catalogue is required")
	}
	if cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("admin: Config.WriteTimeout must not be negative, got %s", cfg.WriteTimeout)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, writeSem: make(chan struct{}, 1)}
	// # HELP/# TYPE lines let Prometheus see histograms as histograms.
	metrics.ExposeMetadata(true)
	s.routes, s.other = s.routeTable()
	s.srv = httpserve.New(httpserve.Config{
		Handler:            s.serve,
		ErrorHandler:       s.serverError,
		MaxRequestBodySize: MaxRequestBodySize,
		Logger:             cfg.Logger,
		LogMsg:             "admin http server",
	})
	return s, nil
}

// Handler returns the request handler, for serving on a fasthttp.Server of one's own.
func (s *Server) Handler() fasthttp.RequestHandler { return s.serve }

// Serve serves the Admin API on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// ListenAndServe listens on the TCP address addr and serves the Admin API until Shutdown.
func (s *Server) ListenAndServe(addr string) error { return s.srv.ListenAndServe(addr) }

// Shutdown stops accepting connections and waits for in-flight requests until ctx is done;
// then writes still waiting on the store are cancelled (their clients get 503).
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// serve is the fasthttp handler: route, authenticate, dispatch, count.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	rt, p := s.match(ctx.Path())
	defer func() {
		if v := recover(); v != nil {
			s.fail(ctx, fmt.Errorf("panic in %s %s: %v", ctx.Method(), rt.pattern, v))
		}
		rt.count(ctx.Response.StatusCode())
	}()
	if err := s.dispatch(ctx, rt, p); err != nil {
		s.fail(ctx, err)
	}
}

func (s *Server) dispatch(ctx *fasthttp.RequestCtx, rt *route, p params) error {
	if !rt.public && !s.authorized(ctx) {
		return errUnauthorized
	}
	if rt.pattern == patMetrics && s.cfg.MetricsToken != "" && !bearer.Is(ctx, s.cfg.MetricsToken) {
		return errUnauthorized
	}
	if rt == s.other {
		return errNotFound
	}
	method := string(ctx.Method())
	if method == fasthttp.MethodHead {
		method = fasthttp.MethodGet
	}
	h := rt.methods[method]
	if h == nil {
		ctx.Response.Header.Set("Allow", rt.allow)
		return errMethodNotAllowed
	}
	return h(ctx, p)
}

// authorized checks the admin token in constant time.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	if s.cfg.Token == "" {
		return true
	}
	if got := ctx.Request.Header.Peek("Kong-Admin-Token"); len(got) > 0 {
		return bearer.Equal(got, s.cfg.Token)
	}
	return bearer.Is(ctx, s.cfg.Token)
}

// serverError answers requests fasthttp could not read (too large, malformed, timed out).
func (s *Server) serverError(ctx *fasthttp.RequestCtx, err error) {
	status, err := httpserve.ReadError(err, MaxRequestBodySize)
	ctx.ResetBody()
	s.other.count(status)
	s.fail(ctx, &apiError{status: status, Message: err.Error()})
}

// writeCtx returns the context a write runs under: WriteTimeout, cancelled on Shutdown.
func (s *Server) writeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.srv.Context(), s.cfg.WriteTimeout)
}

// lockWrites takes the write semaphore, giving up when ctx is done.
func (s *Server) lockWrites(ctx context.Context) error {
	select {
	case s.writeSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot start write: another write is still running: %w", ctx.Err())
	}
}

func (s *Server) unlockWrites() { <-s.writeSem }
