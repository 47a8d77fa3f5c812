package processor

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/processor/gates"
	"github.com/eventhooks/eventhooks/sinks"
)

// compiledHook is one hook version ready for the hot path.
type compiledHook struct {
	hook   *hooks.Hook
	logKey string // throttle key of its delivery failures
	sink   sinks.Sink
	// firstAnswer is sink's, when it has breakers (see Processor.probeAside); else nil.
	firstAnswer sinks.FirstAnswerAwaiter
	gate        gates.Spec
	policy      hooks.Retry // the hook's retry policy with defaults and bounds, once per version
	m           *hookMetrics
	// failing is since when the version's attempts all failed (auto_disable_after).
	failing failing
}

// hookMetrics are the series of one hook. They live in the default set (one set keeps one
// # TYPE line per family, which Prometheus requires) and are unregistered by name when the
// hook is deleted.
type hookMetrics struct {
	hookID       string
	names        []string
	delivered    *metrics.Counter
	failed       *metrics.Counter
	retried      *metrics.Counter
	parked       *metrics.Counter
	parkedBehind *metrics.Counter
	deadLettered *metrics.Counter
	breakerWaits *metrics.Counter
	rateWaits    *metrics.Counter
	gatedSnooze  *metrics.Counter
	gatedSame    *metrics.Counter
	latency      *latencyHistogram
}

// The families of hookMetrics, labelled hook and handler.
var (
	familyAttempts     = describe(`eventhooks_delivery_attempts_total`, "Delivery attempts of the hook, by outcome (delivered or failed).")
	familyRetries      = describe(`eventhooks_retries_total`, "Failed attempts of the hook retried inline, in the lane.")
	familyParked       = describe(`eventhooks_parked_total`, "Deliveries of the hook parked in the retry topic.")
	familyParkedBehind = describe(`eventhooks_parked_behind_total`, "Events of the hook parked behind a blocked key, without an attempt.")
	familyDeadLettered = describe(`eventhooks_dead_lettered_total`, "Deliveries of the hook dead-lettered.")
	familyBreakerWaits = describe(`eventhooks_breaker_waits_total`, "Attempts of the hook an open circuit breaker turned away; nothing was sent.")
	familyRateWaits    = describe(`eventhooks_rate_limit_waits_total`, "Attempts of the hook its rate_limit, max_in_flight or a receiver's 429 held back; nothing was sent.")
	familyGated        = describe(`eventhooks_gated_total`, "Events of the hook dropped by its gate, by reason (snooze or unchanged).")
)

// latencyBuckets spans a local receiver (sub-millisecond) to a slow remote one.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newHookMetrics(h *hooks.Hook) *hookMetrics {
	m := &hookMetrics{}
	labels := `{hook="` + h.ID + `",handler="` + h.Handler + `"`
	counter := func(name string) *metrics.Counter {
		m.names = append(m.names, name)
		return metrics.GetOrCreateCounter(name)
	}
	m.delivered = counter(familyAttempts + labels + `,outcome="delivered"}`)
	m.failed = counter(familyAttempts + labels + `,outcome="failed"}`)
	m.retried = counter(familyRetries + labels + `}`)
	m.parked = counter(familyParked + labels + `}`)
	m.parkedBehind = counter(familyParkedBehind + labels + `}`)
	m.deadLettered = counter(familyDeadLettered + labels + `}`)
	m.breakerWaits = counter(familyBreakerWaits + labels + `}`)
	m.rateWaits = counter(familyRateWaits + labels + `}`)
	m.gatedSnooze = counter(familyGated + labels + `,reason="snooze"}`)
	m.gatedSame = counter(familyGated + labels + `,reason="unchanged"}`)
	m.hookID = h.ID
	m.latency = latencies.get(h.ID, h.Handler)
	return m
}

// unregister removes the hook's series, the sinks' (breaker state, rate limit) too.
func (m *hookMetrics) unregister() {
	for _, name := range m.names {
		metrics.UnregisterMetric(name)
	}
	latencies.remove(m.hookID)
	sinks.UnregisterHookMetrics(m.hookID)
}

