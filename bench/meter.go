package bench

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// rssSampleInterval is how often a Meter samples VmRSS.
const rssSampleInterval = 50 * time.Millisecond

// Meter measures one phase of a run: CPU time used by the whole process (user + system,
// from getrusage), the Go heap allocated and the GC cycles run meanwhile, and memory: VmHWM, the process's peak RSS since it started (monotone,
// so a later phase reports at least an earlier one's), and the largest VmRSS sampled
// during the phase, which is what "steady memory" means. On systems without
// /proc/self/status the memory figures are 0.
type Meter struct {
	cpu0   float64
	mem0   runtime.MemStats
	maxRSS atomic.Int64
	stop   chan struct{}
	done   chan struct{}
}

// StartMeter starts measuring.
func StartMeter() *Meter {
	m := &Meter{cpu0: cpuSeconds(), stop: make(chan struct{}), done: make(chan struct{})}
	runtime.ReadMemStats(&m.mem0)
	m.sample()
	go func() {
		defer close(m.done)
		sampleEvery(m.stop, m.sample)
	}()
	return m
}

func (m *Meter) sample() {
	rss, _ := memStatus()
	if rss > m.maxRSS.Load() {
		m.maxRSS.Store(rss) // only the sampler goroutine and Stop (after it ended) store
	}
}

// Stop ends the phase and writes CPUSeconds, AllocBytes, GCs, PeakRSSBytes and
// MaxRSSBytes into r.
func (m *Meter) Stop(r *Result) {
	close(m.stop)
	<-m.done
	m.sample()
	r.CPUSeconds = cpuSeconds() - m.cpu0
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	r.AllocBytes = int64(mem.TotalAlloc - m.mem0.TotalAlloc)
	r.GCs = int64(mem.NumGC - m.mem0.NumGC)
	_, r.PeakRSSBytes = memStatus()
	r.MaxRSSBytes = m.maxRSS.Load()
}

var (
	vmRSS = []byte("VmRSS:")
	vmHWM = []byte("VmHWM:")
)

// memStatus returns VmRSS and VmHWM in bytes from /proc/self/status (0 when unavailable).
func memStatus() (rss, hwm int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	return statusKB(b, vmRSS) * 1024, statusKB(b, vmHWM) * 1024
}

// statusKB returns the value of a "Name:   123 kB" line.
func statusKB(status, name []byte) int64 {
	i := bytes.Index(status, name)
	if i < 0 {
		return 0
	}
	line := status[i+len(name):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	line = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line), []byte("kB")))
	v, _ := strconv.ParseInt(string(line), 10, 64)
	return v
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg ("" when
// unavailable).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
