package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/httpserve"
)

// contentTypeJSON is what Kong's Admin API answers with.
const contentTypeJSON = httpserve.ContentTypeJSON

// Kong's error codes (kong/db/errors.lua) used here.
const (
	codeSchemaViolation = 2
	codeUniqueViolation = 5
	codeInvalidOffset   = 7
	codeInvalidSize     = 9
)

// apiError is an error answer in one of Kong's shapes: {"message"} or, with a code,
// {"code","name","message","fields"}.
type apiError struct {
	status  int
	Code    int    `json:"code,omitempty"`
	Name    string `json:"name,omitempty"`
	Message string `json:"message"`
	Fields  any    `json:"fields,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

// Fixed answers.
var (
	errNotFound         = &apiError{status: fasthttp.StatusNotFound, Message: "Not found"}
	errMethodNotAllowed = &apiError{status: fasthttp.StatusMethodNotAllowed, Message: "Method not allowed"}
	errUnauthorized     = &apiError{status: fasthttp.StatusUnauthorized, Message: "Unauthorized"}
	errNotImplemented   = &apiError{status: fasthttp.StatusNotImplemented, Message: "not implemented yet"}
)

// badRequest is a 400 {"message"} answer.
func badRequest(format string, args ...any) *apiError {
	return &apiError{status: fasthttp.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// schemaViolation is a 400 with a single field in Kong's schema violation shape.
func schemaViolation(field, msg string) error {
	return &hooks.SchemaError{Fields: map[string]string{field: msg}}
}

// respond writes v as a JSON body with status.
func respond(ctx *fasthttp.RequestCtx, status int, v any) error {
	return httpserve.JSON(ctx, status, v)
}

// fail is the one error writer: it turns err into Kong's error shape and status, and logs
// server-side failures.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	var ae *apiError
	var se *hooks.SchemaError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &se):
		ae = &apiError{status: fasthttp.StatusBadRequest, Code: codeSchemaViolation, Name: "schema violation",
			Message: se.Error(), Fields: se.NestedFields()}
	default:
		ae = &apiError{status: fasthttp.StatusInternalServerError, Message: err.Error()}
	}
	switch {
	case ae.status == fasthttp.StatusBadGateway:
		// /test or /ping reached a destination that failed: the answer says how, and it is
		// the destination's failure, not this server's.
		s.log.Info("admin request: hook call failed", "method", string(ctx.Method()), "path", string(ctx.Path()),
			"status", ae.status, "err", err)
	case ae.status >= 500 && ae.status != fasthttp.StatusNotImplemented:
		s.log.Error("admin request failed", "method", string(ctx.Method()), "path", string(ctx.Path()),
			"status", ae.status, "err", err)
	}
	if ae == errUnauthorized {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="eventhooks"`)
	}
	if rerr := respond(ctx, ae.status, ae); rerr != nil {
		ctx.Error(ae.Message, ae.status)
	}
}

// storeError maps a failed store write: a timeout is 504, a shutdown 503, anything else
// stays a 500.
func storeError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: fasthttp.StatusGatewayTimeout, Message: "timed out waiting for the hooks topic: " + err.Error()}
	case errors.Is(err, context.Canceled):
		return &apiError{status: fasthttp.StatusServiceUnavailable, Message: "server is shutting down: " + err.Error()}
	}
	return err
}

// callError maps a failed Test or Ping callback: schema errors stay 400, a timeout is
// 504, anything else 502 with the callback's message.
func callError(err error) error {
	switch {
	case errors.Is(err, hooks.ErrSchema):
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return storeError(err)
	}
	return &apiError{status: fasthttp.StatusBadGateway, Message: err.Error()}
}
