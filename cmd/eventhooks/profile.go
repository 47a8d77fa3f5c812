package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
)

// startCPUProfile starts a CPU profile to file, if not empty; the returned stop writes it
// and may be called twice.
func startCPUProfile(file string, log *slog.Logger) (func(), error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Warn("cannot write the CPU profile", "err", err)
			}
		}
	}, nil
}
