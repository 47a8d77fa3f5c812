package deliveries

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// TestLinesOldAndCompact reads a record of full lines, as the processor wrote them
// before lines left anything out, and one of compact lines: both read to every field,
// the webhook-ids of the compact lines worked out from the event id or the record.
func TestLinesOldAndCompact(t *testing.T) {
	const hook = "6f1c2a9e-4b7d-4e21-9c3a-0d5e8f7a1b2c"
	rec := &kgo.Record{Topic: "eventhooks-events", Partition: 3, Offset: 41}
	byID := sinks.MessageID(hook, &hooks.Event{ID: []byte("ev-1"), Source: "balancer", Record: rec})
	byRecord := sinks.MessageID(hook, &hooks.Event{Record: &kgo.Record{Topic: rec.Topic, Partition: 3, Offset: 42}})
	want := []Attempt{
		{HookID: hook, EventID: "ev-1", WebhookID: byID, Source: "balancer", Event: "health", Attempt: 1, AtMs: 1000,
			DurationMs: 1.234, Outcome: OutcomeDelivered, Status: 200, Topic: rec.Topic, Partition: 3, Offset: 41},
		{HookID: hook, WebhookID: byRecord, Source: "balancer", Event: "health", Attempt: 2, AtMs: 1001,
			DurationMs: 30, Outcome: OutcomeDeadLettered, Reason: "permanent", Status: 400, Error: "400 Bad Request",
			Response: "no", Topic: rec.Topic, Partition: 3, Offset: 42},
		{HookID: "other", EventID: "ev-3", WebhookID: "msg_given", Source: "s\u00e9", Event: "", Attempt: 1, AtMs: 1002,
			Outcome: OutcomeFailed, Topic: rec.Topic, Partition: 0, Offset: 43},
	}
	records := map[string]string{
		"old": `{"at_ms":999}
{"hook_id":"` + hook + `","event_id":"ev-1","webhook_id":"` + byID + `","source":"balancer","event":"health","attempt":1,"at_ms":1000,"duration_ms":1.234,"outcome":"delivered","status":200,"topic":"eventhooks-events","partition":3,"offset":41}
{"hook_id":"` + hook + `","webhook_id":"` + byRecord + `","source":"balancer","event":"health","attempt":2,"at_ms":1001,"duration_ms":30,"outcome":"dead_lettered","reason":"permanent","status":400,"error":"400 Bad Request","response":"no","topic":"eventhooks-events","partition":3,"offset":42}
{"hook_id":"other","event_id":"ev-3","webhook_id":"msg_given","source":"s\u00e9","event":"","attempt":1,"at_ms":1002,"outcome":"failed","topic":"eventhooks-events","partition":0,"offset":43}
`,
		"compact": `{"at_ms":1000,"duration_ms":1.234,"hook_id":"` + hook + `","source":"balancer","event":"health","topic":"eventhooks-events","partition":3,"event_id":"ev-1","offset":41,"status":200}
{"at_ms":1001,"duration_ms":30,"offset":42,"attempt":2,"outcome":"dead_lettered","reason":"permanent","status":400,"error":"400 Bad Request","response":"no"}
{"at_ms":1002,"duration_ms":0,"hook_id":"other","source":"s\u00e9","event":"","partition":0,"event_id":"ev-3","webhook_id":"msg_given","offset":43,"outcome":"failed"}
not json
`,
	}
	for name, value := range records {
		t.Run(name, func(t *testing.T) {
			var lr lineReader
			var got []Attempt
			skipped := 0
			lr.each([]byte(value), func(a Attempt) { got = append(got, a) }, func(error) { skipped++ })
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read\n%+v\nwant\n%+v", got, want)
			}
			if skipped != 1 { // a first line without a hook, a line that is not JSON
				t.Errorf("%d lines skipped, want 1", skipped)
			}
		})
	}
}

// BenchmarkLineReader reads a record of 100 first attempts delivered, as a lane writes
// them: full lines (before lines left anything out) and compact lines, whose webhook-ids
// it works out.
func BenchmarkLineReader(b *testing.B) {
	const hook = "6f1c2a9e-4b7d-4e21-9c3a-0d5e8f7a1b2c"
	records := map[string][]byte{}
	for i := range 100 {
		id, off := fmt.Sprint("k3f9a1-", 100000+i), 41+i
		records["old"] = fmt.Appendf(records["old"], `{"hook_id":"%s","event_id":"%s","webhook_id":"%s","source":"balancer","event":"health","attempt":1,"at_ms":1750000000000,"duration_ms":1.234,"outcome":"delivered","status":200,"topic":"eventhooks-events","partition":3,"offset":%d}`+"\n",
			hook, id, sinks.MessageID(hook, &hooks.Event{ID: []byte(id), Source: "balancer"}), off)
		shared := ""
		if i == 0 {
			shared = `,"hook_id":"` + hook + `","source":"balancer","event":"health","topic":"eventhooks-events","partition":3`
		}
		records["compact"] = fmt.Appendf(records["compact"], `{"at_ms":1750000000000,"duration_ms":1.234%s,"event_id":"%s","offset":%d,"status":200}`+"\n", shared, id, off)
	}
	for _, name := range []string{"old", "compact"} {
		b.Run(name, func(b *testing.B) {
			var lr lineReader
			b.ReportAllocs()
			for range b.N {
				lr.each(records[name], func(Attempt) {}, func(err error) { b.Fatal(err) })
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/line")
		})
	}
}
