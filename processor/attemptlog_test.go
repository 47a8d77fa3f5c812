package processor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/deliveries"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// TestAttemptLogHasEveryAttempt: each event's first attempt gets a 500 and its second a
// 200, and every tenth a 400: the attempts topic holds each attempt sent, and the
// deliveries reader reads each with its outcome, status, the response's first bytes, the
// request's (the hook asks for them), the event's source, name, id and record, and the
// webhook-id the receiver saw, whatever the lines left out.
func TestAttemptLogHasEveryAttempt(t *testing.T) {
	const keys, perKey = 4, 5
	emb := testkit.Broker(t, 1)
	rc := testkit.NewReceiver(t)
	var mu sync.Mutex // Respond runs on the receiver's connections at once
	seen := map[string]bool{}
	rc.Respond = func(_ int, r *testkit.Request) int {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.Contains(string(r.Body), `"seq":0`):
			return 400
		case !seen[string(r.Body)]:
			seen[string(r.Body)] = true
			return 500
		}
		return 200
	}
	in := startInstance(t, emb.Addrs(), func(c *processor.Config) { c.AttemptsTopic = topics.Attempts })
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","log_request_body":true,
		"retry":{"initial_backoff_ms":10,"max_backoff_ms":20},"config":{"url":"`+rc.URL+`","secret":"s3cret"}}`)
	produce(t, producer(t, emb.Addrs()), healthEvents(keys, perKey)...)

	want := keys*(perKey-1)*2 + keys // two attempts each, one for a 400
	logged := readAttempts(t, emb.Addrs(), want)
	if len(logged) != want {
		t.Fatalf("%d attempts logged, want %d", len(logged), want)
	}
	offsets := map[string]bool{}
	for _, r := range readTopic(t, emb.Addrs(), topics.Events[0]) {
		offsets[fmt.Sprint(r.Partition, "@", r.Offset)] = true
	}
	ids := map[string]bool{}
	for _, r := range rc.Requests() {
		ids[r.Headers["Webhook-Id"]] = true
	}
	count := map[string]int{}
	for _, a := range logged {
		count[a.Outcome+"/"+a.Reason]++
		wantStatus := map[string]int{"failed": 500, "delivered": 200, "dead_lettered": 400}[a.Outcome]
		switch {
		case a.Status != wantStatus:
			t.Errorf("%s attempt %d with status %d, want %d", a.Outcome, a.Attempt, a.Status, wantStatus)
		case !ids[a.WebhookID]:
			t.Errorf("webhook_id %q was not sent to the receiver", a.WebhookID)
		case a.Outcome == "delivered" && a.Attempt != 2, a.Outcome == "failed" && a.Attempt != 1:
			t.Errorf("%s as attempt %d", a.Outcome, a.Attempt)
		case !strings.Contains(a.Request, `"upstream_id"`):
			t.Errorf("request excerpt %q: want the body's first bytes", a.Request)
		case a.Outcome != "delivered" && a.Error == "":
			t.Errorf("%s attempt without its error", a.Outcome)
		case a.AtMs == 0 || a.DurationMs <= 0 || a.EventID == "":
			t.Errorf("attempt without time, duration or event id: %+v", a)
		case a.HookID != h.ID || a.Source != "balancer" || a.Event != "health":
			t.Errorf("attempt of hook %s, event %s:%s", a.HookID, a.Source, a.Event)
		case a.Topic != topics.Events[0] || !offsets[fmt.Sprint(a.Partition, "@", a.Offset)]:
			t.Errorf("attempt of %s/%d@%d, not an event's record", a.Topic, a.Partition, a.Offset)
		}
	}
	if count["failed/"] != keys*(perKey-1) || count["delivered/"] != keys*(perKey-1) || count["dead_lettered/permanent"] != keys {
		t.Fatalf("outcomes %v", count)
	}
}

// readAttempts reads the attempts topic through a deliveries.Log until it holds want
// attempts, and returns every attempt it holds.
func readAttempts(t *testing.T, addrs []string, want int) []deliveries.Attempt {
	t.Helper()
	l, err := deliveries.New(deliveries.Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(addrs...)}, AttemptsTopic: topics.Attempts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- l.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
		l.Close()
	}()
	testkit.Eventually(t, 30*time.Second, "every attempt logged", func() bool {
		l.Touch(ctx)
		return l.Attempts.Len() >= want
	})
	var all []deliveries.Attempt
	for _, id := range l.Attempts.Hooks() {
		all = append(all, l.Attempts.Attempts(id, deliveries.Query{Size: deliveries.DefaultPerHook}).Data...)
	}
	return all
}
