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
		{name: "negative snooze", body: `{"source":"crud","handler":"log","snooze":-1}`, fields: map[string]string{"snooze": "value should be between 0 and 31536000 (365 days)"}},
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

// TestValidateBoundsNumericFields: every numeric field of the entity is bounded, so no
// stored value can overflow a time.Duration (max_backoff_ms 2^63-1 used to panic the
// processor at the first retry) or outlast the consumer group's rebalance timeout.
func TestValidateBoundsNumericFields(t *testing.T) {
	const base = `{"source":"crud","handler":"log"`
	type want struct {
		attempts         int
		initial, maxWait int64
		timeout          int64
	}
	tests := []struct {
		name   string
		extra  string
		fields map[string]string // nil: valid
		want   *want             // when valid and set: the values after defaults
	}{
		{name: "defaults", extra: ``, want: &want{10, 500, 60_000, 10_000}},
		{name: "upper bounds", extra: `,"timeout_ms":30000,"snooze":31536000,"retry":{"max_attempts":100,"initial_backoff_ms":86400000,"max_backoff_ms":86400000}`,
			want: &want{100, 86_400_000, 86_400_000, 30_000}},
		{name: "lower bounds", extra: `,"timeout_ms":1,"snooze":0,"retry":{"max_attempts":1,"initial_backoff_ms":1,"max_backoff_ms":1}`,
			want: &want{1, 1, 1, 1}},
		{name: "max below the default initial lowers it", extra: `,"retry":{"max_backoff_ms":100}`, want: &want{10, 100, 100, 10_000}},
		{name: "initial above the default max raises it", extra: `,"retry":{"initial_backoff_ms":120000}`, want: &want{10, 120_000, 120_000, 10_000}},

		{name: "max_backoff_ms int64 max", extra: `,"retry":{"max_backoff_ms":9223372036854775807}`,
			fields: map[string]string{"retry.max_backoff_ms": "value should be between 1 and 86400000 (24 h; 0 or unset: 60000)"}},
		{name: "initial_backoff_ms int64 max", extra: `,"retry":{"initial_backoff_ms":9223372036854775807}`,
			fields: map[string]string{"retry.initial_backoff_ms": "value should be between 1 and 86400000 (24 h; 0 or unset: 500)"}},
		{name: "max_backoff_ms over 24 h", extra: `,"retry":{"max_backoff_ms":86400001}`,
			fields: map[string]string{"retry.max_backoff_ms": "value should be between 1 and 86400000 (24 h; 0 or unset: 60000)"}},
		{name: "negative initial_backoff_ms", extra: `,"retry":{"initial_backoff_ms":-1}`,
			fields: map[string]string{"retry.initial_backoff_ms": "value should be between 1 and 86400000 (24 h; 0 or unset: 500)"}},
		{name: "initial above max", extra: `,"retry":{"initial_backoff_ms":5000,"max_backoff_ms":1000}`,
			fields: map[string]string{"retry.max_backoff_ms": "value should be at least retry.initial_backoff_ms (5000)"}},
		{name: "max_attempts over 100", extra: `,"retry":{"max_attempts":101}`,
			fields: map[string]string{"retry.max_attempts": "value should be between 1 and 100 (0 or unset: 10)"}},
		{name: "negative max_attempts", extra: `,"retry":{"max_attempts":-1}`,
			fields: map[string]string{"retry.max_attempts": "value should be between 1 and 100 (0 or unset: 10)"}},
		{name: "max_attempts beyond int64", extra: `,"retry":{"max_attempts":1e30}`,
			fields: map[string]string{"retry.max_attempts": "expected an integer"}},
		{name: "timeout_ms over 30 s", extra: `,"timeout_ms":30001`,
			fields: map[string]string{"timeout_ms": "value should be between 1 and 30000 (0 or unset: 10000): a rebalance waits for in-flight deliveries and must end within the consumer group's 60 s rebalance timeout"}},
		{name: "timeout_ms the old 600000", extra: `,"timeout_ms":600000`,
			fields: map[string]string{"timeout_ms": "value should be between 1 and 30000 (0 or unset: 10000): a rebalance waits for in-flight deliveries and must end within the consumer group's 60 s rebalance timeout"}},
		{name: "negative timeout_ms", extra: `,"timeout_ms":-5`,
			fields: map[string]string{"timeout_ms": "value should be between 1 and 30000 (0 or unset: 10000): a rebalance waits for in-flight deliveries and must end within the consumer group's 60 s rebalance timeout"}},
		{name: "rate limit and max in flight", extra: `,"rate_limit":{"per_second":0.5,"burst":3},"max_in_flight":4`, want: &want{10, 500, 60_000, 10_000}},
		{name: "rate limit of 0", extra: `,"rate_limit":{"per_second":0}`,
			fields: map[string]string{"rate_limit.per_second": "value should be above 0 and at most 1000000"}},
		{name: "rate limit too high", extra: `,"rate_limit":{"per_second":1e7,"burst":-1}`,
			fields: map[string]string{"rate_limit.per_second": "value should be above 0 and at most 1000000",
				"rate_limit.burst": "value should be between 1 and 1000000 (0 or unset: per_second rounded up)"}},
		{name: "auto_disable_after over a year", extra: `,"auto_disable_after":31536001`,
			fields: map[string]string{"auto_disable_after": "value should be between 1 and 31536000 seconds (0 or unset: never)"}},
		{name: "negative max_in_flight", extra: `,"max_in_flight":-1`,
			fields: map[string]string{"max_in_flight": "value should be between 1 and 100000 (0 or unset: no cap)"}},
		{name: "snooze over a year", extra: `,"snooze":31536001`,
			fields: map[string]string{"snooze": "value should be between 0 and 31536000 (365 days)"}},
		{name: "snooze int64 max", extra: `,"snooze":9223372036854775807`,
			fields: map[string]string{"snooze": "value should be between 0 and 31536000 (365 days)"}},
		{name: "negative created_at", extra: `,"created_at":-1`,
			fields: map[string]string{"created_at": "value should be between 0 and 253402300799"}},
		{name: "created_at after 9999", extra: `,"created_at":253402300800`,
			fields: map[string]string{"created_at": "value should be between 0 and 253402300799"}},
		{name: "exponent is not an integer", extra: `,"timeout_ms":1e6,"retry":{"max_attempts":1000,"max_backoff_ms":-1}`,
			fields: map[string]string{"timeout_ms": "expected an integer"}},
		{name: "several schema violations", extra: `,"timeout_ms":1000000,"retry":{"max_attempts":1000,"max_backoff_ms":-1}`,
			fields: map[string]string{
				"timeout_ms":           "value should be between 1 and 30000 (0 or unset: 10000): a rebalance waits for in-flight deliveries and must end within the consumer group's 60 s rebalance timeout",
				"retry.max_attempts":   "value should be between 1 and 100 (0 or unset: 10)",
				"retry.max_backoff_ms": "value should be between 1 and 86400000 (24 h; 0 or unset: 60000)",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHook([]byte(base + tt.extra + `}`))
			if err == nil {
				err = Validate(h, nil, now)
			}
			if tt.fields != nil {
				var se *SchemaError
				if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
					t.Fatalf("err = %v, want schema violation", err)
				}
				if !reflect.DeepEqual(se.Fields, tt.fields) {
					t.Fatalf("fields = %v, want %v", se.Fields, tt.fields)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got := want{h.Retry.MaxAttempts, h.Retry.InitialBackoffMs, h.Retry.MaxBackoffMs, h.TimeoutMs}
			if tt.want != nil && got != *tt.want {
				t.Fatalf("after defaults %+v, want %+v", got, *tt.want)
			}
			assertWithinBounds(t, h)
		})
	}
}

// assertWithinBounds checks what the processor relies on: every duration fits a
// time.Duration with room to double, and initial ≤ max.
func assertWithinBounds(t *testing.T, h *Hook) {
	t.Helper()
	r := h.Retry
	if r == nil {
		r = &Retry{}
	}
	if r.MaxAttempts < 0 || r.MaxAttempts > MaxRetryAttempts ||
		r.InitialBackoffMs < 0 || r.InitialBackoffMs > MaxBackoffMs ||
		r.MaxBackoffMs < 0 || r.MaxBackoffMs > MaxBackoffMs ||
		(r.MaxBackoffMs > 0 && r.InitialBackoffMs > r.MaxBackoffMs) ||
		h.TimeoutMs < 0 || h.TimeoutMs > MaxTimeoutMs ||
		h.SnoozeSeconds() < 0 || h.SnoozeSeconds() > MaxSnoozeSeconds {
		t.Fatalf("out of bounds: timeout_ms %d snooze %d retry %+v", h.TimeoutMs, h.SnoozeSeconds(), *r)
	}
	for _, d := range []time.Duration{
		time.Duration(r.MaxBackoffMs) * time.Millisecond, time.Duration(r.InitialBackoffMs) * time.Millisecond,
		h.Timeout(), time.Duration(h.SnoozeSeconds()) * time.Second,
	} {
		if d < 0 || 2*d < d {
			t.Fatalf("duration %d overflows", d)
		}
	}
}

// TestClampStoredHooks: a hook an older version stored with values out of today's
// bounds is brought within them when read, and a hook within bounds is untouched.
func TestClampStoredHooks(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	tests := []struct {
		name    string
		in      Hook
		want    Hook
		changed []string
	}{
		{name: "within bounds",
			in:   Hook{TimeoutMs: 10_000, Snooze: i64(60), Retry: &Retry{MaxAttempts: 10, InitialBackoffMs: 500, MaxBackoffMs: 60_000}},
			want: Hook{TimeoutMs: 10_000, Snooze: i64(60), Retry: &Retry{MaxAttempts: 10, InitialBackoffMs: 500, MaxBackoffMs: 60_000}}},
		{name: "nil retry and snooze", in: Hook{TimeoutMs: 1}, want: Hook{TimeoutMs: 1}},
		{name: "int64 max everywhere",
			in:      Hook{TimeoutMs: 1<<63 - 1, Snooze: i64(1<<63 - 1), Retry: &Retry{MaxAttempts: 1 << 40, InitialBackoffMs: 1<<63 - 1, MaxBackoffMs: 1<<63 - 1}},
			want:    Hook{TimeoutMs: MaxTimeoutMs, Snooze: i64(MaxSnoozeSeconds), Retry: &Retry{MaxAttempts: MaxRetryAttempts, InitialBackoffMs: MaxBackoffMs, MaxBackoffMs: MaxBackoffMs}},
			changed: []string{"timeout_ms", "snooze", "retry.max_attempts", "retry.initial_backoff_ms", "retry.max_backoff_ms"}},
		{name: "negative values fall back to defaults",
			in:      Hook{TimeoutMs: -1, Snooze: i64(-1), Retry: &Retry{MaxAttempts: -3, InitialBackoffMs: -1, MaxBackoffMs: -1}},
			want:    Hook{TimeoutMs: 0, Snooze: i64(0), Retry: &Retry{}},
			changed: []string{"timeout_ms", "snooze", "retry.max_attempts", "retry.initial_backoff_ms", "retry.max_backoff_ms"}},
		{name: "old 10 min timeout, initial above max",
			in:      Hook{TimeoutMs: 600_000, Retry: &Retry{MaxAttempts: 10, InitialBackoffMs: 9000, MaxBackoffMs: 1000}},
			want:    Hook{TimeoutMs: MaxTimeoutMs, Retry: &Retry{MaxAttempts: 10, InitialBackoffMs: 1000, MaxBackoffMs: 1000}},
			changed: []string{"timeout_ms", "retry.initial_backoff_ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			changed := h.Clamp()
			if !reflect.DeepEqual(changed, tt.changed) {
				t.Errorf("changed %q, want %q", changed, tt.changed)
			}
			if !reflect.DeepEqual(h, tt.want.Clone()) {
				t.Errorf("clamped to %+v (retry %+v), want %+v", h, h.Retry, tt.want)
			}
			assertWithinBounds(t, h)
		})
	}
}
