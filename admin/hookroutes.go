package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
	"github.com/google/uuid"
	"github.com/valyala/fasthttp"
)

// canonicalID returns the lower-case form of a hyphenated uuid, and whether s is one.
func canonicalID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// lookup returns the hook of a path id; a malformed id is not found, as in Kong.
func (s *Server) lookup(rawID string) (*hooks.Hook, error) {
	id, ok := canonicalID(rawID)
	if !ok {
		return nil, errNotFound
	}
	h, ok := s.cfg.Store.Snapshot().Get(id)
	if !ok {
		return nil, errNotFound
	}
	return h, nil
}

// GET /event-hooks
func (s *Server) listHooks(ctx *fasthttp.RequestCtx, _ params) error {
	pg, err := parsePage(ctx.QueryArgs())
	if err != nil {
		return err
	}
	resp := pg.list(s.cfg.Store.Snapshot().Hooks)
	for i, h := range resp.Data {
		resp.Data[i] = s.view(ctx, h)
	}
	return respond(ctx, fasthttp.StatusOK, resp)
}

// GET /event-hooks/{id}
func (s *Server) getHook(ctx *fasthttp.RequestCtx, p params) error {
	h, err := s.lookup(p.id)
	if err != nil {
		return err
	}
	return respond(ctx, fasthttp.StatusOK, s.view(ctx, h))
}

// POST /event-hooks
func (s *Server) createHook(ctx *fasthttp.RequestCtx, _ params) error {
	body, err := readBody(ctx, formTypes)
	if err != nil {
		return err
	}
	return s.writeHook(ctx, fasthttp.StatusCreated, func(snap *hooks.Snapshot) (*hooks.Hook, error) {
		h, err := hooks.ParseHook(body)
		if err != nil {
			return nil, err
		}
		if err := h.CarrySecrets(nil); err != nil || h.ID == "" {
			return h, err
		}
		id, ok := canonicalID(h.ID)
		if !ok {
			return nil, schemaViolation("id", "expected a uuid")
		}
		if _, exists := snap.Get(id); exists {
			return nil, uniqueViolation(id)
		}
		h.ID = id
		return h, nil
	})
}

// PATCH /event-hooks/{id}
func (s *Server) patchHook(ctx *fasthttp.RequestCtx, p params) error {
	body, err := readBody(ctx, formTypes)
	if err != nil {
		return err
	}
	return s.writeHook(ctx, fasthttp.StatusOK, func(*hooks.Snapshot) (*hooks.Hook, error) {
		old, err := s.lookup(p.id)
		if err != nil {
			return nil, err
		}
		h, err := hooks.Merge(old, body)
		if err != nil {
			return nil, err
		}
		return h, h.CarrySecrets(old)
	})
}

// PUT /event-hooks/{id}: create or replace; the path id wins, created_at is kept.
func (s *Server) putHook(ctx *fasthttp.RequestCtx, p params) error {
	id, ok := canonicalID(p.id)
	if !ok {
		return schemaViolation("id", "expected a uuid")
	}
	body, err := readBody(ctx, formTypes)
	if err != nil {
		return err
	}
	return s.writeHook(ctx, fasthttp.StatusOK, func(snap *hooks.Snapshot) (*hooks.Hook, error) {
		h, err := hooks.ParseHook(body)
		if err != nil {
			return nil, err
		}
		h.ID = id
		old, ok := snap.Get(id)
		if ok {
			h.CreatedAt = old.CreatedAt
		}
		return h, h.CarrySecrets(old)
	})
}

