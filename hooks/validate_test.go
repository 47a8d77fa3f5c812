package hooks

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

var now = time.Unix(1_700_000_000, 0)

func TestValidateKongBodies(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		fields map[string]string // nil: valid
		config string            // normalised config when valid
	}{
		{
			name:   "kong webhook",
			body:   `{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"https://example.com/hook"}}`,
			config: `{"url":"https://example.com/hook","headers":{},"secret":null,"ssl_verify":false}`,
		},
		{
			name:   "kong slack webhook-custom",
			body:   `{"source":"crud","event":"admins:create","handler":"webhook-custom","config":{"method":"POST","url":"https://hooks.slack.com/x","headers":{"content-type":"application/json"},"payload":{"text":"Admin {{ entity.username }}"}}}`,
			config: `{"url":"https://hooks.slack.com/x","method":"POST","headers":{"content-type":"application/json"},"headers_format":false,"payload":{"text":"Admin {{ entity.username }}"},"payload_format":true,"body":null,"body_format":true,"secret":null,"ssl_verify":false}`,
		},
		{name: "log", body: `{"source":"dao:crud","event":"create","handler":"log"}`, config: `{}`},
		{name: "lambda", body: `{"source":"balancer","handler":"lambda","config":{"functions":["(d) => d"]}}`, config: `{"functions":["(d) => d"],"secret":null}`},
		{name: "missing url", body: `{"source":"crud","handler":"webhook","config":{}}`, fields: map[string]string{"config.url": "required field missing"}},
		{name: "missing source and handler", body: `{"config":{}}`, fields: map[string]string{"source": "required field missing", "handler": "required field missing"}},
		{name: "unknown handler", body: `{"source":"crud","handler":"foo"}`, fields: map[string]string{"handler": "unknown type: foo"}},
		{name: "unknown field", body: `{"source":"crud","handler":"log","colour":"red"}`, fields: map[string]string{"colour": "unknown field"}},
		{name: "unknown config field", body: `{"source":"crud","handler":"webhook","config":{"url":"http://x","verb":"GET"}}`, fields: map[string]string{"config.verb": "unknown field"}},
		{name: "snooze type", body: `{"source":"crud","handler":"log","snooze":"soon"}`, fields: map[string]string{"snooze": "expected an integer"}},
		{name: "negative snooze", body: `{"source":"crud","handler":"log","snooze":-1}`, fields: map[string]string{"snooze": "value should be between 0 and 9223372036854775807"}},
		{name: "bad scheme", body: `{"source":"crud","handler":"webhook","config":{"url":"ftp://x"}}`, fields: map[string]string{"config.url": "scheme must be http or https"}},
		{name: "custom without method", body: `{"source":"crud","handler":"webhook-custom","config":{"url":"http://x"}}`, fields: map[string]string{"config.method": "required field missing"}},
		{name: "lambda without functions", body: `{"source":"crud","handler":"lambda","config":{}}`, fields: map[string]string{"config.functions": "required field missing"}},
		{name: "unknown source", body: `{"source":"nope","handler":"log"}`, fields: map[string]string{"source": "unknown source 'nope': register it with PUT /event-hooks/sources/nope/{event} or produce one of its events first"}},
		{name: "unknown event", body: `{"source":"balancer","event":"wat","handler":"log"}`, fields: map[string]string{"event": "unknown event 'wat' of source 'balancer'"}},
		{name: "not an object", body: `[]`, fields: map[string]string{"@entity": "expected a record"}},
		{name: "trailing data", body: `{"source":"crud","handler":"log"} {}`, fields: map[string]string{"@entity": "cannot parse JSON body: data after the JSON object"}},
		{name: "ordering", body: `{"source":"crud","handler":"log","ordering":"chaos"}`, fields: map[string]string{"ordering": "expected one of: key, none"}},
	}
	cat := NewCatalogue()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHook([]byte(tt.body))
			if err == nil {
				err = Validate(h, cat, now)
			}
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				assertJSONEqual(t, h.Config, tt.config)
				if h.ID == "" || h.CreatedAt != now.Unix() || h.UpdatedAt != now.Unix() || !h.IsEnabled() {
					t.Errorf("server fields not set: %+v", h)
				}
				return
			}
			var se *SchemaError
			if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
				t.Fatalf("err = %v, want schema violation", err)
			}
			if !reflect.DeepEqual(se.Fields, tt.fields) {
				t.Fatalf("fields = %v, want %v", se.Fields, tt.fields)
			}
		})
	}
}

func TestSchemaErrorKongShape(t *testing.T) {
	e := &SchemaError{Fields: map[string]string{"config.url": "required field missing"}}
	if e.Error() != "schema violation (config.url: required field missing)" {
		t.Fatalf("message = %q", e.Error())
	}
	got, _ := json.Marshal(e.NestedFields())
	assertJSONEqual(t, got, `{"config":{"url":"required field missing"}}`)
	two := &SchemaError{Fields: map[string]string{"source": "required field missing", "handler": "required field missing"}}
	if two.Error() != "2 schema violations (handler: required field missing; source: required field missing)" {
		t.Fatalf("message = %q", two.Error())
	}
}

func TestMergeKeepsConfigAndIdentity(t *testing.T) {
	h, _ := ParseHook([]byte(`{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"https://a.example/x","headers":{"x":"1"}}}`))
	if err := Validate(h, nil, now); err != nil {
		t.Fatal(err)
	}
	p, err := Merge(h, []byte(`{"snooze":60,"config":{"url":"https://b.example/y"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(p, nil, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p.ID != h.ID || p.CreatedAt != h.CreatedAt || p.UpdatedAt != now.Add(time.Hour).Unix() || p.SnoozeSeconds() != 60 {
		t.Fatalf("identity/snooze lost: %+v", p)
	}
	assertJSONEqual(t, p.Config, `{"url":"https://b.example/y","headers":{"x":"1"},"secret":null,"ssl_verify":false}`)
}

func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON differs:\n got %s\nwant %s", got, want)
	}
}
