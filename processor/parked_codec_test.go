package processor

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// deliveryJSON is the eh-delivery header as a consumer of the DLQ reads it.
type deliveryJSON struct {
	Attempts       int    `json:"attempts"`
	LastStatus     int    `json:"last_status,omitempty"`
	LastError      string `json:"last_error,omitempty"`
	FirstAttemptMs int64  `json:"first_attempt_ms"`
	LastAttemptMs  int64  `json:"last_attempt_ms"`
	DueMs          int64  `json:"due_ms,omitempty"`
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	Offset         int64  `json:"offset"`
	TimestampMs    int64  `json:"timestamp_ms"`
}

// TestParkedEntryCodec: a parked record keeps the original key, value and headers as
// they were; its history header is what encoding/json reads; the entry reads back whole.
func TestParkedEntryCodec(t *testing.T) {
	entries := []parkedEntry{
		{Attempts: 1, Topic: "t", Value: []byte("garbage")},
		{
			HookID: "h-1", Reason: "max_attempts", Attempts: 10, LastStatus: 503, LastError: "deliver hook h-1: \"busy\"\n",
			FirstAttemptMs: 1, LastAttemptMs: 2, DueMs: 3, Topic: "eventhooks-events", Partition: 7, Offset: 42,
			TimestampMs: 1700000000000, Key: []byte("u-1"), Value: []byte(`{"source":"s","event":"e","data":{}}`),
			Headers: []kgo.RecordHeader{{Key: "eh-source", Value: []byte("s")}, {Key: "ce_id", Value: []byte{0, 0xff}}},
		},
		{HookID: "h-2", Topic: "eventhooks-events", Partition: 3, Offset: 100, Cursor: markerProgress, CursorAt: 250},
	}
	for _, e := range entries {
		rec := &e.record("dlq").rec
		if string(rec.Key) != string(e.Key) || string(rec.Value) != string(e.Value) || rec.Topic != "dlq" {
			t.Errorf("record %+v does not carry the original key and value of %+v", rec, e)
		}
		n := len(rec.Headers)
		if !reflect.DeepEqual(rec.Headers[:n-3], e.Headers) && len(e.Headers) > 0 {
			t.Errorf("original headers %v became %v", e.Headers, rec.Headers[:n-3])
		}
		var d deliveryJSON
		if err := json.Unmarshal(rec.Headers[n-1].Value, &d); err != nil {
			t.Fatalf("encoding/json cannot read %s: %v", rec.Headers[n-1].Value, err)
		}
		want := deliveryJSON{e.Attempts, e.LastStatus, e.LastError, e.FirstAttemptMs, e.LastAttemptMs, e.DueMs, e.Topic, e.Partition, e.Offset, e.TimestampMs}
		if d != want {
			t.Errorf("encoding/json reads %+v, want %+v", d, want)
		}
		var back parkedEntry
		if err := parseParkedEntry(rec, &back); err != nil || !reflect.DeepEqual(back, e) {
			t.Errorf("parseParkedEntry = %+v, %v; want %+v", back, err, e)
		}
	}
	// A header a tool appended after ours is dropped.
	rec := &entries[1].record("dlq").rec
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-1")})
	var back parkedEntry
	if err := parseParkedEntry(rec, &back); err != nil || !reflect.DeepEqual(back, entries[1]) {
		t.Errorf("with a header appended: %+v, %v", back, err)
	}
	// The entry of earlier versions: the record's value, the event in base64.
	legacy := &kgo.Record{Value: []byte(`{"hook_id":"h-1","reason":"max_attempts","attempts":10,"last_status":503,` +
		`"last_error":"deliver hook h-1: \"busy\"\n","first_attempt_ms":1,"last_attempt_ms":2,"due_ms":3,` +
		`"topic":"eventhooks-events","partition":7,"offset":42,"timestamp_ms":1700000000000,"key":"dS0x",` +
		`"value":"eyJzb3VyY2UiOiJzIiwiZXZlbnQiOiJlIiwiZGF0YSI6e319",` +
		`"headers":[{"key":"eh-source","value":"cw=="},{"key":"ce_id","value":"AP8="}]}`),
		Headers: []kgo.RecordHeader{{Key: headerHookID, Value: []byte("h-1")}, {Key: headerReason, Value: []byte("max_attempts")}}}
	back = parkedEntry{}
	if err := parseParkedEntry(legacy, &back); err != nil || !reflect.DeepEqual(back, entries[1]) {
		t.Errorf("legacy entry: %+v, %v; want %+v", back, err, entries[1])
	}
	for _, bad := range []*kgo.Record{
		{Value: []byte(`{}`)},
		{Headers: []kgo.RecordHeader{{Key: headerHookID}, {Key: headerReason}, {Key: headerDelivery, Value: []byte(`[1]`)}}},
		{Headers: []kgo.RecordHeader{{Key: headerHookID}, {Key: headerReason}, {Key: headerDelivery, Value: []byte(`{`)}}},
	} {
		if err := parseParkedEntry(bad, &parkedEntry{}); err == nil {
			t.Errorf("%+v parsed as an entry", bad)
		}
	}
}

