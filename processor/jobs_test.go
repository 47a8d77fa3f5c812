package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/processor"
)

// TestReplayJobReadsTheInputTopicItNames: a replay job reads the input topic its request
// names (a retry of a delivery on a second input topic) and refuses any other topic.
func TestReplayJobReadsTheInputTopicItNames(t *testing.T) {
	const second = "eventhooks-second-input"
	emb := testkit.Broker(t, 2)
	cl := producer(t, emb.Addrs())
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 2, 1, nil, second); err != nil {
		t.Fatal(err)
	}
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs(), func(c *processor.Config) { c.Topics = []string{topics.Events[0], second} })
	h := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	ev := healthEvent("u-1", 1)
	ev.Topic = second
	r, err := cl.ProduceSync(context.Background(), ev).First()
	if err != nil {
		t.Fatal(err)
	}
	rc.WaitFor(t, 1, 30*time.Second) // delivered live

	jobs := processor.NewReplayJobs(in.proc, func(string) bool { return true })
	defer jobs.Close()
	for _, bad := range []string{`{"topic":"` + topics.Hooks + `"}`, `{"topic":"` + second + `","dlq":true}`} {
		_, err := jobs.Start([]byte(bad))
		var se *hooks.SchemaError
		if !errors.As(err, &se) || se.Fields["topic"] == "" {
			t.Errorf("%s: %v, want a topic field error", bad, err)
		}
	}
	var from, to []string // the event alone: the other partition's range is empty
	for p := range int32(2) {
		lo, hi := int64(0), int64(0)
		if p == r.Partition {
			lo, hi = r.Offset, r.Offset+1
		}
		from, to = append(from, fmt.Sprintf("%d:%d", p, lo)), append(to, fmt.Sprintf("%d:%d", p, hi))
	}
	body, _ := json.Marshal(map[string]any{"topic": second, "from": strings.Join(from, ","), "to": strings.Join(to, ","), "hooks": []string{h.ID}})
	if _, err := jobs.Start(body); err != nil {
		t.Fatal(err)
	}
	reqs := rc.WaitFor(t, 2, 30*time.Second)
	if string(reqs[1].Body) != string(reqs[0].Body) {
		t.Fatalf("the replay sent %s, want the event again: %s", reqs[1].Body, reqs[0].Body)
	}
}
