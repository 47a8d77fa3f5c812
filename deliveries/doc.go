// Package deliveries answers "where did my webhook go": it tails the attempts topic
// (<prefix>attempts, one JSON record per delivery attempt, written by the processor) and
// the DLQ topic into bounded in-memory indexes that the Admin API's deliveries routes
// and the web console read.
//
// It owns its own consumer client and the indexes, nothing else. It must not write to
// any topic, join the processor's consumer group, or share a lock, a client or a
// goroutine with the processor: reading the delivery log never slows delivery, and a
// slow or absent reader loses only what the index shows, never an event. Re-sending
// (retry, re-drive) goes through the replay jobs the Admin API already runs.
package deliveries
