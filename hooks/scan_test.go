package hooks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
)

// referenceValid is what the scanner must accept: encoding/json's JSON, within the
// nesting fastjson parses.
func referenceValid(b []byte) bool {
	if !json.Valid(b) {
		return false
	}
	var p fastjson.Parser
	_, err := p.ParseBytes(b)
	return err == nil
}

func TestScannerAcceptsWhatEncodingJSONDoes(t *testing.T) {
	inputs := []string{
		`{}`, `[]`, `""`, `0`, `-0`, `-0.0e-0`, `1E5`, `1e+5`, `12.50`, `true`, `false`, `null`,
		" \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
		`-`, `01`, `1.`, `.5`, `1e`, `1e+`, `+1`, `0x10`, `NaN`, `Infinity`, `-Infinity`, `1-2`,
		`tru`, `nul`, `truex`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{,}`, `[,1]`, `{1:2}`,
		`"\u00e9\n\"\\\/\b\f\r\t"`, `"\u12"`, `"\uZZZZ"`, `"\x"`, `"\'"`, "\"a\x01\"", "\"\x1f\"",
		"\"\x7f\"", `"é"`, "\"\xff\"", `"abcdefghijklmnopqrstuvwxyz"`, "\"abcdefgh\tijk\"",
		`"abcdefgh\"ijklmnop"`, `"unterminated`, `"abcdefghijklmnop`, `{"a":1}{}`, `1 2`, ``, ` `,
		"{\"a\":1}\x00", strings.Repeat("[", 299) + strings.Repeat("]", 299),
		strings.Repeat("[", 300) + strings.Repeat("]", 300),
		strings.Repeat("[", 299) + "1" + strings.Repeat("]", 299),
		strings.Repeat("[", 301) + strings.Repeat("]", 301),
	}
	for _, in := range inputs {
		var s jsonScanner
		_, got := s.scanValue([]byte(in))
		if want := referenceValid([]byte(in)); got != want {
			t.Errorf("scan(%.40q) = %v, want %v", in, got, want)
		}
	}
}

func TestDataMembers(t *testing.T) {
	tests := []struct {
		name, value string
		headers     []kgo.RecordHeader
		members     string // "-": not flat
	}{
		{name: "compact", value: `{"source":"s","event":"e","data":{"a":1,"b":[true,{"c":"\"x\""}]}}`, members: `"a":1,"b":[true,{"c":"\"x\""}]`},
		{name: "empty", value: `{"source":"s","event":"e","data":{}}`, members: ``},
		{name: "data first", value: `{"data":{"n":1},"source":"s","event":"e"}`, members: `"n":1`},
		{name: "spaces elsewhere", value: `{ "source": "s", "event": "e", "data": {"n":1} }`, members: `"n":1`},
		{name: "non-ASCII", value: `{"source":"s","event":"e","data":{"name":"Zoë"}}`, members: `"name":"Zoë"`},
		{name: "nested source", value: `{"source":"s","event":"e","data":{"x":{"source":1}}}`, members: `"x":{"source":1}`},
		{name: "spaced data", value: `{"source":"s","event":"e","data":{"n": 1}}`, members: "-"},
		{name: "data source", value: `{"source":"s","event":"e","data":{"source":"spoofed"}}`, members: "-"},
		{name: "data event", value: `{"source":"s","event":"e","data":{"a":1,"event":"x"}}`, members: "-"},
		{name: "escaped key", value: `{"source":"s","event":"e","data":{"sourc\u0065":1}}`, members: "-"},
		{name: "invalid UTF-8", value: "{\"source\":\"s\",\"event\":\"e\",\"data\":{\"a\":\"\xff\"}}", members: "-"},
		{name: "escaped name", value: `{"source":"s\u0031","event":"e","data":{"n":1}}`, members: "-"},
		{name: "cloudevents", value: `{"n":1}`, headers: hdrs(HeaderCESource, "s", HeaderCEType, "e"), members: `"n":1`},
		{name: "cloudevents spaced", value: ` {"n":1} `, headers: hdrs(HeaderCESource, "s", HeaderCEType, "e"), members: `"n":1`},
		{name: "cloudevents source", value: `{"source":1}`, headers: hdrs(HeaderCESource, "s", HeaderCEType, "e"), members: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			var ev Event
			if err := d.Decode(&kgo.Record{Value: []byte(tt.value), Headers: tt.headers}, &ev); err != nil {
				t.Fatal(err)
			}
			got, ok := ev.DataMembers()
			if tt.members == "-" {
				if ok {
					t.Fatalf("DataMembers = %s, want none", got)
				}
				return
			}
			if !ok || string(got) != tt.members {
				t.Fatalf("DataMembers = %s, %v; want %s", got, ok, tt.members)
			}
		})
	}
}

// referenceDecode is the decoder this package had before its scanner: encoding/json's
// validity, then fastjson's tree for every member.
func referenceDecode(r *kgo.Record) (source, event, id string, at time.Time, data string, err error) {
	h := scanHeaders(r)
	at = r.Timestamp
	if !referenceValid(r.Value) {
		if h.cloudEvent() && (len(h.ceSource) == 0 || len(h.ceType) == 0) {
			return "", "", "", at, "", map[bool]error{true: ErrMissingSource, false: ErrMissingEvent}[len(h.ceSource) == 0]
		}
		return "", "", "", at, "", ErrNotJSON
	}
	v := fastjson.MustParseBytes(r.Value)
	parseTime := func(t []byte) error {
		if len(t) > 0 {
			var perr error
			if at, perr = time.Parse(time.RFC3339Nano, string(t)); perr != nil {
				return ErrBadTime
			}
		}
		return nil
	}
	if h.cloudEvent() {
		switch {
		case len(h.ceSource) == 0:
			return "", "", "", at, "", ErrMissingSource
		case len(h.ceType) == 0:
			return "", "", "", at, "", ErrMissingEvent
		case v.Type() != fastjson.TypeObject:
			return "", "", "", at, "", ErrMissingData
		}
		return string(h.ceSource), string(h.ceType), string(h.ceID), at, v.String(), parseTime(h.ceT)
	}
	// Keys unescaped before any Get: the first member of a name counts however its key is
	// spelled. (Get matches keys as they are until one lookup misses, then unescapes
	// them: without this, which duplicate it finds depends on the lookups before.) Not
	// for a CloudEvent, whose value is the data: String would write its keys unescaped,
	// a control character raw.
	v.GetObject().Visit(func([]byte, *fastjson.Value) {})
	switch d := v.Get("data"); {
	case v.Type() != fastjson.TypeObject:
		err = ErrNotObject
	case len(v.GetStringBytes("source")) == 0:
		err = ErrMissingSource
	case len(v.GetStringBytes("event")) == 0:
		err = ErrMissingEvent
	case d == nil || d.Type() != fastjson.TypeObject:
		err = ErrMissingData
	default:
		source, event, id, data = string(v.GetStringBytes("source")), string(v.GetStringBytes("event")), string(v.GetStringBytes("id")), d.String()
		err = parseTime(v.GetStringBytes("time"))
	}
	return source, event, id, at, data, err
}

// checkDecode decodes value and compares with referenceDecode; an event whose data
// members are offered must make a JSON object of them without "source" or "event".
func checkDecode(t *testing.T, value []byte, hs []kgo.RecordHeader) {
	t.Helper()
	r := &kgo.Record{Value: value, Headers: hs, Timestamp: time.Unix(1, 0)}
	var d Decoder
	var ev Event
	err := d.Decode(r, &ev)
	if DecodeErrorKind(err) == "other" && err != nil {
		t.Fatalf("unclassified error %v", err)
	}
	source, event, id, at, data, want := referenceDecode(r)
	if errors.Is(err, ErrHeaderMismatch) {
		return // the reference does not read eh-* headers
	}
	if !errors.Is(err, want) {
		t.Fatalf("Decode(%q) error %v, reference %v", value, err, want)
	}
	if err != nil {
		return
	}
	if ev.Source != source || ev.Event != event || string(ev.ID) != id || !ev.Time.Equal(at) {
		t.Fatalf("Decode(%q) = %q %q %q %v, reference %q %q %q %v", value, ev.Source, ev.Event, ev.ID, ev.Time, source, event, id, at)
	}
	if got := ev.Data().String(); got != data {
		t.Fatalf("Decode(%q) data %s, reference %s", value, got, data)
	}
	if members, ok := ev.DataMembers(); ok {
		obj, err := fastjson.ParseBytes(append(append([]byte{'{'}, members...), '}'))
		if err != nil || !json.Valid(obj.MarshalTo(nil)) || obj.Get("source") != nil || obj.Get("event") != nil {
			t.Fatalf("Decode(%q) offers members %s", value, members)
		}
	}
}

// TestDecodeEscapedDuplicateKeys: with an escaped top-level key the first member of a
// name counts however its key is spelled, whichever names are looked up before it.
func TestDecodeEscapedDuplicateKeys(t *testing.T) {
	for _, tt := range []struct{ value, source, data string }{
		{`{"sourc\u0065":"t","source":"s","event":"e","data":{}}`, "t", `{}`},
		{`{"d\u0061ta":{"x":2},"source":"s","event":"e","data":{"x":1}}`, "s", `{"x":2}`},
		{`{"d\u0061ta":{"x":2},"source":"s","event":"e","data":{"x":1},"id":"i","time":"2026-11-27T08:00:00Z"}`, "s", `{"x":2}`},
		{`{"data":{"x":1},"d\u0061ta":{"x":2},"source":"s","ev\u0065nt":"e"}`, "s", `{"x":1}`},
	} {
		var d Decoder
		var ev Event
		if err := d.Decode(&kgo.Record{Value: []byte(tt.value)}, &ev); err != nil {
			t.Fatalf("%s: %v", tt.value, err)
		}
		if ev.Source != tt.source || ev.Data().String() != tt.data {
			t.Errorf("%s: source %q data %s, want %q %s", tt.value, ev.Source, ev.Data(), tt.source, tt.data)
		}
	}
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, v := range []string{
		`{"source":"s","event":"e","data":{}}`,
		`{"source":"s","source":"t","event":"e","data":{}}`,
		`{"source":1,"source":"t","event":"e","data":{}}`,
		`{"source":"s\u0031","event":"e\/f","id":"\"q\"","data":{"a":"\u00e9"}}`,
		`{"sourc\u0065":"s","event":"e","data":{}}`,
		`{"sourc\u0065":"t","source":"s","event":"e","data":{}}`,
		`{"d\u0061ta":{"x":2},"source":"s","event":"e","data":{"x":1}}`,
		`{"data":{"x":1},"d\u0061ta":{"x":2},"source":"s","ev\u0065nt":"e"}`,
		`{"d\u0061ta":1,"source":"s","event":"e","data":{"x":1}}`,
		`{"source":"s","event":"e","data":{},"time":"2026-11-27T08:00:00\u002e5Z"}`,
		`{"source":"s","event":"e","data":{},"time":"2026-11-27T08:00:00.5Z"}`,
		`{"source":"s","event":"e","data":{},"time":7}`,
		`{"source":"s","event":"e","data":{},"id":7}`,
		`{"source":"","event":"e","data":{}}`,
		`{"source":"s","event":"e","data":null}`,
		`{"source":"s","event":"e","data":[],"data":{}}`,
		`{"source":"s","event":"e","data":{"n":1e400,"m":-0}}`,
		`[{"source":"s"}]`, `"x"`, `{"source":"s","event":"e","data":{}} x`,
		`{"source":"s","event":"e","data":` + strings.Repeat("[", 298) + strings.Repeat("]", 298) + `}`,
		`{"source":"s","event":"e","data":{"a":` + strings.Repeat("[", 297) + strings.Repeat("]", 297) + `}}`,
		`{"source":"s","event":"e","data":{"a":` + strings.Repeat("[", 298) + strings.Repeat("]", 298) + `}}`,
	} {
		checkDecode(t, []byte(v), nil)
	}
	checkDecode(t, []byte(`{"n":1}`), hdrs(HeaderCESource, "s", HeaderCEType, "e", HeaderCEID, "i", HeaderCETime, "2026-11-27T08:00:00Z"))
	checkDecode(t, []byte(`[1]`), hdrs(HeaderCESource, "s", HeaderCEType, "e"))
	checkDecode(t, []byte(`{`), hdrs(HeaderCESource, "s", HeaderCEType, "e"))
}
