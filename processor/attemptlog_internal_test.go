package processor

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// TestAppendMillis: a duration reads as the float the log wrote before, to the
// microsecond.
func TestAppendMillis(t *testing.T) {
	for us := range int64(3_000_000) {
		d := time.Duration(us)*time.Microsecond + 999 // below a microsecond is dropped
		want := strconv.AppendFloat(nil, float64(us)/1000, 'f', -1, 64)
		if got := appendMillis(nil, d); !bytes.Equal(got, want) {
			t.Fatalf("%v: %s, want %s", d, got, want)
		}
	}
}

// TestLineHasWebhookIDItCannotDerive: an event id that is not UTF-8 does not read back
// as it was hashed, so its line carries the webhook-id; other lines leave it out.
func TestLineHasWebhookIDItCannotDerive(t *testing.T) {
	ch := &compiledHook{hook: &hooks.Hook{ID: "h"}}
	res := &sinks.Result{Delivered: true, Status: 200}
	for _, tt := range []struct {
		ev      *hooks.Event
		written bool
	}{
		{&hooks.Event{ID: []byte("ev-1"), Source: "s", Record: &kgo.Record{}}, false},
		{&hooks.Event{Record: &kgo.Record{Topic: "t", Offset: 4}}, false},
		{&hooks.Event{ID: []byte("ev\xff"), Source: "s", Record: &kgo.Record{}}, true},
		{&hooks.Event{ID: []byte("ev-1"), Source: "s\xff", Record: &kgo.Record{}}, true},
		{&hooks.Event{Source: "s", Key: []byte("k")}, true},
	} {
		var batch attemptBatch
		line := batch.appendAttempt(delivery{ev: tt.ev}, ch, res, time.UnixMilli(1), 1, outcomeDelivered, "")
		var got struct {
			WebhookID string `json:"webhook_id"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if want := map[bool]string{true: sinks.MessageID("h", tt.ev)}[tt.written]; got.WebhookID != want {
			t.Errorf("%s: webhook_id %q, want %q", line, got.WebhookID, want)
		}
	}
}

// BenchmarkAppendAttempt appends the line of a first attempt delivered, as the bench's
// events make them (an envelope id, no response body), to a lane's batch.
func BenchmarkAppendAttempt(b *testing.B) {
	ch := &compiledHook{hook: &hooks.Hook{ID: "6f1c2a9e-4b7d-4e21-9c3a-0d5e8f7a1b2c"}}
	rec := &kgo.Record{Topic: "eventhooks-events", Partition: 3}
	ev := &hooks.Event{Record: rec, ID: []byte("k3f9a1-123456"), Source: "balancer", Event: "health"}
	d := delivery{ev: ev, sinks: &sinks.Lane{}}
	res := &sinks.Result{Delivered: true, Status: 200, Duration: 1234 * time.Microsecond}
	at := time.UnixMilli(1_750_000_000_000)
	var batch attemptBatch
	b.ReportAllocs()
	for i := range b.N {
		if len(batch.buf) >= attemptBatchBytes {
			batch.buf, batch.last = batch.buf[:0], lineContext{}
		}
		rec.Offset = int64(i)
		batch.buf = batch.appendAttempt(d, ch, res, at, 1, outcomeDelivered, "")
	}
	b.ReportMetric(float64(len(batch.buf))/float64(bytes.Count(batch.buf, []byte{'\n'})), "B/line")
}
