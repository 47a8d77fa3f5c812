package bench

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
)

// TestReceiverTracksIDs: a tracking receiver counts each sequence number once, the
// repeats as duplicates, bodies without one in range apart, and names what is missing.
func TestReceiverTracksIDs(t *testing.T) {
	rcv, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Close() })
	post := func(body string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(rcv.URL)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetBodyString(body)
		if err := fasthttp.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("POST %s: %d, %v", body, resp.StatusCode(), err)
		}
	}
	rcv.TrackIDs(4)
	for _, b := range []string{`{"seq":0,"ts":1}`, `{"a":1,"seq":1}`, `{"seq":1}`, `{"seq":9}`, `{"ts":5}`} {
		post(b)
	}
	s, missing := rcv.IDs(10)
	want := IDStats{Expected: 4, Distinct: 2, Duplicates: 1, Unknown: 2}
	if s != want || !slices.Equal(missing, []int64{2, 3}) || s.Lost() != 2 {
		t.Fatalf("IDs = %+v, missing %v; want %+v, [2 3]", s, missing, want)
	}
	if _, missing := rcv.IDs(1); !slices.Equal(missing, []int64{2}) {
		t.Errorf("IDs(1) missing %v, want [2]", missing)
	}
	before := time.Now().UnixNano()
	post(`{"seq":3}`)
	post(`{"seq":2}`)
	if s, missing := rcv.IDs(10); s.Lost() != 0 || missing != nil || s.CompleteAt < before {
		t.Errorf("after every id: %+v, missing %v", s, missing)
	}
	rcv.Reset()
	if s, _ := rcv.IDs(10); s != (IDStats{}) {
		t.Errorf("after Reset: %+v, want nothing tracked", s)
	}
}

// TestReceiverDelay: a request is answered no sooner than the delay.
func TestReceiverDelay(t *testing.T) {
	rcv, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Close() })
	rcv.SetDelay(50 * time.Millisecond)
	start := time.Now()
	if status, _, err := fasthttp.Post(nil, rcv.URL, nil); err != nil || status != 200 {
		t.Fatalf("POST: %d, %v", status, err)
	}
	if el := time.Since(start); el < 50*time.Millisecond || rcv.Count() != 1 {
		t.Errorf("answered after %v, count %d; want 50ms at least, 1", el, rcv.Count())
	}
}

// TestProduceNumbered: each event's data carries its index as "seq", at the same size
// as Produce's.
func TestProduceNumbered(t *testing.T) {
	const n = 20
	recs := produced(t, n, func(ctx context.Context, cl *kgo.Client, topic string) error {
		_, err := ProduceNumbered(ctx, cl, topic, n, 3, 250, 0)
		return err
	})
	var seqs []int64
	for _, r := range recs {
		seq, ok := seqOf(r.Value)
		if !ok || len(r.Value) < 245 || len(r.Value) > 255 || !strings.Contains(string(r.Value), `"data":{`) {
			t.Errorf("record %s: seq %d, %v; want about 250 bytes with a seq", r.Value, seq, ok)
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i) {
			t.Fatalf("seqs %v, want 0 … %d", seqs, n-1)
		}
	}
}

// TestScaleOutReport: the pairs' ratios, their medians and the text report.
func TestScaleOutReport(t *testing.T) {
	s := &ScaleOutReport{Setup: "pinned", Rebalance: "join at 33%", Target: 1.8}
	for i, two := range []float64{150, 190, 170} {
		s.Add(ScalePair{
			One: ScalePhase{Name: "one instance #" + strconv.Itoa(i+1), PerSec: 100, SteadyPerSec: 100},
			Two: ScalePhase{Name: "two instances #" + strconv.Itoa(i+1), PerSec: two, SteadyPerSec: 2 * two,
				IDs:     IDStats{Expected: 10, Distinct: 10, Duplicates: 3},
				Members: []ScaleMember{{Name: "run 1", CPUs: "0", GOMAXPROCS: "1", Delivered: 8}, {Name: "run 2", CPUs: "1", ReadyAt: 4, Delivered: 5}}},
		})
	}
	if s.Ratio != 1.7 || s.SteadyRatio != 3.4 || s.Pairs[0].Ratio != 1.5 {
		t.Fatalf("medians %v, %v; pairs %+v", s.Ratio, s.SteadyRatio, s.Pairs)
	}
	r := Report{ScaleOut: s}
	var sb strings.Builder
	if err := r.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"two/one: 1.70, steady 3.40 (medians of 3 pairs); below the target of 1.80",
		"two instances #2: 10 of 10 event ids arrived, 3 duplicates; run 1 (pid 0, CPUs 0, GOMAXPROCS 1) ready at 0 ids, 8 delivered; run 2",
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, sb.String())
		}
	}
}
