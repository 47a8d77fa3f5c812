package bench

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestEndToEnd runs the real thing small: produce to an embedded broker, drain it with
// the bare pipeline into the receiver, and check the counts and latencies; then the
// other two baselines on the same broker and receiver.
func TestEndToEnd(t *testing.T) {
	const n = 2000
	emb := testkit.Broker(t, 2)
	conn := []kgo.Opt{kgo.SeedBrokers(emb.Addrs()...)}
	topic := "eventhooks-events"
	rcv, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	prod, err := kgo.NewClient(append(conn, kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	pres, err := Produce(ctx, prod, topic, n, 100, 250, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pres.Events != n || pres.PerSec <= 0 {
		t.Fatalf("produce: %+v", pres)
	}

	target := Target{URL: rcv.URL, Receiver: rcv, MaxConns: 8}
	res, err := BarePipeline(ctx, conn, topic, target, n, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != n || res.Deliveries != n || res.Errors != 0 {
		t.Fatalf("bare pipeline: events %d, deliveries %d, errors %d; want %d, %d, 0", res.Events, res.Deliveries, res.Errors, n, n)
	}
	if rcv.Missing() != 0 || res.Samples != n {
		t.Fatalf("latency samples %d, bodies without ts %d", res.Samples, rcv.Missing())
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.Max > time.Minute {
		t.Fatalf("latency out of order or range: %+v", res.Latency)
	}
	if res.Seconds <= 0 || res.PerSec <= 0 || res.Startup <= 0 {
		t.Fatalf("timing: %+v", res)
	}

	cres, err := RawConsume(ctx, conn, topic, n)
	if err != nil {
		t.Fatal(err)
	}
	if cres.Events != n {
		t.Fatalf("raw consume got %d records, want %d", cres.Events, n)
	}

	hres, err := RawHTTP(ctx, target, 500, 8)
	if err != nil {
		t.Fatal(err)
	}
	if hres.Events != 500 || hres.Deliveries != 500 || hres.Errors != 0 || hres.Samples != 500 {
		t.Fatalf("raw HTTP: %+v", hres)
	}
}

// TestProducedEvents checks the generated envelope: the processor's decoder accepts it,
// its size is as asked, keys go round robin and ts is the produce time.
func TestProducedEvents(t *testing.T) {
	before := time.Now().UnixNano()
	start := time.Now()
	recs := produced(t, 30, func(ctx context.Context, cl *kgo.Client, topic string) error {
		_, err := Produce(ctx, cl, topic, 30, 3, 250, 1000)
		return err
	})
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("30 events at 1000/s took %v, want about 30ms", el)
	}
	after := time.Now().UnixNano()
	keys := map[string]int{}
	var dec hooks.Decoder
	for _, r := range recs {
		var ev hooks.Event
		if err := dec.Decode(r, &ev); err != nil {
			t.Fatalf("processor cannot decode %s: %v", r.Value, err)
		}
		if ev.Source != EventSource || ev.Event != EventName {
			t.Fatalf("routed to %s/%s", ev.Source, ev.Event)
		}
		if len(r.Value) < 245 || len(r.Value) > 255 {
			t.Errorf("value is %d bytes, want about 250: %s", len(r.Value), r.Value)
		}
		ts, ok := sentAt(r.Value)
		if !ok || ts < before || ts > after {
			t.Errorf("ts %d not within the Produce call [%d, %d]", ts, before, after)
		}
		if got := string(ev.Data().GetStringBytes("upstream_id")); got != string(r.Key) {
			t.Errorf("upstream_id %q, key %q", got, r.Key)
		}
		keys[string(r.Key)]++
	}
	if len(keys) != 3 || keys["u-0"] != 10 || keys["u-2"] != 10 {
		t.Errorf("keys not round robin: %v", keys)
	}
}

// produced runs produce on a client of an embedded broker and returns the first n
// records of the topic it was given.
func produced(t *testing.T, n int, produce func(context.Context, *kgo.Client, string) error) []*kgo.Record {
	t.Helper()
	const topic = "eventhooks-events"
	emb := testkit.Broker(t, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := produce(ctx, cl, topic); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func TestSentAt(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int64
		ok   bool
	}{
		{`{"a":1,"ts":1790000000123456789,"pad":"x"}`, 1790000000123456789, true},
		{`{"ts": 42}`, 42, true},
		{`{"text":"u-1 is unhealthy","ts":1.79e+18}`, 1790000000000000000, true},
		{`{"ts":1790000000123456800.0}`, 1790000000123456800, true},
		{`{"ts":"1"}`, 0, false},
		{`{"t":1}`, 0, false},
		{`{"ts":}`, 0, false},
		{`{"ts":99999999999999999999}`, 0, false},
	} {
		got, ok := sentAt([]byte(tc.body))
		// float64 keeps ~16 digits: allow for the rounding of float renderings.
		if ok != tc.ok || abs(got-tc.want) > 256 {
			t.Errorf("sentAt(%s) = %d, %v; want %d, %v", tc.body, got, ok, tc.want, tc.ok)
		}
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestHistogramQuantiles(t *testing.T) {
	h := NewHistogram()
	rng := rand.New(rand.NewPCG(1, 2))
	var all []time.Duration
	for i := range 100000 {
		// log-uniform from 1 µs to 1 s
		d := time.Duration(float64(time.Microsecond) * math.Pow(10, rng.Float64()*6))
		all = append(all, d)
		h.Record(d, uint64(i))
	}
	slices.Sort(all)
	l := h.Latency()
	if l.Samples != int64(len(all)) || l.Max != all[len(all)-1] {
		t.Fatalf("samples %d max %v; want %d %v", l.Samples, l.Max, len(all), all[len(all)-1])
	}
	for _, q := range []struct {
		q   float64
		got time.Duration
	}{{0.5, l.P50}, {0.9, l.P90}, {0.99, l.P99}} {
		exact := all[int(q.q*float64(len(all)))-1]
		tol := max(time.Duration(float64(exact)*0.003), 2*time.Microsecond)
		if d := q.got - exact; d > tol || d < -tol {
			t.Errorf("p%v = %v, exact %v (tolerance %v)", q.q*100, q.got, exact, tol)
		}
	}
	h.Reset()
	if l := h.Latency(); l != (Latency{}) {
		t.Errorf("after Reset: %+v", l)
	}
}

func TestBuckets(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<22; us += 1 + us/4096 {
		b := bucketOf(us)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", us, b, prev)
		}
		lo, w := bucketRange(b)
		if us < lo || us >= lo+w {
			t.Fatalf("%d µs in bucket %d = [%d, %d)", us, b, lo, lo+w)
		}
		if us >= histSub && float64(w)/float64(lo) > 1.0/histHalf+1e-9 {
			t.Fatalf("bucket %d too wide: %d at %d", b, w, lo)
		}
		prev = b
	}
	if b := bucketOf(1<<63 - 1); b != histBuckets-1 {
		t.Fatalf("overflow bucket %d, want %d", b, histBuckets-1)
	}
}

func TestReportText(t *testing.T) {
	r := Report{
		Info: RunInfo{Events: 10, Keys: 2, Size: 250, Partitions: 8, Hooks: 1, Handler: "webhook", Lanes: 16, Mode: "drain", Shape: ShapeProcesses},
		Results: []Result{
			{Name: "ours", Events: 10, Seconds: 1, PerSec: 90, Latency: Latency{Samples: 10, P50: 1500 * time.Microsecond},
				Procs: []ProcUsage{{Name: "eventhooks run", PID: 41, CPUSeconds: 0.5, CPUMicrosEvent: 50000}, {Name: "broker", PID: 42, CPUSeconds: 0.25, CPUMicrosEvent: 25000}}},
			{Name: "bare pipeline", Events: 10, Seconds: 1, PerSec: 100},
		},
		Ours: "ours", Baselines: []string{"bare pipeline", "raw HTTP"},
	}
	r.ComputeRatios()
	if len(r.Ratios) != 1 || r.Ratios[0].Value != 0.9 {
		t.Fatalf("ratios %+v", r.Ratios)
	}
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.50ms", "bare pipeline 0.90", "events/s", "SEPARATE PROCESSES", "eventhooks run   41", "all 2", "75000.0"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, sb.String())
		}
	}
	sb.Reset()
	if err := r.WriteJSON(&sb); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(sb.String()), &back); err != nil || !strings.Contains(sb.String(), `"p50_ns": 1500000`) ||
		!strings.Contains(sb.String(), `"cpu_us_per_event": 25000`) {
		t.Fatalf("JSON report %v:\n%s", err, sb.String())
	}
}

// TestReceiverFailPath: requests on the failing path get its status and are counted
// apart from the others, which keep answering 200.
func TestReceiverFailPath(t *testing.T) {
	rcv, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Close() })
	rcv.FailPath("/a", 503)
	post := func(path string) int {
		status, _, err := fasthttp.Post(nil, rcv.URL+path[1:], nil)
		if err != nil {
			t.Fatal(err)
		}
		return status
	}
	if s := post("/a"); s != 503 {
		t.Errorf("/a answered %d, want 503", s)
	}
	if s := post("/a?x=1"); s != 503 {
		t.Errorf("/a?x=1 answered %d, want 503", s)
	}
	if s := post("/b"); s != 200 {
		t.Errorf("/b answered %d, want 200", s)
	}
	if rcv.Failed() != 2 || rcv.Count() != 1 {
		t.Errorf("failed %d, count %d; want 2, 1", rcv.Failed(), rcv.Count())
	}
	rcv.Reset()
	rcv.FailPath("", 0)
	if s := post("/a"); s != 200 || rcv.Failed() != 0 || rcv.Count() != 1 {
		t.Errorf("after FailPath off: /a answered %d, failed %d, count %d", s, rcv.Failed(), rcv.Count())
	}
}

func TestFaultsReport(t *testing.T) {
	f := &FaultsReport{Setup: "defaults", Hooks: []string{"A: 503"}, Target: 0.8}
	for _, faults := range []float64{50, 90, 70} {
		f.Add(FaultPair{Alone: FaultPhase{PerSec: 100}, Faults: FaultPhase{PerSec: faults, CPUMicrosEvent: 20},
			FaultHooks: []FaultHook{{Name: "A", ReceiverFailed: 12, Failed: 12}}})
	}
	if f.Ratio != 0.7 || f.Pairs[2].Ratio != 0.7 {
		t.Fatalf("median %v, pairs %+v", f.Ratio, f.Pairs)
	}
	r := Report{Faults: f}
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"B with faults / B alone: 0.70 (median of 3 pairs); below the target of 0.80", "A 12 answered with the failing status"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, sb.String())
		}
	}
}

