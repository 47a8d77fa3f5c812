package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

func TestParseBound(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"", "", false},
		{"2026-11-27T08:00:00Z", "2026-11-27T08:00:00Z", false},
		{"0:10,3:7", "0:10,3:7", false},
		{"0:-1", "", true},
		{"yesterday", "", true},
	}
	for _, tt := range tests {
		b, err := processor.ParseBound(tt.in)
		if (err != nil) != tt.err || (err == nil && b.String() != tt.want) {
			t.Errorf("ParseBound(%q) = %v, %v", tt.in, b, err)
		}
	}
}

// TestReplayBackfillsANewHook: events produced before a hook existed are replayed through
// it, honouring the range, and a dry run only counts.
func TestReplayBackfillsANewHook(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	const n = 60
	produce(t, producer(t, emb.Addrs()), healthEvents(6, n/6)...)
	// The live processor consumes them all before the hook exists: nothing to deliver.
	testkit.Eventually(t, 30*time.Second, "the events consumed", func() bool { return committed(t, emb.Addrs()) == n })
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	live := len(rc.Requests())

	dry, err := in.proc.Replay(context.Background(), processor.ReplayConfig{HookIDs: []string{h.ID}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Served[h.ID] != n || len(rc.Requests()) != live {
		t.Fatalf("dry run served %v and sent %d requests", dry.Served, len(rc.Requests())-live)
	}
	got, err := in.proc.Replay(context.Background(), processor.ReplayConfig{HookIDs: []string{h.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Done || got.Read != n || got.Served[h.ID] != n {
		t.Fatalf("replay = %+v", got)
	}
	rc.WaitFor(t, live+n, 10*time.Second)

	// A partition:offset range replays just that slice.
	part, err := in.proc.Replay(context.Background(), processor.ReplayConfig{
		HookIDs: []string{h.ID}, DryRun: true,
		From: processor.Bound{Offsets: map[int32]int64{0: 0, 1: 0}},
		To:   processor.Bound{Offsets: map[int32]int64{0: 2, 1: 3}},
	})
	if err != nil || part.Served[h.ID] != 5 {
		t.Fatalf("range replay = %+v, %v", part, err)
	}
}

func TestReplayDLQRedrivesOnceTheReceiverIsFixed(t *testing.T) {
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	broken := true
	rc.Respond = func(int, *testkit.Request) int {
		if broken {
			return 404
		}
		return 200
	}
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvent("u-1", 1), healthEvent("u-2", 2), &kgo.Record{Value: []byte("junk")})
	readDLQ(t, emb.Addrs(), 3)
	broken = false
	before := len(rc.Requests())
	got, err := in.proc.Replay(context.Background(), processor.ReplayConfig{
		DLQ: true, To: processor.Bound{Time: time.Now()}, Progress: func(processor.ReplayProgress) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Skipped != 1 || got.Read != 3 {
		t.Fatalf("DLQ replay = %+v", got)
	}
	reqs := rc.WaitFor(t, before+2, 10*time.Second)
	for _, r := range reqs[before:] {
		if r.Status != 200 {
			t.Fatalf("re-driven delivery answered %d", r.Status)
		}
	}

	// A second run re-sends only what was dead-lettered since the first.
	broken = true
	produce(t, producer(t, emb.Addrs()), healthEvent("u-3", 3))
	readDLQ(t, emb.Addrs(), 4)
	broken = false
	again, err := in.proc.Replay(context.Background(), processor.ReplayConfig{DLQ: true, To: processor.Bound{Time: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	if again.Read != 1 || len(again.Served) != 1 {
		t.Fatalf("second DLQ replay = %+v, want only the new dead letter", again)
	}
}

// TestReplayEndPastThePartitionEnd: a range whose end is past what a partition holds ends
// at the partition's end instead of waiting for records that are not there.
func TestReplayEndPastThePartitionEnd(t *testing.T) {
	emb := testkit.Broker(t, 1)
	in := startInstance(t, emb.Addrs())
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"http://127.0.0.1:1/"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvent("u-1", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := in.proc.Replay(ctx, processor.ReplayConfig{
		HookIDs: []string{h.ID}, DryRun: true,
		From: processor.Bound{Offsets: map[int32]int64{0: 0}},
		To:   processor.Bound{Offsets: map[int32]int64{0: 5}},
	})
	if err != nil || !got.Done || got.Served[h.ID] != 1 {
		t.Fatalf("replay to 0:5 of a one-record partition = %+v, %v", got, err)
	}
}

func TestReplayHonoursGatesOnRequest(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	produce(t, producer(t, emb.Addrs()), healthEvents(6, 10)...)
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","snooze":3600,"config":{"url":"`+rc.URL+`"}}`)
	gated, err := in.proc.Replay(context.Background(), processor.ReplayConfig{HookIDs: []string{h.ID}, DryRun: true, HonourGates: true})
	if err != nil || gated.Served[h.ID] != 6 || gated.Gated != 54 {
		t.Fatalf("replay honouring gates = %+v, %v", gated, err)
	}
	bypass, err := in.proc.Replay(context.Background(), processor.ReplayConfig{HookIDs: []string{h.ID}, DryRun: true})
	if err != nil || bypass.Served[h.ID] != 60 {
		t.Fatalf("replay bypassing gates = %+v, %v", bypass, err)
	}
}
