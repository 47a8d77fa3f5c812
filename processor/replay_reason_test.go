package processor_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// TestReplayDLQSelectsByReason: of dead letters of two reasons (a 400, "permanent", and a
// 503 until max_attempts), a re-drive with Reason "permanent" sends only the 400s; a
// later re-drive of every reason still finds the max_attempts ones it passed over.
func TestReplayDLQSelectsByReason(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	var fixed atomic.Bool
	rc.Respond = func(_ int, r *testkit.Request) int {
		_, seq, _ := healthBody(r.Body)
		switch {
		case fixed.Load():
			return 200
		case seq%2 == 0:
			return 400
		}
		return 503
	}
	in := startInstance(t, emb.Addrs())
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none",
		"retry":{"max_attempts":2,"initial_backoff_ms":5,"max_backoff_ms":20},"config":{"url":"`+rc.URL+`"}}`)
	const n = 8
	cl := producer(t, emb.Addrs())
	for seq := range n {
		produce(t, cl, healthEvent("u-"+strconv.Itoa(seq), seq))
	}
	reasons := map[string]int{}
	for _, e := range readDLQ(t, emb.Addrs(), n) {
		reasons[e.Reason]++
	}
	if fmt.Sprint(reasons) != "map[max_attempts:4 permanent:4]" {
		t.Fatalf("dead letters by reason: %v", reasons)
	}
	fixed.Store(true)

	permanent := redriveSeqs(t, in, rc, processor.ReplayConfig{Reason: "permanent"}, n/2, h.ID)
	if fmt.Sprint(permanent) != "[0 2 4 6]" {
		t.Errorf("reason=permanent re-drove seqs %v, want the 400s [0 2 4 6]", permanent)
	}
	// The position stopped at the first letter left out: an unfiltered re-drive sends the
	// max_attempts ones (and again the 400s after it, which receivers see as retries).
	all := redriveSeqs(t, in, rc, processor.ReplayConfig{}, n/2, h.ID)
	for seq := 1; seq < n; seq += 2 {
		if !slices.Contains(all, seq) {
			t.Errorf("the unfiltered re-drive did not send seq %d (max_attempts): sent %v", seq, all)
		}
	}
}

// redriveSeqs re-drives the DLQ with rc's filters, checks that the run served at least
// want deliveries of hookID and left out none it should not have, and returns the seqs
// that then reached rc with a 200 (after the requests of earlier), sorted.
func redriveSeqs(t *testing.T, in *instance, rc *testkit.Receiver, cfg processor.ReplayConfig, want int, hookID string) []int {
	t.Helper()
	before := len(rc.Requests())
	cfg.DLQ, cfg.To = true, processor.Bound{Time: time.Now()}
	got, err := in.proc.Replay(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := int(got.Served[hookID])
	if served < want || (cfg.Reason != "" && served != want) {
		t.Fatalf("re-drive %+v served %d (skipped %d), want %d", cfg, served, got.Skipped, want)
	}
	var seqs []int
	for _, r := range rc.WaitFor(t, before+served, 30*time.Second)[before:] {
		if _, seq, err := healthBody(r.Body); err == nil && r.Status == 200 {
			seqs = append(seqs, seq)
		}
	}
	sort.Ints(seqs)
	return seqs
}
