package admin

import (
	"github.com/valyala/fasthttp"
)

// ReplayService runs replay jobs for /replays. Start takes the raw POST body and reports
// a bad body as a *hooks.SchemaError; the values it returns are answered as JSON.
type ReplayService interface {
	Start(body []byte) (any, error)
	Get(id string) (any, bool)
	List() any
	Cancel(id string) bool
}

// POST /replays: start a replay job; 201 with its status.
func (s *Server) startReplay(ctx *fasthttp.RequestCtx, _ params) error {
	if s.cfg.Replays == nil {
		return errNotImplemented
	}
	body, err := readBody(ctx, nil)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	st, err := s.cfg.Replays.Start(body)
	if err != nil {
		return err
	}
	return respond(ctx, fasthttp.StatusCreated, st)
}

// GET /replays: every job, newest first.
func (s *Server) listReplays(ctx *fasthttp.RequestCtx, _ params) error {
	if s.cfg.Replays == nil {
		return errNotImplemented
	}
	return respond(ctx, fasthttp.StatusOK, map[string]any{"data": s.cfg.Replays.List()})
}

// GET /replays/{id}: one job's progress.
func (s *Server) getReplay(ctx *fasthttp.RequestCtx, p params) error {
	if s.cfg.Replays == nil {
		return errNotImplemented
	}
	st, ok := s.cfg.Replays.Get(p.id)
	if !ok {
		return errNotFound
	}
	return respond(ctx, fasthttp.StatusOK, st)
}

// DELETE /replays/{id}: interrupt a job (it stays listed, as interrupted).
func (s *Server) cancelReplay(ctx *fasthttp.RequestCtx, p params) error {
	if s.cfg.Replays == nil {
		return errNotImplemented
	}
	if !s.cfg.Replays.Cancel(p.id) {
		return errNotFound
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}
