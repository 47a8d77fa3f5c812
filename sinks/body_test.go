package sinks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func FuzzWebhookBody(f *testing.F) {
	f.Add(consumerData, "crud", "consumers")
	f.Add(`{}`, "balancer", "health")
	f.Add(`{"source":"x","event":"y","source":"z"}`, "s", "e")
	f.Add(`{"a":[1,-2.5e-3,true,false,null,{"b":"\u00e9\ud83d\ude00"}],"c":"\"\\\/\b\f\n\r\t"}`, "ün\u2028", "\x00")
	f.Add("{\"k\":\"\x01\",\"n\":NaN,\"m\":-Inf,\"o\":1e,\"p\":01}", "\xff", "ev")
	f.Add(`{"lone":"\ud800","bad":"\x"}`, "s", "e")
	f.Fuzz(func(t *testing.T, data, source, event string) {
		var p fastjson.Parser
		v, err := p.Parse(data)
		if err != nil || v.Type() != fastjson.TypeObject {
			t.Skip()
		}
		body := appendWebhookBody(nil, source, event, v)
		if !json.Valid(body) {
			t.Fatalf("invalid JSON body %q for data %q", body, data)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		// encoding/json turns each invalid UTF-8 byte into U+FFFD, as []rune does.
		if m["source"] != string([]rune(source)) || m["event"] != string([]rune(event)) {
			t.Fatalf("source/event = %q/%q, want %q/%q", m["source"], m["event"], source, event)
		}
		// When data is strictly valid JSON, the other keys carry the same values. Except
		// for lone surrogate escapes ("\ud800"): fastjson's unescaping keeps them as text
		// where encoding/json decodes U+FFFD, and the body keeps fastjson's reading.
		if !json.Valid([]byte(data)) || hasSurrogateEscape(data) {
			return
		}
		want, ok := decodeNumbers(data)
		if !ok {
			return
		}
		got, ok := decodeNumbers(string(body))
		if !ok {
			t.Fatalf("body %s does not decode", body)
		}
		want["source"], want["event"] = got["source"], got["event"]
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("body %s\ndecodes to %#v\nwant       %#v", body, got, want)
		}
		// Decoded from a record, the body copies the data as it arrived where it can: it
		// must say what the body written from the parsed data says.
		if ev, err := decodeEvent(source, event, data); err == nil {
			tree := appendWebhookBody(nil, ev.Source, ev.Event, ev.Data())
			copied := appendEventBody(nil, ev)
			want, _ := decodeNumbers(string(tree))
			if got, ok := decodeNumbers(string(copied)); !ok || !reflect.DeepEqual(got, want) {
				t.Fatalf("body %s\nwritten from the parsed data: %s", copied, tree)
			}
		}
	})
}

// decodeNumbers decodes a JSON object keeping numbers as their text.
func decodeNumbers(s string) (map[string]any, bool) {
	var m map[string]any
	dec := json.NewDecoder(bytesReader(s))
	dec.UseNumber()
	return m, dec.Decode(&m) == nil
}

// hasSurrogateEscape reports whether s contains a \uD800-\uDFFF escape.
func hasSurrogateEscape(s string) bool {
	for i := 0; i+3 < len(s); i++ {
		if s[i] == '\\' && s[i+1] == 'u' && (s[i+2] == 'd' || s[i+2] == 'D') &&
			strings.ContainsRune("89abcdefABCDEF", rune(s[i+3])) {
			return true
		}
	}
	return false
}
