package hooks

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestObjectMember(t *testing.T) {
	tests := []struct {
		in, key, want string
	}{
		{`{"source":"x","data":{"a":[1,{"b":"}"}],"c":"\"{"}}`, "data", `{"a":[1,{"b":"}"}],"c":"\"{"}`},
		{` { "data" : {} , "x":1}`, "data", `{}`},
		{`{"n":-1.5e3,"t":true,"data":{"k":null}}`, "data", `{"k":null}`},
		{`{"data":{"first":1},"data":{"second":2}}`, "data", `{"first":1}`},
		{`{"source":"x"}`, "data", ``},
		{`{}`, "data", ``},
		{`{"d\u0061ta":{"a":1}}`, "data", ``},
	}
	for _, tt := range tests {
		if got := string(objectMember([]byte(tt.in), tt.key)); got != tt.want {
			t.Errorf("objectMember(%s, %q) = %q, want %q", tt.in, tt.key, got, tt.want)
		}
	}
}

// FuzzRawData: whenever RawData locates the data, it means the same JSON as the parsed
// Data.
func FuzzRawData(f *testing.F) {
	f.Add([]byte(`{"source":"crud","event":"consumers","data":{"entity":{"id":1,"s":"}\\"{"}}}`))
	f.Add([]byte(`{"data":{"a":[1,2,{"b":null}]},"source":"s","event":"e"}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		var d Decoder
		var ev Event
		if d.Decode(&kgo.Record{Value: value}, &ev) != nil {
			return
		}
		raw := ev.RawData()
		if raw == nil {
			return
		}
		var fromRaw, fromParsed any
		if err := json.Unmarshal(raw, &fromRaw); err != nil {
			t.Fatalf("RawData %q is not JSON: %v", raw, err)
		}
		if err := json.Unmarshal([]byte(ev.Data.String()), &fromParsed); err != nil {
			return // fastjson's String() does not always write JSON (see sinks/body.go)
		}
		if !reflect.DeepEqual(fromRaw, fromParsed) {
			t.Fatalf("RawData %s differs from Data %s", raw, ev.Data.String())
		}
	})
}