// TestProcMeter measures this test's process from outside, through /proc/<pid>, while it
// burns 0.3 s of CPU.
func TestProcMeter(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	m := StartProcMeter("self", os.Getpid())
	for start := cpuSeconds(); cpuSeconds()-start < 0.3; {
	}
	u := m.Stop(1000)
	if u.Name != "self" || u.PID != os.Getpid() || u.CPUSeconds < 0.25 || u.CPUSeconds > 60 ||
		math.Abs(u.CPUMicrosEvent-u.CPUSeconds*1e3) > 1e-6 || u.MaxRSSBytes <= 0 || u.MaxRSSBytes > u.PeakRSSBytes {
		t.Fatalf("usage %+v", u)
	}
}

func TestProcCPUSeconds(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		stat string
		want float64
		ok   bool
	}{
		{"7 (eventhooks) S 1 7 7 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 0 0", 3.25, true},
		{"7 (a b) c) R 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 9 0 100 0 0", 0.03, true},
		{"7 (short) S 1 7", 0, false},
		{"no parenthesis", 0, false},
	} {
		path := filepath.Join(dir, "stat")
		if err := os.WriteFile(path, []byte(tc.stat), 0o600); err != nil {
			t.Fatal(err)
		}
		got, ok := procCPUSeconds(path)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%q: %v %v, want %v %v", tc.stat, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := procCPUSeconds(filepath.Join(dir, "missing")); ok {
		t.Error("a missing file parsed")
	}
}