// BenchmarkParkedRecord is the encoding of one park (a hook whose endpoint is down parks
// every event): the record from the pool, its headers, and back to the pool.
func BenchmarkParkedRecord(b *testing.B) {
	e := parkedEntry{
		HookID: "0b5a8a1e-5f3c-4b8e-9d1a-2c3e4f5a6b7c", Reason: "circuit_open", Attempts: 1, LastError: "circuit open",
		FirstAttemptMs: 1700000000000, LastAttemptMs: 1700000000000, DueMs: 1700000001000, Topic: "eventhooks-events",
		Partition: 3, Offset: 123456, TimestampMs: 1700000000000, Key: []byte("u-1"), Value: []byte(`{"source":"s","event":"e","data":{}}`),
	}
	b.ReportAllocs()
	for b.Loop() {
		e.record("eventhooks-retry").release()
	}
}

// TestEntryForSeveralHooks: an entry parked behind the blocked keys of several hooks is
// one record that reads back as one entry per hook, each with its own blocking mark.
func TestEntryForSeveralHooks(t *testing.T) {
	orig := &kgo.Record{Topic: "events", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte(`{"x":1}`)}
	e := newEntry(orig, "h1"+hookSep+"h2"+hookSep+"h3", time.UnixMilli(1000))
	e.Marks = "121"
	pr := e.record("retry")
	defer pr.release()
	var back parkedEntry
	if err := parseParkedEntry(&pr.rec, &back); err != nil {
		t.Fatal(err)
	}
	var got []string
	back.each(func(one *parkedEntry) {
		got = append(got, fmt.Sprintf("%s:%d:%s:%d", one.HookID, one.Blocking, one.Key, one.Offset))
	})
	want := []string{"h1:1:k:7", "h2:2:k:7", "h3:1:k:7"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	if pr.rec.Partition != 2 {
		t.Fatalf("written at partition %d, want the event's 2", pr.rec.Partition)
	}
}

// FuzzParkedEntry: any retry or DLQ record (a tool, an older version or a bit flip may
// have written it) parses without a panic, and each of its hooks' entries is readable.
func FuzzParkedEntry(f *testing.F) {
	e := newEntry(&kgo.Record{Key: []byte("k"), Value: []byte(`{}`)}, "h1,h2", time.UnixMilli(1))
	e.Marks = "12"
	pr := e.record("retry")
	f.Add([]byte("h1,h2"), []byte(""), pr.rec.Headers[len(pr.rec.Headers)-1].Value)
	pr.release()
	f.Add([]byte("h"), []byte("permanent"), []byte(`{"attempts":3,"blocking":9,"blocking_marks":"9x"}`))
	f.Fuzz(func(t *testing.T, hookID, reason, history []byte) {
		r := &kgo.Record{Key: []byte("k"), Headers: []kgo.RecordHeader{
			{Key: headerHookID, Value: hookID}, {Key: headerReason, Value: reason}, {Key: headerDelivery, Value: history}}}
		var got parkedEntry
		if parseParkedEntry(r, &got) != nil {
			return
		}
		got.each(func(one *parkedEntry) {
			if one.Blocking > blockByHook {
				t.Fatalf("blocking mark %d out of range", one.Blocking)
			}
		})
	})
}
