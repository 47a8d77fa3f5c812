package broker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEmbeddedAddr(t *testing.T) {
	e := startTestBroker(t, EmbeddedConfig{Addr: "127.0.0.1:0"})
	addrs := e.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs() = %v, want one address", addrs)
	}
	host, port, err := net.SplitHostPort(addrs[0])
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addrs() = %v, want 127.0.0.1 and a chosen port", addrs)
	}
	// The listener is ours, on the address we asked for.
	if _, err := net.Listen("tcp", addrs[0]); err == nil {
		t.Errorf("%s is free, want the broker listening there", addrs[0])
	}

	// An unspecified host listens everywhere and advertises what it is told.
	e2 := startTestBroker(t, EmbeddedConfig{Addr: "0.0.0.0:0", AdvertisedHost: "localhost"})
	host, port, _ = net.SplitHostPort(e2.Addrs()[0])
	if host != "localhost" {
		t.Errorf("advertised host = %q, want localhost", host)
	}
	adm := kadm.NewClient(newClient(t, Config{Brokers: []string{net.JoinHostPort("127.0.0.1", port)}}))
	bm, err := adm.BrokerMetadata(testCtx(t))
	if err != nil {
		t.Fatalf("BrokerMetadata via 127.0.0.1: %v", err)
	}
	if len(bm.Brokers) != 1 || bm.Brokers[0].Host != "localhost" || strconv.Itoa(int(bm.Brokers[0].Port)) != port {
		t.Errorf("metadata brokers = %+v, want localhost:%s", bm.Brokers, port)
	}

	if _, err := StartEmbedded(EmbeddedConfig{Addr: "nope"}); err == nil {
		t.Errorf("StartEmbedded(Addr: nope) = nil error")
	}

	// A busy port fails and releases the data dir for the next try.
	dir := t.TempDir()
	_, err = StartEmbedded(EmbeddedConfig{Addr: addrs[0], DataDir: dir})
	if err == nil {
		t.Fatalf("StartEmbedded on the busy port %s = nil error", addrs[0])
	}
	startTestBroker(t, EmbeddedConfig{DataDir: dir})
}

func TestEmbeddedPersistence(t *testing.T) {
	dir := t.TempDir()
	topics := NewTopics("", nil)
	const n = 100
	const group = "eventhooks-test"

	e := startTestBroker(t, EmbeddedConfig{DataDir: dir, Partitions: 3, Logger: slog.New(slog.DiscardHandler)})
	if _, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Addr: "127.0.0.1:0"}); !errors.Is(err, errDirLocked) {
		t.Fatalf("second StartEmbedded on a used data dir = %v, want %v", err, errDirLocked)
	}
	adm := newAdmin(t, e)
	if err := Bootstrap(testCtx(t), adm, topics, BootstrapConfig{Partitions: 3}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}

	prod := newClient(t, Config{Brokers: e.Addrs()}, kgo.DefaultProduceTopic(topics.Events[0]))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Appendf(nil, "v%03d", i)}
	}
	if err := prod.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// A group member consumes everything and commits.
	cons := newClient(t, Config{Brokers: e.Addrs()},
		kgo.ConsumeTopics(topics.Events[0]), kgo.ConsumerGroup(group), kgo.DisableAutoCommit())
	if got := consume(t, cons, n); len(got) != n {
		t.Fatalf("consumed %d records, want %d", len(got), n)
	}
	if err := cons.CommitUncommittedOffsets(testCtx(t)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	cons.Close()
	prod.Close()
	committed := fetchCommitted(t, adm, group, topics.Events[0])
	if sum := sumOffsets(committed); sum != n {
		t.Fatalf("committed offsets %v sum to %d, want %d", committed, sum, n)
	}
	e.Close()

	// Restart on the same directory (and a new port).
	e2 := startTestBroker(t, EmbeddedConfig{DataDir: dir, Partitions: 3})
	adm2 := newAdmin(t, e2)
	if err := Bootstrap(testCtx(t), adm2, topics, BootstrapConfig{Partitions: 3}); err != nil {
		t.Fatalf("Bootstrap after restart: %v", err)
	}
	if got := describeTopics(t, adm2, topics.State)[topics.State]; got != (topicState{3, "compact"}) {
		t.Errorf("state topic after restart = %+v, want 3 compacted partitions", got)
	}
	if got := fetchCommitted(t, adm2, group, topics.Events[0]); !mapsEqual(got, committed) {
		t.Errorf("committed offsets after restart = %v, want %v", got, committed)
	}

	reader := newClient(t, Config{Brokers: e2.Addrs()},
		kgo.ConsumeTopics(topics.Events[0]), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consume(t, reader, n)
	var values []string
	for _, r := range got {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	for i, v := range values {
		if want := fmt.Sprintf("v%03d", i); v != want {
			t.Fatalf("record %d after restart = %q, want %q (got %d records)", i, v, want, len(values))
		}
	}

	// The group resumes after its commits: nothing old, only the new record.
	prod2 := newClient(t, Config{Brokers: e2.Addrs()}, kgo.DefaultProduceTopic(topics.Events[0]))
	if err := prod2.ProduceSync(testCtx(t), &kgo.Record{Key: []byte("k0"), Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	cons2 := newClient(t, Config{Brokers: e2.Addrs()}, kgo.ConsumeTopics(topics.Events[0]), kgo.ConsumerGroup(group))
	if got := consume(t, cons2, 1); string(got[0].Value) != "after" {
		t.Errorf("group resumed at %q, want the record produced after the restart", got[0].Value)
	}
}

// consume polls cl until it has n records or the test context ends.
func consume(t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func fetchCommitted(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	out := make(map[int32]int64)
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

func sumOffsets(m map[int32]int64) (sum int64) {
	for _, v := range m {
		sum += v
	}
	return sum
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSlogLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slogLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(kfake.LogLevelInfo, "request %d", 1) // dropped
	l.Logf(kfake.LogLevelWarn, "slow %s", "disk")
	l.Logf(kfake.LogLevelError, "broken %v", errors.New("x"))
	out := buf.String()
	if strings.Contains(out, "request") || !strings.Contains(out, "level=WARN msg=\"slow disk\" component=kfake") ||
		!strings.Contains(out, "level=ERROR msg=\"broken x\"") {
		t.Errorf("log output:\n%s", out)
	}
}
