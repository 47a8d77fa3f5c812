package deliveries

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestLogTailsTopics produces attempts and dead letters in the processor's formats to
// the embedded broker and reads them back through a running Log.
func TestLogTailsTopics(t *testing.T) {
	emb, topics, cl, produce := brokerWithTopics(t)
	ctx := context.Background()
	// Records before the Log starts are read too (from Total before each end).
	for i := range 5 {
		a := Attempt{HookID: "hook-1", WebhookID: "msg_1", Attempt: i + 1, AtMs: int64(i), Outcome: OutcomeFailed, Status: 503}
		b, _ := json.Marshal(a)
		produce(&kgo.Record{Topic: topics.Attempts, Key: []byte(a.HookID), Value: b})
	}
	produce(&kgo.Record{Topic: topics.Attempts, Key: []byte("x"), Value: []byte("not json")})
	produce(&kgo.Record{Topic: topics.Events[0], Key: []byte("k"), Value: []byte(`{"seq":1}`)})

	l := runLog(t, Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(emb.Addrs()...)}, AttemptsTopic: topics.Attempts,
		DLQTopic: topics.DLQ, InputTopics: []string{topics.Events[0], "second-input"}, Total: 100, IdleAfter: time.Second})

	time.Sleep(300 * time.Millisecond)
	if n := l.Attempts.Len(); n != 0 {
		t.Fatalf("%d attempts read before the log was used", n)
	}
	l.Touch(ctx) // starts the tail and waits for it to catch up
	if n := l.Attempts.Len(); n != 5 {
		t.Fatalf("%d attempts indexed once Touch returned, want the 5 produced before", n)
	}

	produce(&kgo.Record{Topic: topics.DLQ, Key: []byte("k"), Value: []byte(`{"seq":1}`), Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("x")},
		{Key: headerHookID, Value: []byte("hook-1")}, {Key: headerReason, Value: []byte("permanent")},
		{Key: headerDelivery, Value: []byte(`{"attempts":1,"last_status":400,"last_error":"bad","topic":"eventhooks-events","partition":2,"offset":7}`)},
	}})
	produce(&kgo.Record{Topic: topics.DLQ, Value: []byte("someone else's")})
	testkit.Eventually(t, 30*time.Second, "attempts and dead letter indexed", func() bool {
		l.Touch(ctx)
		return l.Attempts.Len() == 5 && len(l.DeadLetters.List(DeadLetterQuery{Size: 10}).Data) == 1
	})
	got, _ := l.Attempts.Delivery("msg_1")
	if len(got) != 5 || got[4].Attempt != 5 || got[4].Status != 503 {
		t.Errorf("delivery msg_1: %+v", got)
	}
	dl := l.DeadLetters.List(DeadLetterQuery{HookID: "hook-1", Reason: "permanent", Size: 10}).Data
	if len(dl) != 1 || dl[0].LastStatus != 400 || dl[0].Offset != 7 || dl[0].Partition != 2 || dl[0].Value != `{"seq":1}` {
		t.Errorf("dead letters %+v", dl)
	}
	if n := len(l.DeadLetters.List(DeadLetterQuery{Reason: "max_attempts", Size: 10}).Data); n != 0 {
		t.Errorf("reason filter kept %d", n)
	}

	// The event's range for a retry: its own offset, every other partition empty.
	p := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Events[0], Key: []byte("k2"), Value: []byte(`{}`)})
	r, err := p.First()
	if err != nil {
		t.Fatal(err)
	}
	topic, from, to, err := l.RetryRange(ctx, Attempt{Topic: topics.Events[0], Partition: r.Partition, Offset: r.Offset})
	if err != nil {
		t.Fatal(err)
	}
	if topic != topics.Events[0] {
		t.Errorf("retry topic %s, want %s", topic, topics.Events[0])
	}
	if want := bound(r.Partition, r.Offset); !contains(from, want) || !contains(to, bound(r.Partition, r.Offset+1)) {
		t.Errorf("range %s .. %s does not select %s", from, to, want)
	}
	if _, _, _, err := l.RetryRange(ctx, Attempt{Topic: "other"}); !errors.Is(err, ErrOtherTopic) {
		t.Error("an attempt of another topic got a range")
	}
	if _, _, _, err := l.RetryRange(ctx, Attempt{Partition: r.Partition, Offset: r.Offset + 10}); err == nil {
		t.Error("an offset past the end got a range")
	}
	// Unused for IdleAfter, the tail ends and the indexes are emptied; a Touch reads again.
	testkit.Eventually(t, 30*time.Second, "the indexes emptied when idle", func() bool { return l.Attempts.Len() == 0 })
	l.Touch(ctx)
	if n := l.Attempts.Len(); n != 5 {
		t.Fatalf("%d attempts after a Touch of the idle log, want 5", n)
	}
}

// brokerWithTopics starts an embedded broker with the default topics and returns a
// client of it and a function producing a record synchronously.
func brokerWithTopics(t *testing.T) (*broker.Embedded, broker.Topics, *kgo.Client, func(*kgo.Record)) {
	emb := testkit.Broker(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return emb, broker.NewTopics("", nil), cl, func(r *kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// runLog runs a Log of cfg until the test ends.
func runLog(t *testing.T, cfg Config) *Log {
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		l.Close()
	})
	return l
}

func contains(list, item string) bool {
	for s := range strings.SplitSeq(list, ",") {
		if s == item {
			return true
		}
	}
	return false
}

// A tail reads up to the ends before it may stop as idle: when its start took longer
// than IdleAfter (a slow broker here), it ended before reading, and the Touch waiting
// for it found nothing.
func TestTouchCatchesUpAfterASlowStart(t *testing.T) {
	emb, topics, _, produce := brokerWithTopics(t)
	for i := range 3 {
		b, _ := json.Marshal(Attempt{HookID: "hook-1", WebhookID: "msg_1", Attempt: i + 1, Outcome: OutcomeFailed})
		produce(&kgo.Record{Topic: topics.Attempts, Value: b})
	}
	const idleAfter = time.Second
	l := runLog(t, Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(emb.Addrs()...)}, AttemptsTopic: topics.Attempts,
		IdleAfter: idleAfter})
	c := emb.Cluster()
	c.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { time.Sleep(idleAfter + 500*time.Millisecond) }) // the tail's first listing
		c.DropControl()
		return nil, nil, false
	})
	l.Touch(context.Background())
	if n := l.Attempts.Len(); n != 3 {
		t.Errorf("%d attempts once Touch returned, want 3", n)
	}
}
