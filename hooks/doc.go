// Package hooks owns the data model of eventhooks: the Kong-compatible hook entity and its
// validation, the event envelope decoder, the sources catalogue, the compiled match index
// and the hook store that lives on the compacted hooks topic.
//
// It must not deliver anything, render templates or run scripts: sinks and scripting do
// that, driven by the processor. Everything here is safe to read from many goroutines;
// mutable state is published as immutable snapshots behind atomic pointers.
package hooks
