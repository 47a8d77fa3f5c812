package admin

import (
	"fmt"
	"sort"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// Route patterns; they are also the values of the route label of the request counter.
const (
	patHooks       = "/event-hooks"
	patHook        = "/event-hooks/{id}"
	patTest        = "/event-hooks/{id}/test"
	patPing        = "/event-hooks/{id}/ping"
	patRotate      = "/event-hooks/{id}/rotate-secret"
	patSources     = "/event-hooks/sources"
	patSource      = "/event-hooks/sources/{source}"
	patEvent       = "/event-hooks/sources/{source}/{event}"
	patHealth      = "/healthz"
	patReady       = "/readyz"
	patMetrics     = "/metrics"
	patReplays     = "/replays"
	patReplay      = "/replays/{id}"
	patDeliveries  = "/event-hooks/{id}/deliveries"
	patDelivery    = "/deliveries/{id}"
	patRetry       = "/deliveries/{id}/retry"
	patDeadLetters = "/dead-letters"
	patRedrive     = "/dead-letters/redrive"
	patConsole     = "/ui"
	patOther       = "other"
)

// params are the path parameters of a matched route.
type params struct{ id, source, event string }

// handler serves one method of one route; a returned error is answered by Server.fail.
type handler func(ctx *fasthttp.RequestCtx, p params) error

// route is one path pattern: its handlers by method and its request counters.
type route struct {
	pattern string
	public  bool // no token needed
	methods map[string]handler
	allow   string
	// counts[i] counts responses with status class i+1 (1xx…5xx).
	counts [5]*metrics.Counter
}

var familyAdminRequests = promhelp.Describe("eventhooks_admin_requests_total", "Admin API responses, by route and status class.")

func newRoute(pattern string, public bool, methods map[string]handler) *route {
	rt := &route{pattern: pattern, public: public, methods: methods}
	names := make([]string, 0, len(methods)+1)
	for m := range methods {
		names = append(names, m)
		if m == fasthttp.MethodGet {
			names = append(names, fasthttp.MethodHead)
		}
	}
	sort.Strings(names)
	rt.allow = strings.Join(names, ", ")
	for i := range rt.counts {
		rt.counts[i] = metrics.GetOrCreateCounter(fmt.Sprintf(
			`%s{route=%q,code="%dxx"}`, familyAdminRequests, pattern, i+1))
	}
	return rt
}

// count records one response with the given status.
func (rt *route) count(status int) {
	class := status/100 - 1
	if class < 0 || class >= len(rt.counts) {
		class = 4
	}
	rt.counts[class].Inc()
}

// routeTable builds the routes once; other answers every path no pattern matches.
func (s *Server) routeTable() (map[string]*route, *route) {
	type m = map[string]handler
	routes := []*route{
		newRoute(patHooks, false, m{"GET": s.listHooks, "POST": s.createHook}),
		newRoute(patHook, false, m{"GET": s.getHook, "PATCH": s.patchHook, "PUT": s.putHook, "DELETE": s.deleteHook}),
		newRoute(patTest, false, m{"POST": s.testHook}),
		newRoute(patPing, false, m{"GET": s.pingHook}),
		newRoute(patRotate, false, m{"POST": s.rotateSecret}),
		newRoute(patSources, false, m{"GET": s.listSources}),
		newRoute(patSource, false, m{"GET": s.getSource}),
		newRoute(patEvent, false, m{"GET": s.getEvent, "PUT": s.putEvent, "DELETE": s.deleteEvent}),
		newRoute(patReplays, false, m{"GET": s.listReplays, "POST": s.startReplay}),
		newRoute(patReplay, false, m{"GET": s.getReplay, "DELETE": s.cancelReplay}),
		newRoute(patDeliveries, false, m{"GET": s.listDeliveries}),
		newRoute(patDelivery, false, m{"GET": s.getDelivery}),
		newRoute(patRetry, false, m{"POST": s.retryDelivery}),
		newRoute(patDeadLetters, false, m{"GET": s.listDeadLetters}),
		newRoute(patRedrive, false, m{"POST": s.redriveDeadLetters}),
		newRoute(patConsole, true, consoleMethods(s.serveConsole)),
		newRoute(patHealth, true, m{"GET": s.healthz}),
		newRoute(patReady, true, m{"GET": s.readyz}),
		newRoute(patMetrics, true, m{"GET": s.metrics}),
	}
	byPattern := make(map[string]*route, len(routes))
	for _, rt := range routes {
		byPattern[rt.pattern] = rt
	}
	return byPattern, newRoute(patOther, false, nil)
}

// match finds the route of a (fasthttp-normalised, decoded) path.
func (s *Server) match(path []byte) (*route, params) {
	pattern, p := matchPattern(string(path))
	if rt, ok := s.routes[pattern]; ok {
		return rt, p
	}
	return s.other, p
}

func matchPattern(path string) (string, params) {
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	switch path {
	case patHealth, patReady, patMetrics, patHooks, patSources, patReplays, patDeadLetters, patRedrive:
		return path, params{}
	}
	if pattern, p, ok := matchDeliveryLog(path); ok {
		return pattern, p
	}
	if id, ok := strings.CutPrefix(path, patReplays+"/"); ok && id != "" && !strings.Contains(id, "/") {
		return patReplay, params{id: id}
	}
	rest, ok := strings.CutPrefix(path, patHooks+"/")
	if !ok {
		return patOther, params{}
	}
	seg := strings.Split(rest, "/")
	for _, s := range seg {
		if s == "" {
			return patOther, params{}
		}
	}
	switch {
	case seg[0] == "sources" && len(seg) == 2:
		return patSource, params{source: seg[1]}
	case seg[0] == "sources" && len(seg) == 3:
		return patEvent, params{source: seg[1], event: seg[2]}
	case seg[0] == "sources":
		return patOther, params{}
	case len(seg) == 1:
		return patHook, params{id: seg[0]}
	case len(seg) == 2 && seg[1] == "test":
		return patTest, params{id: seg[0]}
	case len(seg) == 2 && seg[1] == "ping":
		return patPing, params{id: seg[0]}
	case len(seg) == 2 && seg[1] == "rotate-secret":
		return patRotate, params{id: seg[0]}
	case len(seg) == 2 && seg[1] == "deliveries":
		return patDeliveries, params{id: seg[0]}
	}
	return patOther, params{}
}
