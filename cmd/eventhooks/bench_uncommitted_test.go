package main

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestUncommittedCountsPerPartition: what --target's completion and a scale-out loss
// report read, against a real broker: per partition, the records past the group's
// commit (all of them where it committed nothing), and the records in all; a group the
// broker does not know is errNoGroupOffsets.
func TestUncommittedCountsPerPartition(t *testing.T) {
	emb := testkit.Broker(t, 3)
	topic := broker.NewTopics("", nil).Events[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for p, n := range map[int32]int{0: 5, 1: 3, 2: 4} {
		for range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("{}")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	adm := kadm.NewClient(cl)
	var commit kadm.Offsets
	commit.AddOffset(topic, 0, 2, -1) // 3 left
	commit.AddOffset(topic, 1, 3, -1) // all done; 2: nothing committed
	if _, err := adm.CommitOffsets(ctx, "g", commit); err != nil {
		t.Fatal(err)
	}
	lag, total, err := uncommitted(ctx, adm, "g", topic)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int32]int64{0: 3, 1: 0, 2: 4}; !maps.Equal(lag, want) || total != 12 {
		t.Errorf("uncommitted %v of %d, want %v of 12", lag, total, want)
	}
	// A group the broker does not know yet: --target's completion waits on it.
	if _, _, err := uncommitted(ctx, adm, "no-such-group", topic); !errors.Is(err, errNoGroupOffsets) {
		t.Errorf("a group the broker does not know: err %v, want errNoGroupOffsets", err)
	}
}
