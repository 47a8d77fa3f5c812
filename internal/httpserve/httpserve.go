// Package httpserve serves a fasthttp handler on a listener and stops it gracefully, with
// the timeouts, server name and JSON answers the Admin API and HTTP ingest share. It owns
// nothing else: routes, authentication and metrics stay with its callers.
package httpserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Settings of every server.
const (
	serverName   = "eventhooks"
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 2 * time.Minute
)

// ContentTypeJSON is the Content-Type of JSON answers (what Kong's Admin API sends).
const ContentTypeJSON = "application/json; charset=utf-8"

// Config configures a Server. Handler is required.
type Config struct {
	// Handler answers requests.
	Handler fasthttp.RequestHandler
	// ErrorHandler answers requests fasthttp could not read (see ReadError).
	ErrorHandler func(*fasthttp.RequestCtx, error)
	// MaxRequestBodySize caps request bodies; fasthttp hands larger ones to ErrorHandler.
	MaxRequestBodySize int
	// Concurrency bounds the connections served at once (0: fasthttp's default).
	Concurrency int
	// Logger receives fasthttp's own messages, as LogMsg with their text in "msg".
	Logger *slog.Logger
	// LogMsg is the message of those log lines.
	LogMsg string
}

// Server is a fasthttp server with a context that ends at Shutdown.
type Server struct {
	srv    *fasthttp.Server
	base   context.Context
	cancel context.CancelFunc
}

// New returns a Server ready to Serve.
func New(cfg Config) *Server {
	s := &Server{}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.srv = &fasthttp.Server{
		Handler:                      cfg.Handler,
		ErrorHandler:                 cfg.ErrorHandler,
		Name:                         serverName,
		ReadTimeout:                  readTimeout,
		WriteTimeout:                 writeTimeout,
		IdleTimeout:                  idleTimeout,
		MaxRequestBodySize:           cfg.MaxRequestBodySize,
		Concurrency:                  cfg.Concurrency,
		DisablePreParseMultipartForm: true,
		Logger:                       logger{cfg.Logger, cfg.LogMsg},
	}
	return s
}

// Context ends when Shutdown is called: work a request started should stop then.
func (s *Server) Context() context.Context { return s.base }

// Serve serves on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// ListenAndServe listens on the TCP address addr and serves until Shutdown.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections and waits for in-flight requests until ctx is
// done; then it ends Context.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	s.cancel()
	return err
}

// ReadError maps an error fasthttp met reading a request to its status: 413 for a body
// over maxBody bytes (err then says so), 408 for a timeout, else 400.
func ReadError(err error, maxBody int) (int, error) {
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, fmt.Errorf("request body exceeds %d bytes", maxBody)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fasthttp.StatusRequestTimeout, err
	}
	return fasthttp.StatusBadRequest, err
}

// JSON writes v as a JSON body (HTML not escaped, no trailing newline) with status.
func JSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("cannot encode response: %w", err)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(ContentTypeJSON)
	ctx.SetBody(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return nil
}

// logger sends fasthttp's own messages to slog.
type logger struct {
	log *slog.Logger
	msg string
}

func (l logger) Printf(format string, args ...any) {
	l.log.Warn(l.msg, "msg", fmt.Sprintf(format, args...))
}