// DELETE /event-hooks/{id}: 204 whether or not it existed, as in Kong.
func (s *Server) deleteHook(ctx *fasthttp.RequestCtx, p params) error {
	id, ok := canonicalID(p.id)
	if ok {
		err := s.write(func(wctx context.Context) error { return s.cfg.Store.Delete(wctx, id) })
		if err != nil && !errors.Is(err, hooks.ErrNotFound) {
			return err
		}
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// write runs fn under the write semaphore with the write timeout, mapping store errors.
func (s *Server) write(fn func(ctx context.Context) error) error {
	wctx, cancel := s.writeCtx()
	defer cancel()
	if err := s.lockWrites(wctx); err != nil {
		return storeError(err)
	}
	defer s.unlockWrites()
	if s.cfg.Loaded != nil { // checks against a partly read hooks topic would be wrong
		select {
		case <-s.cfg.Loaded:
		case <-wctx.Done():
			return &apiError{status: fasthttp.StatusServiceUnavailable, Message: "hooks are still loading from the hooks topic; retry shortly"}
		}
	}
	if err := fn(wctx); err != nil {
		return storeError(err)
	}
	return nil
}

// writeHook builds a hook from the current snapshot under the write semaphore, validates
// and checks it, stores it and answers with the entity as stored (see view).
func (s *Server) writeHook(ctx *fasthttp.RequestCtx, status int, build func(*hooks.Snapshot) (*hooks.Hook, error)) error {
	stored, err := s.storeHook(ctx, build)
	if err != nil {
		return err
	}
	return respond(ctx, status, s.view(ctx, stored))
}

// storeHook is writeHook without the answer: it returns the hook as stored.
func (s *Server) storeHook(ctx *fasthttp.RequestCtx, build func(*hooks.Snapshot) (*hooks.Hook, error)) (*hooks.Hook, error) {
	var stored *hooks.Hook
	err := s.write(func(wctx context.Context) error {
		h, err := build(s.cfg.Store.Snapshot())
		if err != nil {
			return err
		}
		if err := s.validate(h); err != nil {
			return err
		}
		if err := nameTaken(s.cfg.Store.Snapshot(), h); err != nil {
			return err
		}
		s.warn(ctx, h)
		if err := s.cfg.Store.Put(wctx, h); err != nil {
			return err
		}
		stored = h
		if back, ok := s.cfg.Store.Snapshot().Get(h.ID); ok {
			stored = back
		}
		return nil
	})
	return stored, err
}

// validate runs hooks.Validate, then Config.Check as a schema violation on "config".
func (s *Server) validate(h *hooks.Hook) error {
	if err := hooks.Validate(h, s.cfg.Catalogue, s.cfg.Now()); err != nil {
		return err
	}
	if s.cfg.Check == nil {
		return nil
	}
	err := s.cfg.Check(h)
	var se *hooks.SchemaError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se
	}
	return schemaViolation("config", err.Error())
}

// warn adds Config.Warn's message about an accepted hook as a Warning header (RFC 9111
// style) and logs it: the hook is stored, but will likely not be delivered as is.
func (s *Server) warn(ctx *fasthttp.RequestCtx, h *hooks.Hook) {
	if s.cfg.Warn == nil {
		return
	}
	if msg := s.cfg.Warn(h); msg != "" {
		ctx.Response.Header.Set("Warning", `299 eventhooks "`+strings.ReplaceAll(msg, `"`, `'`)+`"`)
		s.log.Warn("hook accepted with a warning", "hook_id", h.ID, "warning", msg)
	}
}

// nameTaken returns Kong's 409 when another hook already has h's name: people and
// tooling refer to hooks by name. A hook keeps a name it already has, so hooks that an
// older version let share a name can still be changed (writes are serialised per
// instance: two instances creating the same name at the same moment can both succeed).
func nameTaken(snap *hooks.Snapshot, h *hooks.Hook) error {
	if h.Name == nil || *h.Name == "" {
		return nil
	}
	if old, ok := snap.Get(h.ID); ok && old.Name != nil && *old.Name == *h.Name {
		return nil
	}
	for _, o := range snap.Hooks {
		if o.ID != h.ID && o.Name != nil && *o.Name == *h.Name {
			return &apiError{status: fasthttp.StatusConflict, Code: codeUniqueViolation, Name: "unique constraint violation",
				Message: fmt.Sprintf(`UNIQUE violation detected on '{name="%s"}'`, *h.Name), Fields: map[string]string{"name": *h.Name}}
		}
	}
	return nil
}

// uniqueViolation is Kong's 409 for an id that exists.
func uniqueViolation(id string) error {
	return &apiError{status: fasthttp.StatusConflict, Code: codeUniqueViolation, Name: "unique constraint violation",
		Message: fmt.Sprintf(`UNIQUE violation detected on '{id="%s"}'`, id), Fields: map[string]string{"id": id}}
}

// POST /event-hooks/{id}/test: run the hook now on the posted data.
func (s *Server) testHook(ctx *fasthttp.RequestCtx, p params) error {
	if s.cfg.Test == nil {
		return errNotImplemented
	}
	h, err := s.lookup(p.id)
	if err != nil {
		return err
	}
	data, err := readBody(ctx, nil)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		data = []byte("{}")
	}
	if err := testData(data); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(s.srv.Context(), s.callTimeout(h))
	defer cancel()
	res, err := s.cfg.Test(cctx, h.Clone(), data)
	if err != nil {
		return callError(err)
	}
	return respond(ctx, fasthttp.StatusOK, res)
}

// testData checks that the body of /test is an event's data: a JSON object. The 400 says
// what was posted instead, in JSON's terms.
func testData(data []byte) error {
	const want = "expected a JSON object as event data (the event's data, as in the envelope's \"data\")"
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return schemaViolation("@entity", fmt.Sprintf("%s: invalid JSON at byte %d: %s", want, se.Offset, se.Error()))
		}
		return schemaViolation("@entity", want+": invalid JSON")
	}
	var kind string
	switch t := bytes.TrimLeft(data, " \t\r\n"); t[0] {
	case '{':
		return nil
	case '[':
		kind = "an array"
	case '"':
		kind = "a string"
	case 't', 'f':
		kind = "a boolean"
	case 'n':
		kind = "null"
	default:
		kind = "a number"
	}
	return schemaViolation("@entity", want+", got "+kind)
}

// GET /event-hooks/{id}/ping: webhook hooks only, as in Kong.
func (s *Server) pingHook(ctx *fasthttp.RequestCtx, p params) error {
	if s.cfg.Ping == nil {
		return errNotImplemented
	}
	h, err := s.lookup(p.id)
	if err != nil {
		return err
	}
	if spec := sinks.LookupHandler(h.Handler); spec == nil || !spec.Pingable {
		return badRequest("cannot ping a hook with handler '%s': only webhook hooks can be pinged", h.Handler)
	}
	cctx, cancel := context.WithTimeout(s.srv.Context(), s.callTimeout(h))
	defer cancel()
	res, err := s.cfg.Ping(cctx, h.Clone())
	if err != nil {
		return callError(err)
	}
	if res == nil {
		ctx.SetStatusCode(fasthttp.StatusOK)
		return nil
	}
	return respond(ctx, fasthttp.StatusOK, res)
}

// callTimeout bounds a Test or Ping call: the hook's delivery timeout plus a second, and
// at least WriteTimeout.
func (s *Server) callTimeout(h *hooks.Hook) time.Duration {
	return max(s.cfg.WriteTimeout, h.Timeout()+time.Second)
}
