// Package admin owns the HTTP control surface of eventhooks: hook CRUD with Kong's routes,
// shapes and status codes, the sources catalogue, health, readiness and the Prometheus
// metrics endpoint, served with fasthttp.
//
// It must not deliver events or consume Kafka itself: writes go through a HookStore (the
// hooks topic), test and ping calls through callbacks the daemon wires to the sinks, and
// readiness is reported by the caller.
//
// # Concurrency
//
// Handlers run on fasthttp's worker goroutines and only read immutable store snapshots.
// Writes (hooks and sources) are serialised by one semaphore per Server so that the
// read-check-write of POST (duplicate id), PATCH (merge) and PUT (created_at) sees the
// previous write of this instance; writes from other instances may still interleave
// (last writer wins on the compacted topic). Every write waits at most
// Config.WriteTimeout, semaphore included.
package admin
