package hooks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func hdrs(kv ...string) []kgo.RecordHeader {
	var hs []kgo.RecordHeader
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func TestDecode(t *testing.T) {
	ts := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		value   string
		headers []kgo.RecordHeader
		err     error
		source  string
		event   string
		id      string
		data    string
		time    time.Time
	}{
		{
			name:   "envelope",
			value:  `{"id":"01J","source":"balancer","event":"health","time":"2026-11-27T08:00:00Z","data":{"ip":"10.0.0.7","port":8000}}`,
			source: "balancer", event: "health", id: "01J", data: `{"ip":"10.0.0.7","port":8000}`, time: ts,
		},
		{
			name:    "headers agree",
			value:   `{"source":"crud","event":"consumers","data":{}}`,
			headers: hdrs(HeaderSource, "crud", HeaderEvent, "consumers"),
			source:  "crud", event: "consumers", data: `{}`,
		},
		{
			name:    "cloudevents binary",
			value:   `{"consumer":"c1"}`,
			headers: hdrs(HeaderCESource, "rate-limiting-advanced", HeaderCEType, "rate-limit-exceeded", HeaderCEID, "e-9", HeaderCETime, "2026-11-27T08:00:00Z"),
			source:  "rate-limiting-advanced", event: "rate-limit-exceeded", id: "e-9", data: `{"consumer":"c1"}`, time: ts,
		},
		{name: "not json", value: `{"source":`, err: ErrNotJSON},
		{name: "array", value: `[1,2]`, err: ErrNotObject},
		{name: "lenient json", value: `{"source":"x","event":"y","data":{"n":NaN}}`, err: ErrNotJSON},
		{name: "control char fastjson lets by", value: "{\"source\":\"x\",\"event\":\"y\",\"data\":{\"\x10\\b\":1}}", err: ErrNotJSON},
		{name: "pretty printed", value: "{\n\t\"source\": \"x\",\n\t\"event\": \"y\",\n\t\"data\": {}\n}", source: "x", event: "y", data: `{}`},
		{name: "missing source", value: `{"event":"x","data":{}}`, err: ErrMissingSource},
		{name: "missing event", value: `{"source":"x","data":{}}`, err: ErrMissingEvent},
		{name: "missing data", value: `{"source":"x","event":"y"}`, err: ErrMissingData},
		{name: "data not object", value: `{"source":"x","event":"y","data":[1]}`, err: ErrMissingData},
		{name: "bad time", value: `{"source":"x","event":"y","data":{},"time":"yesterday"}`, err: ErrBadTime},
		{
			name: "header mismatch", value: `{"source":"crud","event":"consumers","data":{}}`,
			headers: hdrs(HeaderSource, "crud", HeaderEvent, "routes"), err: ErrHeaderMismatch,
		},
		{
			name: "only eh-source", value: `{"source":"crud","event":"consumers","data":{}}`,
			headers: hdrs(HeaderSource, "crud"), err: ErrHeaderMismatch,
		},
		{
			name: "only eh-event", value: `{"source":"crud","event":"consumers","data":{}}`,
			headers: hdrs(HeaderEvent, "consumers"), err: ErrHeaderMismatch,
		},
		{name: "oversize", value: `{"source":"x","event":"y","data":{"pad":"` + strings.Repeat("a", 2000) + `"}}`, err: ErrOversize},
		{name: "ce without type", value: `{}`, headers: hdrs(HeaderCESource, "s"), err: ErrMissingEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decoder{MaxBytes: 1024}
			r := &kgo.Record{Key: []byte("k"), Value: []byte(tt.value), Headers: tt.headers}
			var ev Event
			err := d.Decode(r, &ev)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if DecodeErrorKind(err) == "other" {
					t.Errorf("error %v has no kind", err)
				}
				return
			}
			if ev.Source != tt.source || ev.Event != tt.event || string(ev.ID) != tt.id {
				t.Errorf("got %q/%q id %q", ev.Source, ev.Event, ev.ID)
			}
			if got := ev.Data().String(); got != tt.data {
				t.Errorf("data = %s, want %s", got, tt.data)
			}
			if !tt.time.IsZero() && !ev.Time.Equal(tt.time) {
				t.Errorf("time = %v, want %v", ev.Time, tt.time)
			}
			if string(ev.Key) != "k" {
				t.Errorf("key = %q", ev.Key)
			}
		})
	}
}

func TestDecoderReportsNewNamesOnce(t *testing.T) {
	var seen []string
	d := Decoder{OnNewName: func(s, e string) { seen = append(seen, s+"/"+e) }}
	var ev Event
	for _, v := range []string{
		`{"source":"a","event":"x","data":{}}`,
		`{"source":"a","event":"x","data":{}}`,
		`{"source":"a","event":"y","data":{}}`,
	} {
		if err := d.Decode(&kgo.Record{Value: []byte(v)}, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(seen, ",") != "a/x,a/y" {
		t.Fatalf("seen = %v", seen)
	}
}

func TestRouteFromHeaders(t *testing.T) {
	var d Decoder
	if _, _, ok := d.Route(&kgo.Record{}); ok {
		t.Fatal("no headers routed")
	}
	s, e, ok := d.Route(&kgo.Record{Headers: hdrs(HeaderSource, "balancer", HeaderEvent, "health")})
	if !ok || s != "balancer" || e != "health" {
		t.Fatalf("route = %q %q %v", s, e, ok)
	}
}

func TestDecodeAllocations(t *testing.T) {
	var d Decoder
	var ev Event
	r := &kgo.Record{Key: []byte("u-1"), Value: []byte(`{"id":"01J","source":"balancer","event":"health","data":{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"health":"unhealthy"}}`)}
	if err := d.Decode(r, &ev); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = d.Decode(r, &ev) })
	if allocs > 0 {
		t.Fatalf("Decode allocates %.1f times per record in the steady state", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	var d Decoder
	var ev Event
	r := &kgo.Record{Key: []byte("u-1"), Value: []byte(`{"id":"01JD7Q3","source":"balancer","event":"health","time":"2026-11-27T08:00:00Z","data":{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":"unhealthy"}}`)}
	b.ReportAllocs()
	b.SetBytes(int64(len(r.Value)))
	for b.Loop() {
		if err := d.Decode(r, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode: no input crashes the decoder, and it decodes as the reference decoder
// (encoding/json's validity, fastjson's tree) does.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"source":"crud","event":"consumers","data":{"entity":{"id":1}}}`), "", "")
	f.Add([]byte(`{"a":1}`), "rate-limiting-advanced", "rate-limit-exceeded")
	f.Add([]byte(`{"source":"x","event":"y","data":{},"time":"2026-11-27T08:00:00Z"}`), "", "")
	f.Add([]byte(`{"sourc\u0065":"x","event":"y\n","data":{"n":-1.5e3,"s":"\u00e9\"","a":[true,null]}}`), "", "")
	f.Fuzz(func(t *testing.T, value []byte, ceSource, ceType string) {
		var hs []kgo.RecordHeader
		if ceSource != "" {
			hs = append(hs, kgo.RecordHeader{Key: HeaderCESource, Value: []byte(ceSource)})
		}
		if ceType != "" {
			hs = append(hs, kgo.RecordHeader{Key: HeaderCEType, Value: []byte(ceType)})
		}
		checkDecode(t, value, hs)
	})
}
