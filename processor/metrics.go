package processor

import (
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Fixed series, created once.
var (
	recordsConsumed    = metrics.NewCounter(`eventhooks_records_consumed_total`)
	recordsUnmatched   = metrics.NewCounter(`eventhooks_records_unmatched_total`)
	recordsMatched     = metrics.NewCounter(`eventhooks_records_matched_total`)
	partitionsAssigned = metrics.NewGauge(`eventhooks_partitions_assigned`, nil)
	hooksActive        = metrics.NewGauge(`eventhooks_hooks_active`, nil)
	compileErrors      = metrics.NewCounter(`eventhooks_hook_compile_errors_total`)
	commitErrors       = metrics.NewCounter(`eventhooks_commit_errors_total`)
	commitDuration     = metrics.NewPrometheusHistogramExt(`eventhooks_commit_duration_seconds`, latencyBuckets)
	deadLetters        = metrics.NewCounter(`eventhooks_dlq_records_total`)
	produceErrors      = metrics.NewCounter(`eventhooks_park_produce_errors_total`)
	retriesDue         = metrics.NewCounter(`eventhooks_retry_entries_processed_total`)
)

// malformedCounter returns the counter of records that failed to decode, by reason.
func malformedCounter(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`eventhooks_records_malformed_total{reason="` + kind + `"}`)
}

// throttle logs a repeated message at most once per interval per key, with the number of
// occurrences it swallowed.
type throttle struct {
	mu   sync.Mutex
	last map[string]time.Time
	hits map[string]int
}

const throttleInterval = 10 * time.Second

func (t *throttle) warn(log *slog.Logger, key, msg string, args ...any) {
	t.mu.Lock()
	if t.last == nil {
		t.last, t.hits = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	suppressed := t.hits[key]
	if last, ok := t.last[key]; ok && now.Sub(last) < throttleInterval {
		t.hits[key]++
		t.mu.Unlock()
		return
	}
	t.last[key], t.hits[key] = now, 0
	t.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Warn(msg, args...)
}
