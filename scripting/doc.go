// Package scripting owns the two ways a hook computes what it sends: Go templates (with
// Kong template compatibility) for the webhook-custom handler, and the goja JavaScript
// runtime for the lambda handler; the helper functions both share; and their time and
// size limits.
//
// It does no I/O: no HTTP, no Kafka, no files (goja's source-map loader, which would read
// a file named in a script's sourceMappingURL comment, is disabled). The sinks turn what
// it produces into requests.
//
// # Templates
//
// CompileTemplate compiles a template once per hook version; Template.Render renders it
// for an event into a caller's buffer, against the map EventContext builds once per
// event. Kong's syntax ({{ entity.username }}, {* entity.username *}) is translated, so
// a Kong configuration works unchanged; Kong's Lua blocks ({% … %}) are rejected. Unlike
// Kong's lua-resty-template, nothing is HTML-escaped. A template made only of text and
// field paths (the usual Kong payload) renders without text/template at all.
//
// # Lambdas
//
// CompileLambda compiles a hook's functions once into goja programs, shared by all
// goroutines. A Runtime owns one goja VM and belongs to one goroutine (one per lane);
// Runtime.Call runs a lambda on one event with a deadline (goja's Interrupt), a call
// stack limit, input and output caps and capped built-ins. See Runtime for the isolation
// and limits, and what goja cannot bound.
//
// The event data reaches a script lazily: its objects convert their members into
// JavaScript values only when read, and one never changed serializes straight from the
// parsed JSON (see lazyObject for what such an object cannot do).
//
// # Concurrency
//
// Template, Lambda and the map from EventContext are immutable once built and safe to
// share. A Runtime is not: its VM is single-goroutine. The only other goroutine that
// touches a Runtime is its deadline timer, which calls the VM's Interrupt (documented as
// safe from any goroutine); Call waits for a fired timer to finish before clearing the
// interrupt, so a late timer can never interrupt the next call.
package scripting
