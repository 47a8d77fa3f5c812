package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
)

func TestEnvelopeRecord(t *testing.T) {
	const kongBalancer = `{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":"unhealthy","source":"balancer","event":"health"}`
	tests := []struct {
		name  string
		line  string
		opt   EnvelopeOptions
		err   error
		key   string // "=id": the event id
		value map[string]any
		// genID and genTime: the id and time were generated (not compared literally).
		genID, genTime bool
	}{
		{
			name: "envelope with key",
			line: `{"id":"ev-1","source":"crud","event":"consumers:create","time":"2026-11-27T08:00:00Z","data":{"entity":{"id":"c-1"}},"key":"k-1"}`,
			key:  "k-1",
			value: map[string]any{"id": "ev-1", "source": "crud", "event": "consumers:create", "time": "2026-11-27T08:00:00Z",
				"data": map[string]any{"entity": map[string]any{"id": "c-1"}}},
		},
		{
			name: "body key wins over the key field",
			line: `{"key":"k-2","source":"crud","event":"consumers:create","data":{"entity":{"id":"c-1"}}}`,
			opt:  EnvelopeOptions{KeyField: "entity.id"},
			key:  "k-2", genID: true, genTime: true,
			value: map[string]any{"source": "crud", "event": "consumers:create", "data": map[string]any{"entity": map[string]any{"id": "c-1"}}},
		},
		{
			name: "key from a nested data field",
			line: `{"source":"crud","event":"consumers:create","data":{"entity":{"id":"c-1"}}}`,
			opt:  EnvelopeOptions{KeyField: "entity.id"},
			key:  "c-1", genID: true, genTime: true,
			value: map[string]any{"source": "crud", "event": "consumers:create", "data": map[string]any{"entity": map[string]any{"id": "c-1"}}},
		},
		{
			name: "numeric key field as written",
			line: `{"id":"e","time":"2026-11-27T08:00:00.5+01:00","source":"s","event":"e","data":{"n":1.50e3}}`,
			opt:  EnvelopeOptions{KeyField: "n"},
			key:  "1.50e3",
			value: map[string]any{"id": "e", "time": "2026-11-27T08:00:00.5+01:00", "source": "s", "event": "e",
				"data": map[string]any{"n": 1500.0}},
		},
		{
			name: "alternative key fields: first found",
			line: `{"id":"e","time":"2026-11-27T08:00:00Z","source":"rate-limiting-advanced","event":"rate-limit-exceeded","data":{"consumer":null,"ip":"203.0.113.9"}}`,
			opt:  EnvelopeOptions{KeyField: "consumer.id, ip"},
			key:  "203.0.113.9",
			value: map[string]any{"id": "e", "time": "2026-11-27T08:00:00Z", "source": "rate-limiting-advanced",
				"event": "rate-limit-exceeded", "data": map[string]any{"consumer": nil, "ip": "203.0.113.9"}},
		},
		{
			name: "key field missing: the id",
			line: `{"id":"ev-9","source":"s","event":"e","data":{"entity":{}}}`,
			opt:  EnvelopeOptions{KeyField: "entity.id"},
			key:  "=id", genTime: true,
			value: map[string]any{"id": "ev-9", "source": "s", "event": "e", "data": map[string]any{"entity": map[string]any{}}},
		},
		{
			name: "null and empty optional members are generated",
			line: "\t{\"id\":null,\"time\":\"\",\"key\":null,\"source\":\"s\",\"event\":\"e\",\"data\":{}}\r\n",
			key:  "=id", genID: true, genTime: true,
			value: map[string]any{"source": "s", "event": "e", "data": map[string]any{}},
		},
		{
			name: "escaped member names",
			line: `{"sourc\u0065":"s","event":"e\u00e9","data":{"a\"b":"\u0001"},"k\u0065y":"k"}`,
			key:  "k", genID: true, genTime: true,
			value: map[string]any{"source": "s", "event": "eé", "data": map[string]any{`a"b`: "\x01"}},
		},
		{
			name: "kong webhook body",
			line: kongBalancer,
			opt:  EnvelopeOptions{KeyField: "upstream_id"},
			key:  "u-1", genID: true, genTime: true,
			value: map[string]any{"source": "balancer", "event": "health", "data": map[string]any{
				"upstream_id": "u-1", "ip": "10.0.0.7", "port": 8000.0, "hostname": "api.internal", "health": "unhealthy"}},
		},
		{
			name: "kong body keeps id, time and key in data",
			line: `{"source":"crud","event":"consumers:create","operation":"create","entity":{"id":"c-1"},"id":7,"key":["x"],"time":"soon"}`,
			opt:  EnvelopeOptions{KeyField: "source,entity.id"},
			key:  "c-1", genID: true, genTime: true,
			value: map[string]any{"source": "crud", "event": "consumers:create", "data": map[string]any{
				"operation": "create", "entity": map[string]any{"id": "c-1"}, "id": 7.0, "key": []any{"x"}, "time": "soon"}},
		},
		{
			name: "kong body with nothing else",
			line: `{"source":"s","event":"e"}`,
			key:  "=id", genID: true, genTime: true,
			value: map[string]any{"source": "s", "event": "e", "data": map[string]any{}},
		},

		{name: "not json", line: `{"source":`, err: ErrNotJSON},
		{name: "lenient json", line: `{"source":"s","event":"e","data":{"n":NaN}}`, err: ErrNotJSON},
		{name: "raw control character in an escaped key", line: "{\"source\":\"s\",\"event\":\"e\",\"data\":{\"\x10\\b\":1}}", err: ErrNotJSON},
		{name: "two values", line: `{"source":"s","event":"e","data":{}} {}`, err: ErrNotJSON},
		{name: "array", line: `[{"source":"s","event":"e","data":{}}]`, err: ErrNotObject},
		{name: "missing source", line: `{"event":"e","data":{}}`, err: ErrMissingSource},
		{name: "source not a string", line: `{"source":1,"event":"e","data":{}}`, err: ErrMissingSource},
		{name: "empty event", line: `{"source":"s","event":"","data":{}}`, err: ErrMissingEvent},
		{name: "missing event", line: `{"source":"s","data":{}}`, err: ErrMissingEvent},
		{name: "data an array", line: `{"source":"s","event":"e","data":[1]}`, err: ErrMissingData},
		{name: "data null", line: `{"source":"s","event":"e","data":null}`, err: ErrMissingData},
		{name: "bad time", line: `{"source":"s","event":"e","data":{},"time":"yesterday"}`, err: ErrBadTime},
		{name: "time a number", line: `{"source":"s","event":"e","data":{},"time":1764230400}`, err: ErrBadTime},
		{name: "id a number", line: `{"id":7,"source":"s","event":"e","data":{}}`, err: ErrBadEnvelope},
		{name: "key a number", line: `{"key":7,"source":"s","event":"e","data":{}}`, err: ErrBadEnvelope},
		{name: "duplicate source", line: `{"source":"a","event":"e","data":{},"source":"b"}`, err: ErrBadEnvelope},
		{name: "duplicate escaped key", line: `{"key":"a","source":"s","event":"e","data":{},"\u006bey":"b"}`, err: ErrBadEnvelope},
		{
			name: "oversize", opt: EnvelopeOptions{MaxBytes: 100},
			line: `{"id":"e","time":"2026-11-27T08:00:00Z","source":"s","event":"e","data":{"pad":"` + strings.Repeat("a", 100) + `"}}`,
			err:  ErrOversize,
		},
		{
			name: "oversize after the generated id and time", opt: EnvelopeOptions{MaxBytes: 100},
			line: `{"source":"s","event":"e","data":{"pad":"` + strings.Repeat("a", 40) + `"}}`,
			err:  ErrOversize,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := tt.opt
			opt.Topic = "events"
			before := time.Now().UTC().Add(-time.Second)
			rec, err := EnvelopeRecord([]byte(tt.line), opt)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				t.Logf("error: %v", err)
				return
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Value, &got); err != nil {
				t.Fatalf("value %s: %v", rec.Value, err)
			}
			id, _ := got["id"].(string)
			if tt.genID {
				if _, err := uuid.Parse(id); err != nil {
					t.Errorf("generated id %q is not a uuid", id)
				}
				delete(got, "id")
			}
			if tt.genTime {
				ts, err := time.Parse(time.RFC3339Nano, got["time"].(string))
				if err != nil || ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
					t.Errorf("generated time %v (%v), want now", got["time"], err)
				}
				delete(got, "time")
			}
			if !reflect.DeepEqual(got, tt.value) {
				t.Errorf("value %s\n got  %#v\n want %#v", rec.Value, got, tt.value)
			}
			wantKey := tt.key
			if wantKey == "=id" {
				wantKey = id
			}
			if string(rec.Key) != wantKey {
				t.Errorf("key = %q, want %q", rec.Key, wantKey)
			}
			if rec.Topic != "events" {
				t.Errorf("topic = %q", rec.Topic)
			}
			wantHeaders := hdrs(HeaderSource, tt.value["source"].(string), HeaderEvent, tt.value["event"].(string))
			if !reflect.DeepEqual(rec.Headers, wantHeaders) {
				t.Errorf("headers = %v, want %v", rec.Headers, wantHeaders)
			}
		})
	}
}

