package admin

import (
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// contentTypeMetrics is the Prometheus text exposition format.
const contentTypeMetrics = "text/plain; version=0.0.4"

type statusResponse struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// GET /healthz: the process serves requests.
func (s *Server) healthz(ctx *fasthttp.RequestCtx, _ params) error {
	return respond(ctx, fasthttp.StatusOK, statusResponse{Status: "ok"})
}

// GET /readyz: hooks loaded and partitions assigned, as reported by Config.Ready.
func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ params) error {
	if s.cfg.Ready != nil {
		if ok, reason := s.cfg.Ready(); !ok {
			return respond(ctx, fasthttp.StatusServiceUnavailable, statusResponse{Status: "not ready", Reason: reason})
		}
	}
	return respond(ctx, fasthttp.StatusOK, statusResponse{Status: "ready"})
}

// GET /metrics: every series of the default VictoriaMetrics set plus process metrics,
// with HELP texts.
func (s *Server) metrics(ctx *fasthttp.RequestCtx, _ params) error {
	ctx.SetContentType(contentTypeMetrics)
	return promhelp.WritePrometheus(ctx, true)
}