// gatedCounter returns the counter of events dropped by a gate for reason.
func (m *hookMetrics) gatedCounter(reason string) *metrics.Counter {
	if reason == gates.ReasonUnchanged {
		return m.gatedSame
	}
	return m.gatedSnooze
}

// indexBuilder turns hook snapshots into compiled indexes, compiling only hook versions it
// has not compiled before. It is used from the store's tailing goroutine only.
type indexBuilder struct {
	compile  func(*hooks.Hook) (sinks.Sink, error)
	cat      *hooks.Catalogue
	onError  func(h *hooks.Hook, err error)
	compiled map[string]*compiledHook // by hook version
	metrics  map[string]*hookMetrics  // by hook id
	known    map[string]bool          // every hook id of the last snapshot
	// deleted lists the ids of deleted hooks, appended to and published copy-on-write so
	// lanes can drop their gate state (deletions are rare: the list is never trimmed).
	deleted atomic.Pointer[[]string]
}

// noteDeleted publishes the hooks of the last snapshot that snap no longer has.
func (b *indexBuilder) noteDeleted(snap *hooks.Snapshot) []string {
	known := make(map[string]bool, len(snap.Hooks))
	for _, h := range snap.Hooks {
		known[h.ID] = true
	}
	var gone []string
	for id := range b.known {
		if !known[id] {
			gone = append(gone, id)
		}
	}
	b.known = known
	for _, id := range gone {
		unregisterAutoDisabled(id) // kept while the hook is only disabled: it says why
	}
	if len(gone) > 0 {
		var all []string
		if old := b.deleted.Load(); old != nil {
			all = append(all, *old...)
		}
		all = append(all, gone...)
		b.deleted.Store(&all)
	}
	return gone
}

func (b *indexBuilder) build(snap *hooks.Snapshot) *hookSet {
	entries := make([]hooks.IndexEntry[*compiledHook], 0, len(snap.Hooks))
	nextCompiled := make(map[string]*compiledHook, len(snap.Hooks))
	nextMetrics := make(map[string]*hookMetrics, len(snap.Hooks))
	for _, h := range snap.Hooks {
		if !h.IsEnabled() {
			continue
		}
		m := b.metrics[h.ID]
		if m == nil {
			m = newHookMetrics(h)
		}
		nextMetrics[h.ID] = m
		ch := b.compiled[h.Version()]
		if ch == nil {
			sink, err := b.compile(h)
			if err != nil {
				b.onError(h, err)
				sinks.UnregisterHookMetrics(h.ID) // the old version's gauges serve no longer
				continue
			}
			ch = &compiledHook{hook: h, sink: sink, m: m, gate: gates.NewSpec(h, b.uniqueFields(h)), policy: h.RetryPolicy(), logKey: "deliver:" + h.ID}
			ch.firstAnswer, _ = sink.(sinks.FirstAnswerAwaiter)
			sinks.PublishHookMetrics(h.ID, sink)
		}
		nextCompiled[h.Version()] = ch
		entries = append(entries, hooks.IndexEntry[*compiledHook]{Source: h.Source, Event: h.EventName(), Value: ch})
	}
	for id, m := range b.metrics {
		if _, ok := nextMetrics[id]; !ok {
			m.unregister()
		}
	}
	b.compiled, b.metrics = nextCompiled, nextMetrics
	byID := make(map[string]*compiledHook, len(entries))
	for _, e := range entries {
		byID[e.Value.hook.ID] = e.Value
	}
	return &hookSet{index: hooks.BuildIndex(entries), byID: byID, replaced: make(chan struct{})}
}

func (b *indexBuilder) uniqueFields(h *hooks.Hook) []string {
	if b.cat == nil || h.EventName() == "" {
		return nil
	}
	return b.cat.UniqueFields(h.Source, h.EventName())
}

// awaitsFirstAnswer reports whether an attempt now would be the first request to the
// hook version or its destination (see sinks.FirstAnswerAwaiter).
func (ch *compiledHook) awaitsFirstAnswer() bool {
	return ch.firstAnswer != nil && ch.firstAnswer.AwaitsFirstAnswer()
}
