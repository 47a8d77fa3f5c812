package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram bucket layout, HDR style: values in microseconds, exact below histSub, then
// histHalf buckets per power of two, so a bucket is at most 1/512 (0.2 %) of its value
// wide (8 µs at 4 ms). Values at or above 2^histMaxBits µs (19 hours) share the last
// bucket; Max is exact.
const (
	histSubBits = 10
	histSub     = 1 << histSubBits
	histHalf    = histSub / 2
	histMaxBits = 36
	histBuckets = (histMaxBits - histSubBits + 2) * histHalf
	histShards  = 16
)

// Histogram records durations from many goroutines without a lock. Writers pick a shard
// (the receiver uses the connection id, so one connection's requests, which fasthttp
// serves one at a time, never contend); each shard is a fixed array of atomic counters.
// The zero value is not usable: call NewHistogram.
type Histogram struct {
	shards [histShards]*histShard
}

type histShard struct {
	max   atomic.Int64 // nanoseconds
	count atomic.Int64
	_     [48]byte // keep max and count off the counters' first cache line
	// counts is large, but only the pages of buckets actually hit become resident.
	counts [histBuckets]atomic.Uint64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	for i := range h.shards {
		h.shards[i] = &histShard{}
	}
	return h
}

// Record adds d (negative counts as 0) to the shard picked by shard.
func (h *Histogram) Record(d time.Duration, shard uint64) {
	if d < 0 {
		d = 0
	}
	s := h.shards[shard%histShards]
	s.counts[bucketOf(uint64(d/time.Microsecond))].Add(1)
	s.count.Add(1)
	for {
		m := s.max.Load()
		if int64(d) <= m || s.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Reset empties the histogram. Call it while nothing records.
func (h *Histogram) Reset() {
	for _, s := range h.shards {
		if s.count.Load() == 0 {
			continue
		}
		for i := range s.counts {
			s.counts[i].Store(0)
		}
		s.count.Store(0)
		s.max.Store(0)
	}
}

// Latency is a summary of recorded durations. Samples 0 means nothing was measured.
type Latency struct {
	// Samples is how many durations were recorded.
	Samples int64 `json:"latency_samples"`
	// P50, P90, P99 are within one bucket (≤ 0.2 %, or 1 µs) of the exact quantile.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	// Max is exact.
	Max time.Duration `json:"max_ns"`
}

// Latency merges the shards and returns the quantiles.
func (h *Histogram) Latency() Latency {
	var merged [histBuckets]uint64
	var l Latency
	for _, s := range h.shards {
		if s.count.Load() == 0 {
			continue
		}
		for i := range s.counts {
			if c := s.counts[i].Load(); c != 0 {
				merged[i] += c
				l.Samples += int64(c)
			}
		}
		l.Max = max(l.Max, time.Duration(s.max.Load()))
	}
	if l.Samples == 0 {
		return Latency{}
	}
	qs := [...]struct {
		q   float64
		out *time.Duration
	}{{0.50, &l.P50}, {0.90, &l.P90}, {0.99, &l.P99}}
	var seen uint64
	next := 0
	for i, c := range merged {
		if c == 0 {
			continue
		}
		seen += c
		for next < len(qs) && float64(seen) >= qs[next].q*float64(l.Samples) {
			lo, width := bucketRange(i)
			v := time.Duration(lo+width/2) * time.Microsecond
			*qs[next].out = min(v, l.Max)
			next++
		}
		if next == len(qs) {
			break
		}
	}
	return l
}

// bucketOf returns the bucket of a value in microseconds.
func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	if us >= 1<<histMaxBits {
		us = 1<<histMaxBits - 1
	}
	e := bits.Len64(us) - histSubBits
	return e*histHalf + int(us>>e)
}

// bucketRange returns the lowest value of bucket i and its width, in microseconds.
func bucketRange(i int) (lo, width uint64) {
	if i < histSub {
		return uint64(i), 1
	}
	e := i/histHalf - 1
	m := uint64(i%histHalf + histHalf)
	return m << e, 1 << e
}
