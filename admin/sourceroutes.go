package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/valyala/fasthttp"
)

// dataResponse is Kong's {"data": …} wrapper of the sources routes.
type dataResponse struct {
	Data any `json:"data"`
}

// GET /event-hooks/sources
func (s *Server) listSources(ctx *fasthttp.RequestCtx, _ params) error {
	return respond(ctx, fasthttp.StatusOK, dataResponse{s.cfg.Catalogue.All()})
}

// GET /event-hooks/sources/{source}
func (s *Server) getSource(ctx *fasthttp.RequestCtx, p params) error {
	events, ok := s.cfg.Catalogue.All()[p.source]
	if !ok {
		return errNotFound
	}
	return respond(ctx, fasthttp.StatusOK, dataResponse{events})
}

// GET /event-hooks/sources/{source}/{event}
func (s *Server) getEvent(ctx *fasthttp.RequestCtx, p params) error {
	info, ok := s.cfg.Catalogue.Lookup(p.source, p.event)
	if !ok {
		return errNotFound
	}
	return respond(ctx, fasthttp.StatusOK, dataResponse{info})
}

// eventBody is the body of PUT /event-hooks/sources/{source}/{event}.
type eventBody struct {
	Fields      []string `json:"fields"`
	Unique      []string `json:"unique"`
	Description string   `json:"description"`
}

// PUT /event-hooks/sources/{source}/{event}: register (or replace) a source's event.
func (s *Server) putEvent(ctx *fasthttp.RequestCtx, p params) error {
	if err := s.notBuiltin(p); err != nil {
		return err
	}
	raw, err := readBody(ctx, sourceFormTypes)
	if err != nil {
		return err
	}
	info, err := parseEventBody(raw)
	if err != nil {
		return err
	}
	err = s.write(func(wctx context.Context) error { return s.cfg.Store.PutSource(wctx, p.source, p.event, info) })
	if err != nil {
		return err
	}
	if back, ok := s.cfg.Store.Snapshot().Sources[p.source][p.event]; ok {
		info = back
	}
	return respond(ctx, fasthttp.StatusOK, dataResponse{info})
}

// DELETE /event-hooks/sources/{source}/{event}: 204 whether or not it was registered.
func (s *Server) deleteEvent(ctx *fasthttp.RequestCtx, p params) error {
	if err := s.notBuiltin(p); err != nil {
		return err
	}
	err := s.write(func(wctx context.Context) error { return s.cfg.Store.DeleteSource(wctx, p.source, p.event) })
	if err != nil && !errors.Is(err, hooks.ErrNotFound) {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// notBuiltin refuses to change a built-in event: built-in entries shadow registered ones,
// so the change would be stored and never seen.
func (s *Server) notBuiltin(p params) error {
	if s.cfg.Catalogue.All()[p.source][p.event].Origin == "builtin" {
		return badRequest("'%s/%s' is a built-in event and cannot be changed", p.source, p.event)
	}
	return nil
}

// parseEventBody decodes and checks {"fields":[…],"unique":[…],"description":"…"}; every
// key is optional, unique must be a subset of fields when fields is given.
func parseEventBody(raw []byte) (hooks.EventInfo, error) {
	var b eventBody
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return hooks.EventInfo{}, decodeError(err)
		}
	}
	e := &hooks.SchemaError{Fields: map[string]string{}}
	known := map[string]bool{}
	for _, f := range b.Fields {
		if f == "" {
			e.Fields["fields"] = "field names must not be empty"
		}
		known[f] = true
	}
	for _, u := range b.Unique {
		if len(b.Fields) > 0 && !known[u] {
			e.Fields["unique"] = "'" + u + "' is not one of fields"
		}
		if u == "" {
			e.Fields["unique"] = "field names must not be empty"
		}
	}
	if len(e.Fields) > 0 {
		return hooks.EventInfo{}, e
	}
	return hooks.EventInfo{Fields: b.Fields, Unique: b.Unique, Description: b.Description}, nil
}

// decodeError turns an encoding/json error into a schema violation naming the field.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return schemaViolation("@entity", "expected a record")
		}
		return schemaViolation(te.Field, "expected "+jsonKind(te.Type.Kind().String()))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return schemaViolation(strings.Trim(name, `"`), "unknown field")
	}
	return schemaViolation("@entity", "cannot parse JSON body: "+err.Error())
}

func jsonKind(kind string) string {
	switch kind {
	case "slice":
		return "an array"
	case "string":
		return "a string"
	}
	return kind
}
