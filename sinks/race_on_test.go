//go:build race

package sinks

// raceEnabled: the race detector makes sync.Pool drop items, so allocation guards skip.
const raceEnabled = true
