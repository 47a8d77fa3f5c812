package hooks

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestStoreClampsOutOfBoundsHooks: a hook record written by an older version, with
// values today's Validate refuses, is loaded with the nearest allowed values instead of
// reaching the processor as is (max_backoff_ms 2^63-1 overflowed time.Duration).
func TestStoreClampsOutOfBoundsHooks(t *testing.T) {
	const topic = "eventhooks-hooks"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, StoreClientOpts(topic)...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	defer cl.Close()
	const id = "6f1c3a52-5a2b-4a6e-9b1e-0d7a7d1f2c33"
	old := `{"id":"` + id + `","created_at":1700000000,"updated_at":1700000000,"source":"crud","event":null,` +
		`"handler":"log","on_change":null,"snooze":9223372036854775807,"config":{},"enabled":true,"ordering":"key",` +
		`"retry":{"max_attempts":1000,"initial_backoff_ms":9223372036854775807,"max_backoff_ms":9223372036854775807},` +
		`"timeout_ms":600000,"snooze_scope":"key","tags":[]}`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(id), Value: []byte(old)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	s := NewStore(cl, topic, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Loaded():
	case err := <-done:
		t.Fatalf("store stopped before loading: %v", err)
	case <-ctx.Done():
		t.Fatal("store did not load the hooks topic within a minute")
	}
	h, ok := s.Snapshot().Get(id)
	if !ok {
		t.Fatal("hook not loaded")
	}
	if h.TimeoutMs != MaxTimeoutMs || h.SnoozeSeconds() != MaxSnoozeSeconds || *h.Retry != (Retry{MaxAttempts: MaxRetryAttempts, InitialBackoffMs: MaxBackoffMs, MaxBackoffMs: MaxBackoffMs}) {
		t.Errorf("loaded timeout_ms %d snooze %d retry %+v, want them clamped", h.TimeoutMs, h.SnoozeSeconds(), *h.Retry)
	}
	assertWithinBounds(t, h)
	cancel()
	<-done
}
