package processor

import (
	"strconv"

	"github.com/VictoriaMetrics/metrics"

	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// describe gives a series family its HELP text, where the family is defined.
var describe = promhelp.Describe

// Fixed series, created once.
var (
	recordsUnmatched   = metrics.NewCounter(describe(`eventhooks_records_unmatched_total`, "Input records that matched no hook."))
	recordsMatched     = metrics.NewCounter(describe(`eventhooks_records_matched_total`, "Input records that matched at least one hook."))
	partitionsAssigned = metrics.NewGauge(describe(`eventhooks_partitions_assigned`, "Input partitions this instance owns."), nil)
	hooksActive        = metrics.NewGauge(describe(`eventhooks_hooks_active`, "Hooks in the compiled index."), nil)
	compileErrors      = metrics.NewCounter(describe(`eventhooks_hook_compile_errors_total`, "Hook versions that failed to compile and will not fire."))
	commitErrors       = metrics.NewCounter(describe(`eventhooks_commit_errors_total`, "Offset commits of the consumer group that failed."))
	commitDuration     = metrics.NewPrometheusHistogramExt(describe(`eventhooks_commit_duration_seconds`, "Time of one offset commit."), latencyBuckets)
	deadLetters        = metrics.NewCounter(describe(`eventhooks_dlq_records_total`, "Dead letters written (or dropped without a DLQ topic), all hooks and malformed records together."))
	produceErrors      = metrics.NewCounter(describe(`eventhooks_park_produce_errors_total`, "Failed writes to the retry, DLQ and state topics, each retried."))
	retriesDue         = metrics.NewCounter(describe(`eventhooks_retry_entries_processed_total`, "Parked deliveries the retry scheduler attempted."))
	tooLargeRecords    = metrics.NewCounter(describe(`eventhooks_too_large_records_total`, "Retry or DLQ records refused as too large, dead-lettered with their value cut."))
	internalErrors     = metrics.NewCounter(describe(`eventhooks_internal_errors_total`, "Panics recovered while handling a record or a delivery, dead-lettered as internal_error."))
)

// HELP of the families created per partition and per reason.
var (
	familyConsumed  = describe(`eventhooks_records_consumed_total`, "Records fetched, per topic and partition.")
	familyLag       = describe(`eventhooks_consumer_lag_records`, "Records between the last one fetched and the partition's high watermark.")
	familyPending   = describe(`eventhooks_partition_pending_records`, "Records of the partition fetched and not yet done.")
	familyBuffered  = describe(`eventhooks_partition_buffered_bytes`, "Bytes of the partition's records fetched and not yet handled (bounded by the partition buffer).")
	familyPauses    = describe(`eventhooks_partition_fetch_pauses_total`, "Times fetching of the partition paused because its lanes were behind or its buffer full.")
	familyMalformed = describe(`eventhooks_records_malformed_total`, "Input records that could not be decoded, by reason.")
)

// partitionMetrics are the series of one topic partition, created when it is assigned
// (GetOrCreate: a partition assigned again reuses them).
type partitionMetrics struct {
	consumed *metrics.Counter
	lag      *metrics.Gauge
	pending  *metrics.Gauge
	buffered *metrics.Gauge
	paused   *metrics.Counter // fetching paused: the partition's lanes were behind
}

func newPartitionMetrics(topic string, partition int32) partitionMetrics {
	labels := `{topic="` + topic + `",partition="` + strconv.Itoa(int(partition)) + `"}`
	return partitionMetrics{
		consumed: metrics.GetOrCreateCounter(familyConsumed + labels),
		lag:      metrics.GetOrCreateGauge(familyLag+labels, nil),
		pending:  metrics.GetOrCreateGauge(familyPending+labels, nil),
		buffered: metrics.GetOrCreateGauge(familyBuffered+labels, nil),
		paused:   metrics.GetOrCreateCounter(familyPauses + labels),
	}
}

// malformedCounter returns the counter of records that failed to decode, by reason.
func malformedCounter(kind string) *metrics.Counter {
	return metrics.GetOrCreateCounter(familyMalformed + `{reason="` + kind + `"}`)
}
