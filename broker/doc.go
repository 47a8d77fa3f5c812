// Package broker owns eventhooks' connection to Kafka: the franz-go client
// options built from the CLI's connection flags ([Config]), the creation and
// checking of the topics eventhooks needs ([Topics], [Bootstrap]), and the
// embedded kfake broker that `eventhooks dev` and `eventhooks broker` run
// in-process ([StartEmbedded]).
//
// It does not process events: it never produces or consumes records, knows
// nothing of hooks, envelopes or offsets, and is imported by the packages that
// do (processor, admin, cmd) only to obtain clients and topic names.
//
// # Concurrency
//
// [Config] and [Topics] are values. [Bootstrap] may run concurrently in many
// instances against one cluster; it only creates topics, and a creation lost
// to another instance is checked like a topic that already existed.
// [Embedded] is safe for concurrent use; [Embedded.Close] may be called more
// than once.
package broker
