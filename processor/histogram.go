package processor

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Delivery latency is observed on every delivery by every lane of every partition.
// VictoriaMetrics' PrometheusHistogram takes a mutex per observation, which would be a
// lock shared across partitions on the hot path; these histograms use atomics only and
// are written to /metrics by one registered writer.

var latencyFamily = describe("eventhooks_delivery_duration_seconds", "Time of one delivery attempt of the hook.")

// latencyHistogram is one hook's delivery latency, with latencyBuckets.
type latencyHistogram struct {
	labels string // `hook="…",handler="…"`
	counts [16]atomic.Uint64
	sumNs  atomic.Uint64
}

func init() {
	if len(latencyBuckets) >= len(latencyHistogram{}.counts) {
		panic("latencyHistogram.counts is too small for latencyBuckets") // internal invariant
	}
	metrics.RegisterMetricsWriter(latencies.write)
}

// observe records one delivery's duration.
func (h *latencyHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, s) // first bucket with bound >= s; len = +Inf
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

// latencyRegistry holds the live histograms, by hook id.
type latencyRegistry struct {
	mu sync.Mutex
	m  map[string]*latencyHistogram
}

var latencies = &latencyRegistry{m: map[string]*latencyHistogram{}}

// get returns the histogram of a hook, creating it.
func (r *latencyRegistry) get(hookID, handler string) *latencyHistogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.m[hookID]
	if h == nil {
		h = &latencyHistogram{labels: `hook="` + hookID + `",handler="` + handler + `"`}
		r.m[hookID] = h
	}
	return h
}

func (r *latencyRegistry) remove(hookID string) {
	r.mu.Lock()
	delete(r.m, hookID)
	r.mu.Unlock()
}

// write appends every histogram in Prometheus text format.
func (r *latencyRegistry) write(w io.Writer) {
	r.mu.Lock()
	hs := make([]*latencyHistogram, 0, len(r.m))
	for _, h := range r.m {
		hs = append(hs, h)
	}
	r.mu.Unlock()
	if len(hs) == 0 {
		return
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].labels < hs[j].labels })
	metrics.WriteMetadataIfNeeded(w, latencyFamily, "histogram")
	for _, h := range hs {
		var cum uint64
		for i := 0; i <= len(latencyBuckets); i++ {
			cum += h.counts[i].Load()
			le := "+Inf"
			if i < len(latencyBuckets) {
				le = strconv.FormatFloat(latencyBuckets[i], 'g', -1, 64)
			}
			fmt.Fprintf(w, "%s_bucket{%s,le=%q} %d\n", latencyFamily, h.labels, le, cum)
		}
		sum := float64(h.sumNs.Load()) / float64(time.Second)
		fmt.Fprintf(w, "%s_sum{%s} %s\n", latencyFamily, h.labels, strconv.FormatFloat(sum, 'g', -1, 64))
		fmt.Fprintf(w, "%s_count{%s} %d\n", latencyFamily, h.labels, cum)
	}
}
