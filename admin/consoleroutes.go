package admin

import (
	"strings"

	"github.com/valyala/fasthttp"
)

// Console serves the web console under /ui. api is the Admin API's own handler: the
// console calls it for the JSON routes, with the token its session proved.
type Console interface {
	Serve(ctx *fasthttp.RequestCtx, api fasthttp.RequestHandler)
}

// consoleMethods routes every method to h: the console answers methods itself.
func consoleMethods(h handler) map[string]handler {
	m := map[string]handler{}
	for _, method := range []string{fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodPatch, fasthttp.MethodDelete} {
		m[method] = h
	}
	return m
}

// /ui and below: the console authenticates with its own login (a session cookie).
func (s *Server) serveConsole(ctx *fasthttp.RequestCtx, _ params) error {
	if s.cfg.Console == nil {
		return errNotFound
	}
	s.cfg.Console.Serve(ctx, s.serve)
	return nil
}

// matchDeliveryLog matches the delivery log's and the console's paths outside
// /event-hooks.
func matchDeliveryLog(path string) (string, params, bool) {
	if path == patConsole || strings.HasPrefix(path, patConsole+"/") {
		return patConsole, params{}, true
	}
	id, ok := strings.CutPrefix(path, "/deliveries/")
	if !ok || id == "" {
		return "", params{}, false
	}
	if id, ok := strings.CutSuffix(id, "/retry"); ok && id != "" && !strings.Contains(id, "/") {
		return patRetry, params{id: id}, true
	}
	if strings.Contains(id, "/") {
		return "", params{}, false
	}
	return patDelivery, params{id: id}, true
}