func TestEnvelopeRecordErrorMessages(t *testing.T) {
	for line, want := range map[string]string{
		`{"event":"e","data":{}}`:                           `envelope has no "source"`,
		`{"source":true,"event":"e","data":{}}`:             `envelope has no "source": "source" is a boolean, want a non-empty string`,
		`{"source":"s","event":"e","data":"x"}`:             `envelope has no "data" object: "data" is a string`,
		`{"source":"s","event":"e","data":{},"time":"now"}`: `envelope "time" is not RFC 3339: "now"`,
		`{"source":"s","event":"e","data":{},"key":{}}`:     `invalid envelope: "key" is an object, want a string`,
	} {
		_, err := EnvelopeRecord([]byte(line), EnvelopeOptions{})
		if err == nil || err.Error() != want {
			t.Errorf("%s: err = %v, want %s", line, err, want)
		}
	}
}

func TestEnvelopeRecordNewID(t *testing.T) {
	n := 0
	opt := EnvelopeOptions{NewID: func() string { n++; return "derived-1" }}
	rec, err := EnvelopeRecord([]byte(`{"source":"s","event":"e","data":{}}`), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rec.Value, []byte(`{"id":"derived-1","time":"`)) || string(rec.Key) != "derived-1" {
		t.Errorf("value %s key %s", rec.Value, rec.Key)
	}
	if _, err := EnvelopeRecord([]byte(`{"id":"given","source":"s","event":"e","data":{}}`), opt); err != nil || n != 1 {
		t.Errorf("NewID called %d times for one missing id (err %v)", n, err)
	}
}

