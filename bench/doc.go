// Package bench holds the load generator, receiver and baselines for end-to-end
// measurement (`eventhooks bench`). It is not used by the service at run time.
//
// Pieces:
//   - Produce writes ~size-byte event envelopes, keys round robin, with a bounded number
//     of records in flight and optional pacing; each event carries "ts":<unix nanos> taken
//     when the record is handed to the client, so latency is receipt − produce time.
//   - Receiver is a fasthttp server that counts requests and records, per request, the
//     time since the "ts" found in the body (bytes.Index, no JSON parse) in a sharded
//     Histogram. ProduceNumbered's events also carry "seq":<index>; a Receiver told to
//     TrackIDs counts which arrived and how often, for `bench --scale-out`'s check that
//     a rebalance loses nothing.
//   - RawHTTP, RawConsume and BarePipeline are the baselines the processor is compared
//     with, measured on the same broker and receiver.
//   - Meter measures a phase: CPU seconds (getrusage, whole process), VmHWM and the
//     largest VmRSS sampled during the phase.
//   - Report prints the results as an aligned table or JSON.
//
// Everything is measured process-wide: with the embedded broker and the in-process
// receiver, CPU and RSS include them too (the same for every phase, so ratios are fair).
//
// Concurrency: the Receiver's handler runs on many fasthttp goroutines; it touches only
// atomics (its counters and the histogram's shard of the connection). Reset and Latency
// are meant to be called between phases, while no requests arrive; a Reset racing with
// requests makes the counts of that phase approximate, never corrupt.
package bench
