// Package sinks owns the delivery of one event to one hook's destination: building the
// request (Kong's webhook body; webhook-custom's templates; the requests a lambda
// returns), signing it (Kong's X-Kong-Signature and Standard Webhooks), sending it over
// pooled fasthttp clients and classifying the outcome (delivered, retryable, permanent).
// Tester runs a hook on demand for the Admin API's /test and /ping.
//
// It must not consume Kafka, decide retries or ordering, or keep gate state: the processor
// does that with the Result it gets back. Per-hook metrics are the processor's too.
//
// # Life cycle
//
// A hook version is compiled once with Compile: the config is parsed, templates and
// JavaScript are compiled, and everything static (URI, header list, encodings' fixed
// parts, HMAC keys, the destination's HostClient) is computed then; a template or a
// function that does not compile is a *hooks.SchemaError on its field. Deliver is called
// per event and per attempt. The webhook handler allocates nothing on the success path
// beyond what fasthttp's own pools hold; webhook-custom allocates only the event's
// template context, once per event (see Lane); a lambda call allocates in goja.
//
// Destinations computed per event (a lambda's requests, a templated url) are pooled
// like configured ones, bounded by PoolConfig.MaxDestinations.
//
// # Files
//
// sink.go has Compile, Sink and Result; handlers.go the table of handler types;
// request.go what every HTTP handler shares (send, destinations, header checks,
// deadlines); webhook.go, custom.go (webhook-custom), lambda.go and log.go one handler
// each; body.go Kong's webhook body; sign.go signatures; pool.go, breaker.go, guard.go
// and classify.go the clients, circuit breakers, SSRF guard and outcome classification;
// tester.go the Admin API's /test and /ping.
//
// # Adding a handler
//
//  1. hooks: the name constant (hook.go), the config struct (config.go) and its case in
//     Validate (validate.go).
//  2. sinks: a file with compileX and a type implementing Sink (an HTTP handler sends
//     through send, request.go, so that the destination's breaker and classification
//     apply, and keeps a hookGate for its own breaker).
//  3. sinks/handlers.go: its entry in handlers: compile, testResult (what
//     POST /event-hooks/{id}/test answers), Pingable, BenchConfig. Compile, Tester,
//     the Admin API's ping check and the bench read the table; nothing else switches
//     on handler names.
//  4. cmd/eventhooks/bench.go: the name in --handler's enum.
//  5. Tests beside the handler's file, and the README's handler list.
//
// # Concurrency
//
//   - A Sink is immutable after Compile and safe for concurrent Deliver calls from many
//     lanes. Per-call scratch state (body buffer, HMAC states) comes from sync.Pools owned
//     by the sink.
//   - A Lane is per goroutine: each processor lane, replay partition goroutine and
//     Admin API test call has its own and passes it to every Deliver it makes. It holds
//     the goja runtime (single-goroutine by nature), the template context of the event
//     being delivered, shared by that event's hooks, and scratch buffers.
//   - An Event is not safe for concurrent use: ev.Data parses on its first call and
//     fastjson unescapes strings lazily and in place, so reading the data writes to the
//     event. Two goroutines must not Deliver the same *hooks.Event at the same time (deliver one event to its hooks sequentially on the
//     lane that owns it, or give each goroutine its own copy).
//   - Pool creates a HostClient and a circuit breaker under its mutex the first time a
//     destination is used and publishes an immutable map snapshot; lookups are a
//     lock-free atomic load.
//   - A destination's breaker is shared by every hook and lane sending to it; a hook's
//     breaker by every lane delivering for that hook version. Their closed path is
//     atomics only; state changes take the breaker's own mutex, never Pool's (see
//     breaker).
//
// # SSRF guard and circuit breaker
//
// With PoolConfig.Guard, every new connection resolves the host and dials only an
// address the Guard allows: a refusal is permanent (ErrDestinationRefused). Each
// destination has a circuit breaker counting connection-level failures (refused, reset,
// DNS, TLS, timeouts), and each compiled HTTP hook its own, counting HTTP status failures
// (429, 5xx) and script failures (a lambda or template that throws or times out): after
// PoolConfig.BreakerThreshold consecutive failures, attempts fail fast with
// ErrCircuitOpen (retryable; the message names the destination or the hook) until a
// single probe succeeds. So one hook whose path answers 503 does not cut off the other
// hooks on its host. No breaker turns a hook away for longer than its
// retry.max_backoff_ms: then its attempt is the probe. A new destination gets one
// request at a time until it first answers; Lane.AvoidProbes keeps a caller that can
// park its delivery from being the probe of a breaker that failed last time.
package sinks