// TestEnvelopeRecordDoesNotRetainLine checks the record owns its bytes: the ingest
// endpoint reuses request buffers.
func TestEnvelopeRecordDoesNotRetainLine(t *testing.T) {
	for _, line := range []string{
		`{"id":"ev","time":"2026-11-27T08:00:00Z","source":"s","event":"e","data":{"entity":{"id":"c"}},"key":"k"}`,
		`{"source":"s","event":"e","entity":{"id":"c"}}`,
	} {
		b := []byte(line)
		rec, err := EnvelopeRecord(b, EnvelopeOptions{KeyField: "entity.id"})
		if err != nil {
			t.Fatal(err)
		}
		key, val := string(rec.Key), string(rec.Value)
		for i := range b {
			b[i] = 'x'
		}
		if string(rec.Key) != key || string(rec.Value) != val ||
			string(rec.Headers[0].Value) != "s" || string(rec.Headers[1].Value) != "e" {
			t.Errorf("record changed with its input: key %q value %q headers %v", rec.Key, rec.Value, rec.Headers)
		}
	}
}

// FuzzEnvelopeRecord: no panic, and an accepted record is one the processor's Decoder
// reads with the source and event of the input and of the headers.
func FuzzEnvelopeRecord(f *testing.F) {
	for _, s := range []string{
		`{"id":"ev-1","source":"crud","event":"consumers:create","time":"2026-11-27T08:00:00Z","data":{"entity":{"id":"c-1"}},"key":"k-1"}`,
		`{"source":"balancer","event":"health","upstream_id":"u-1","port":8000}`,
		`{"sourc\u0065":"s\"","event":"e\u00e9","data":{"a\"b":"\u0001","entity":{"id":12}},"k\u0065y":null}`,
		`{"source":"s","event":"e","data":{"entity":{"id":[1,{"x":"]"}]}}}`,
		`{"source":"s","event":"e","data":{},"time":"2026-11-27T08:00:00.123456789-07:00"}`,
		` {"source":"\ud800","event":"\udc00x","data":{}} `,
		`{"source":"s","event":"e","data":{},"source":"t"}`,
		"{\"source\":\"0\",\"event\":\"0\",\"\x10\\b\":\"\"}",
		`[]`, `{}`, `"x"`, `{"source":`,
	} {
		f.Add([]byte(s), "entity.id")
	}
	f.Fuzz(func(t *testing.T, line []byte, keyField string) {
		rec, err := EnvelopeRecord(line, EnvelopeOptions{KeyField: keyField, MaxBytes: 4096})
		if err != nil {
			if DecodeErrorKind(err) == "other" && !errors.Is(err, ErrBadEnvelope) ||
				strings.HasPrefix(err.Error(), "cannot build") {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if len(rec.Key) == 0 {
			t.Fatalf("empty key for %s", line)
		}
		var d Decoder
		var ev Event
		// Without headers, so the body alone must carry the source and event.
		bare := &kgo.Record{Key: rec.Key, Value: rec.Value}
		if err := d.Decode(bare, &ev); err != nil {
			t.Fatalf("decode %s: %v (from %s)", rec.Value, err, line)
		}
		if ev.Source != string(rec.Headers[0].Value) || ev.Event != string(rec.Headers[1].Value) {
			t.Fatalf("decoded %q/%q, headers %q/%q", ev.Source, ev.Event, rec.Headers[0].Value, rec.Headers[1].Value)
		}
		var p fastjson.Parser
		in, err := p.ParseBytes(line)
		if err != nil {
			t.Fatalf("accepted invalid JSON %s", line)
		}
		if ev.Source != string(in.GetStringBytes("source")) || ev.Event != string(in.GetStringBytes("event")) {
			t.Fatalf("decoded %q/%q from input %s", ev.Source, ev.Event, line)
		}
		if len(ev.ID) == 0 || ev.Time.IsZero() {
			t.Fatalf("no id or time in %s", rec.Value)
		}
		if err := d.Decode(&kgo.Record{Value: rec.Value}, &ev); err == nil && ev.Data().Get("source") != nil && in.Get("data") == nil {
			t.Fatalf("kong body kept source in data: %s", rec.Value)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(rec.Value, &top); err != nil {
			t.Fatalf("encoding/json rejects %s: %v", rec.Value, err)
		}
		if _, ok := top["key"]; ok {
			t.Fatalf("key written to the value: %s", rec.Value)
		}
	})
}
