package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// TestReplayCountsOutcomes: a replay counts each hook's deliveries by how they ended,
// against a receiver answering one status throughout; Served stays their sum.
func TestReplayCountsOutcomes(t *testing.T) {
	const n = 12
	for _, tc := range []struct {
		name   string
		status int
		noDLQ  bool
		want   processor.ReplayOutcomes
	}{
		{"delivered", 200, false, processor.ReplayOutcomes{Delivered: n}},
		{"parked after its inline attempts", 503, false, processor.ReplayOutcomes{Parked: n}},
		{"dead-lettered", 410, false, processor.ReplayOutcomes{DeadLettered: n}},
		{"failed with no DLQ topic", 410, true, processor.ReplayOutcomes{Failed: n}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emb := testkit.Broker(t, 2)
			rc := testkit.NewReceiver(t)
			rc.Respond = func(int, *testkit.Request) int { return tc.status }
			in := startInstance(t, emb.Addrs(), func(c *processor.Config) {
				if tc.noDLQ {
					c.DLQTopic = ""
				}
			})
			produce(t, producer(t, emb.Addrs()), healthEvents(3, n/3)...)
			// Consumed before the hook exists: only the replay delivers.
			testkit.Eventually(t, 30*time.Second, "the events consumed", func() bool { return committed(t, emb.Addrs()) == n })
			h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none",
				"retry":{"max_attempts":20,"initial_backoff_ms":5,"max_backoff_ms":20},"config":{"url":"`+rc.URL+`"}}`)
			got, err := in.proc.Replay(context.Background(), processor.ReplayConfig{HookIDs: []string{h.ID}})
			if err != nil {
				t.Fatal(err)
			}
			if !got.Done || got.Outcomes[h.ID] != tc.want || got.Served[h.ID] != n {
				t.Fatalf("replay outcomes %+v, served %d; want %+v", got.Outcomes, got.Served[h.ID], tc.want)
			}
		})
	}
}
