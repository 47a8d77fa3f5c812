package processor

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestParkedEntryCodec: the hand-written JSON is what encoding/json writes and reads.
func TestParkedEntryCodec(t *testing.T) {
	entries := []parkedEntry{
		{Attempts: 1, Topic: "t", Value: []byte("garbage")},
		{
			HookID: "h-1", Reason: "max_attempts", Attempts: 10, LastStatus: 503, LastError: "deliver hook h-1: \"busy\"\n",
			FirstAttemptMs: 1, LastAttemptMs: 2, DueMs: 3, Topic: "eventhooks-events", Partition: 7, Offset: 42,
			TimestampMs: 1700000000000, Key: []byte("u-1"), Value: []byte(`{"source":"s","event":"e","data":{}}`),
			Headers: []headerJSON{{Key: "eh-source", Value: []byte("s")}, {Key: "ce_id", Value: []byte{0, 0xff}}},
		},
	}
	for _, e := range entries {
		ours := e.appendJSON(nil)
		var viaStd parkedEntry
		if err := json.Unmarshal(ours, &viaStd); err != nil {
			t.Fatalf("encoding/json cannot read %s: %v", ours, err)
		}
		if !reflect.DeepEqual(viaStd, e) {
			t.Errorf("encoding/json reads %+v from %s, want %+v", viaStd, ours, e)
		}
		std, _ := json.Marshal(e)
		var back parkedEntry
		if err := parseParkedEntry(std, &back); err != nil || !reflect.DeepEqual(back, e) {
			t.Errorf("parseParkedEntry(%s) = %+v, %v", std, back, err)
		}
	}
	if err := parseParkedEntry([]byte(`[1]`), &parkedEntry{}); err == nil {
		t.Error("an array parsed as an entry")
	}
}
