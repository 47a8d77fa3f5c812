package processor_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// loggedAttempt is an attempt log line as the deliveries API reads it.
type loggedAttempt struct {
	HookID    string  `json:"hook_id"`
	EventID   string  `json:"event_id"`
	WebhookID string  `json:"webhook_id"`
	Attempt   int     `json:"attempt"`
	AtMs      int64   `json:"at_ms"`
	Duration  float64 `json:"duration_ms"`
	Outcome   string  `json:"outcome"`
	Reason    string  `json:"reason"`
	Status    int     `json:"status"`
	Error     string  `json:"error"`
	Response  string  `json:"response"`
	Request   string  `json:"request"`
	Offset    int64   `json:"offset"`
}

// TestAttemptLogHasEveryAttempt: each event's first attempt gets a 500 and its second a
// 200, and every tenth a 400: the attempts topic holds each attempt sent, with its
// outcome, status, the response's first bytes, the request's (the hook asks for them)
// and the webhook-id the receiver saw.
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
	var logged []loggedAttempt
	testkit.Eventually(t, 30*time.Second, "every attempt logged", func() bool {
		logged = logged[:0]
		for _, r := range readTopic(t, emb.Addrs(), topics.Attempts) {
			for line := range strings.SplitSeq(strings.TrimSuffix(string(r.Value), "\n"), "\n") {
				var a loggedAttempt
				if err := json.Unmarshal([]byte(line), &a); err != nil {
					t.Fatalf("attempt log line %s: %v", line, err)
				}
				if a.HookID != h.ID {
					t.Fatalf("attempt log line for hook %q, want %s", a.HookID, h.ID)
				}
				logged = append(logged, a)
			}
		}
		return len(logged) >= want
	})
	if len(logged) != want {
		t.Fatalf("%d attempts logged, want %d", len(logged), want)
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
		case a.AtMs == 0 || a.Duration <= 0 || a.EventID == "":
			t.Errorf("attempt without time, duration or event id: %+v", a)
		}
	}
	if count["failed/"] != keys*(perKey-1) || count["delivered/"] != keys*(perKey-1) || count["dead_lettered/permanent"] != keys {
		t.Fatalf("outcomes %v", count)
	}
}
