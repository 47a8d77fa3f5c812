package sinks

import (
	"log/slog"
	"strconv"

	"github.com/eventhooks/eventhooks/hooks"
)

// HandlerSpec is what the program knows about one handler type beyond hooks' validation:
// how Compile builds it, what Tester.Test answers for it, whether it can be pinged, and
// the bench's sample config. Every switch on a handler name reads handlers (see the
// package doc's checklist for adding one).
type HandlerSpec struct {
	// Name is the handler's name, hooks.Hook.Handler.
	Name string
	// Pingable is true when GET /event-hooks/{id}/ping (Tester.Ping) sends to it: webhook
	// only, as in Kong.
	Pingable bool
	// BenchConfig returns the config of a bench hook sending each event to target (the
	// in-process receiver or --target) with the event's "ts" kept in the body, so the
	// receiver measures latency. The log handler ignores target.
	BenchConfig func(target string) map[string]any

	// compile builds the hook's Sink (Compile adds the hook id to errors).
	compile func(h *hooks.Hook, p *Pool, log *slog.Logger) (Sink, error)
	// testResult fills a Test answer's Result (and Responses) from what the attempt
	// captured.
	testResult func(out *TestResult, c *capture)
}

// handlers is the table of handler types, in the order the docs list them.
var handlers = [...]HandlerSpec{
	{
		Name:     hooks.HandlerWebhook,
		Pingable: true,
		BenchConfig: func(target string) map[string]any {
			return map[string]any{"url": target}
		},
		compile: func(h *hooks.Hook, p *Pool, _ *slog.Logger) (Sink, error) {
			return compileWebhook(h, p)
		},
		testResult: lastExchange,
	},
	{
		Name: hooks.HandlerWebhookCustom,
		BenchConfig: func(target string) map[string]any {
			return map[string]any{
				"url": target, "method": "POST",
				"headers": map[string]string{"Content-Type": "application/json"},
				"body":    `{"text":"{{ .upstream_id }} is {{ .health }}","ts":{{ .ts }}}`,
			}
		},
		compile: func(h *hooks.Hook, p *Pool, _ *slog.Logger) (Sink, error) {
			return compileCustom(h, p)
		},
		testResult: lastExchange,
	},
	{
		Name: hooks.HandlerLambda,
		BenchConfig: func(target string) map[string]any {
			fn := `(d, ev, src) => ({url: ` + strconv.Quote(target) + `, method: "POST", ` +
				`headers: {"content-type": "application/json"}, body: JSON.stringify(d)})`
			return map[string]any{"functions": []string{fn}}
		},
		compile: func(h *hooks.Hook, p *Pool, log *slog.Logger) (Sink, error) {
			return compileLambda(h, p, log)
		},
		testResult: func(out *TestResult, c *capture) {
			out.Result = c.value // the chain's final value
			out.Responses = c.exchanges
		},
	},
	{
		Name: hooks.HandlerLog,
		BenchConfig: func(string) map[string]any {
			return map[string]any{}
		},
		compile: func(h *hooks.Hook, _ *Pool, log *slog.Logger) (Sink, error) {
			return compileLog(h, log)
		},
		testResult: func(out *TestResult, _ *capture) { out.Result = "logged" },
	},
}

// LookupHandler returns the spec of the handler named name, nil when there is none.
func LookupHandler(name string) *HandlerSpec {
	for i := range handlers {
		if handlers[i].Name == name {
			return &handlers[i]
		}
	}
	return nil
}

// lastExchange answers a Test of a handler that sends one request: the Exchange of the
// last request sent (nil when nothing was sent).
func lastExchange(out *TestResult, c *capture) { out.Result = c.last() }
