package processor

import (
	"strconv"

	"github.com/VictoriaMetrics/metrics"
)

// Fixed series, created once.
var (
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
	tooLargeRecords    = metrics.NewCounter(`eventhooks_too_large_records_total`)
	internalErrors     = metrics.NewCounter(`eventhooks_internal_errors_total`)
)

// partitionMetrics are the series of one topic partition, created when it is assigned
// (GetOrCreate: a partition assigned again reuses them).
type partitionMetrics struct {
	consumed *metrics.Counter
	lag      *metrics.Gauge
	pending  *metrics.Gauge
	paused   *metrics.Counter // fetching paused: the partition's lanes were behind
}

func newPartitionMetrics(topic string, partition int32) partitionMetrics {
	labels := `{topic="` + topic + `",partition="` + strconv.Itoa(int(partition)) + `"}`
	return partitionMetrics{
		consumed: metrics.GetOrCreateCounter(`eventhooks_records_consumed_total` + labels),
		lag:      metrics.GetOrCreateGauge(`eventhooks_consumer_lag_records`+labels, nil),
		pending:  metrics.GetOrCreateGauge(`eventhooks_partition_pending_records`+labels, nil),
		paused:   metrics.GetOrCreateCounter(`eventhooks_partition_fetch_pauses_total` + labels),
	}
}

// malformedCounter returns the counter of records that failed to decode, by reason.
func malformedCounter(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(`eventhooks_records_malformed_total{reason="` + kind + `"}`)
}
