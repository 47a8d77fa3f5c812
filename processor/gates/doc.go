// Package gates decides snooze and on_change (docs/design.md, "Gates") for the processor.
//
// It owns the gate decisions (Check before a delivery, Fired after a successful one), the
// gate state they read and write — per lane in a Set, lock-free, and for hook-scoped hooks
// (snooze_scope: hook) in one Shared under its mutex — the changelog record format of that
// state in the state topic (Change, Restore, EntityKeyOf, IsHookScoped), the on_change
// fingerprint of an event's data, and the metrics of gate entries.
//
// It must not touch Kafka clients, HTTP or the hook store: it is driven by processor,
// which hands it compiled hooks, events and restored records, and writes the Changes it
// returns to the state topic.
package gates
