// Package logthrottle logs a repeated message at most once per interval per key. It owns
// nothing else.
package logthrottle

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Interval is the least time between two lines of one key.
const Interval = 10 * time.Second

// Throttle logs a repeated message at most once per Interval per key, with the number of
// occurrences it swallowed. Lock-free once a key has been seen: failures during an outage
// hit it on every record, from every lane. The zero value is ready to use.
type Throttle struct {
	keys sync.Map // key → *throttleKey
}

type throttleKey struct {
	last atomic.Int64 // unix nanoseconds of the last line logged
	hits atomic.Int64 // lines swallowed since
}

// Allow reports whether a line for key may be logged now, and how many were swallowed
// since the last one.
func (t *Throttle) Allow(key string) (ok bool, suppressed int64) {
	v, found := t.keys.Load(key)
	if !found {
		v, _ = t.keys.LoadOrStore(key, &throttleKey{})
	}
	k := v.(*throttleKey)
	now := time.Now().UnixNano()
	last := k.last.Load()
	if (last != 0 && now-last < int64(Interval)) || !k.last.CompareAndSwap(last, now) {
		k.hits.Add(1)
		return false, 0
	}
	return true, k.hits.Swap(0)
}

// Warn logs msg with args at Warn level if Allow lets key through, adding "suppressed"
// when lines were swallowed since the last one.
func (t *Throttle) Warn(log *slog.Logger, key, msg string, args ...any) {
	ok, suppressed := t.Allow(key)
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Warn(msg, args...)
}
