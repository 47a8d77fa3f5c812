package sinks

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/eventhooks/eventhooks/scripting"
)

// runtimePool lends hardened JavaScript runtimes to lambda calls. A runtime is used by
// one goroutine at a time — a lane borrows it for the call only, not for the HTTP request
// that follows — so the pool needs as many runtimes as calls run at once (about the
// number of CPUs), not one per lane: with 8 partitions × 16 lanes that is 4 runtimes
// instead of 128 (each ~2 MiB and ~6 ms to build).
type runtimePool struct {
	free    chan *scripting.Runtime
	created atomic.Int32
	log     *slog.Logger
}

func newRuntimePool(size int, log *slog.Logger) *runtimePool {
	return &runtimePool{free: make(chan *scripting.Runtime, size), log: log}
}

// get borrows a runtime, building one while fewer than the pool's size exist, else
// waiting for one to be returned.
func (rp *runtimePool) get(ctx context.Context) (*scripting.Runtime, error) {
	select {
	case rt := <-rp.free:
		return rt, nil
	default:
	}
	if n := rp.created.Add(1); n <= int32(cap(rp.free)) {
		return scripting.NewRuntime(scripting.RuntimeConfig{Logger: rp.log}), nil
	}
	rp.created.Add(-1)
	select {
	case rt := <-rp.free:
		return rt, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a JavaScript runtime: %w", ctx.Err())
	}
}

// put returns a borrowed runtime.
func (rp *runtimePool) put(rt *scripting.Runtime) { rp.free <- rt }
