// Package processor drives eventhooks: it consumes the events topic in a consumer group,
// runs one goroutine per assigned partition that feeds key lanes (so the events of one
// entity reach each hook in order), matches each event against the compiled hook index,
// delivers through the sinks, and commits only offsets below which every record is done.
//
// Concurrency, written down:
//   - The poll goroutine (Run) owns the kgo client's poll loop. With BlockRebalanceOnPoll the
//     group callbacks (assigned/revoked/lost) never run while it hands a batch to workers.
//   - Each partitionWorker goroutine owns its lanes' input channels; each lane goroutine owns
//     its decoder and scratch event, so nothing on the per-record path takes a lock shared
//     across partitions. The only per-record lock is the partition's watermark mutex.
//   - The committer goroutine and the revoke callback commit under commitMu, one commit at a
//     time; a partition is removed from the worker set under commitMu, so no commit for a
//     revoked partition is issued after its revoke commit.
//   - The compiled hook index is an immutable snapshot behind an atomic pointer, rebuilt by
//     the hook store's subscriber callback.
//
// It must not parse HTTP, render templates or sign requests itself: hooks, scripting and
// sinks do that.
package processor
