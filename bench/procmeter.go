package bench

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every
// Linux architecture Go supports (the kernel converts its HZ to it for userspace).
const clockTicks = 100

// ProcUsage is what one process used during a phase, measured from outside it.
type ProcUsage struct {
	// Name is the process's role: "eventhooks run", "broker", "receiver", …
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// CPUSeconds is the user + system CPU time of all its threads during the phase, in
	// 10 ms ticks; CPUMicrosEvent is it per event of the phase.
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUMicrosEvent float64 `json:"cpu_us_per_event"`
	// MaxRSSBytes is the largest VmRSS sampled during the phase (every 50 ms);
	// PeakRSSBytes is VmHWM at its end, the process's peak RSS since it started.
	MaxRSSBytes  int64 `json:"max_rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// ProcMeter measures another process during a phase from /proc/<pid>: CPU time from
// stat, memory from status, sampled every 50 ms so that the last figures survive the
// process exiting early. On systems without /proc every figure is 0.
type ProcMeter struct {
	name string
	pid  int
	cpu0 float64

	mu   sync.Mutex
	last ProcUsage // CPUSeconds is the process's total so far

	stop chan struct{}
	done chan struct{}
}

// StartProcMeter starts measuring process pid, named name in the usage it returns.
func StartProcMeter(name string, pid int) *ProcMeter {
	m := &ProcMeter{name: name, pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	m.sample()
	m.cpu0 = m.last.CPUSeconds
	go func() {
		defer close(m.done)
		sampleEvery(m.stop, m.sample)
	}()
	return m
}

// sampleEvery calls sample every rssSampleInterval until stop is closed.
func sampleEvery(stop <-chan struct{}, sample func()) {
	t := time.NewTicker(rssSampleInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			sample()
		case <-stop:
			return
		}
	}
}

func (m *ProcMeter) sample() {
	dir := "/proc/" + strconv.Itoa(m.pid) + "/"
	cpu, okCPU := procCPUSeconds(dir + "stat")
	status, err := os.ReadFile(dir + "status")
	m.mu.Lock()
	defer m.mu.Unlock()
	if okCPU {
		m.last.CPUSeconds = cpu
	}
	if err == nil {
		m.last.MaxRSSBytes = max(m.last.MaxRSSBytes, statusKB(status, vmRSS)*1024)
		m.last.PeakRSSBytes = max(m.last.PeakRSSBytes, statusKB(status, vmHWM)*1024)
	}
}

// Stop ends the phase, which processed events, and returns the usage. Call it once,
// before the process is stopped.
func (m *ProcMeter) Stop(events int64) ProcUsage {
	close(m.stop)
	<-m.done
	m.sample()
	m.mu.Lock()
	u := m.last
	m.mu.Unlock()
	u.Name, u.PID = m.name, m.pid
	u.CPUSeconds -= m.cpu0
	if events > 0 {
		u.CPUMicrosEvent = u.CPUSeconds / float64(events) * 1e6
	}
	return u
}

// procCPUSeconds returns utime + stime from a /proc/<pid>/stat file.
func procCPUSeconds(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces: count fields
	// after its closing parenthesis, where field 3 (state) comes first.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, false
	}
	u, err1 := strconv.ParseInt(string(f[utime]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[stime]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(u+s) / clockTicks, true
}
