package main

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestEmitTopicPrefix: emit writes to <prefix>events when EVENTHOOKS_TOPIC_PREFIX (or
// --topic-prefix) is set, like run and dev read it; --topic still wins.
func TestEmitTopicPrefix(t *testing.T) {
	emb := testkit.Broker(t, 2)
	brokers := emb.Addrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := broker.Bootstrap(context.Background(), kadm.NewClient(cl), broker.NewTopics("acme-", nil),
		broker.BootstrapConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	emit := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(binPath, append([]string{"emit", "--brokers", brokers, "--source", "crud", "--event", "consumers", "--key", "k"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("emit %v: %v\n%s", args, err, out)
		}
	}
	emit([]string{"EVENTHOOKS_TOPIC_PREFIX=acme-"})
	emit(nil, "--topic-prefix", "acme-")
	emit([]string{"EVENTHOOKS_TOPIC_PREFIX=acme-"}, "--topic", "eventhooks-events")
	emit(nil)
	if got := endOffsets(t, brokers, "acme-events"); got != 2 {
		t.Errorf("acme-events holds %d records, want 2", got)
	}
	if got := endOffsets(t, brokers, "eventhooks-events"); got != 2 {
		t.Errorf("eventhooks-events holds %d records, want 2", got)
	}
}
