package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// SchemaError is a Kong "schema violation": field paths mapped to what is wrong with them.
type SchemaError struct {
	// Fields maps a dotted field path ("config.url") to its message.
	Fields map[string]string
}

// ErrSchema is what every SchemaError matches with errors.Is.
var ErrSchema = errors.New("schema violation")

func (e *SchemaError) add(path, msg string) {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	if _, ok := e.Fields[path]; !ok {
		e.Fields[path] = msg
	}
}

func (e *SchemaError) orNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Is makes errors.Is(err, ErrSchema) true.
func (e *SchemaError) Is(target error) bool { return target == ErrSchema }

// Error renders Kong's message: "schema violation (config.url: required field missing)".
func (e *SchemaError) Error() string {
	paths := make([]string, 0, len(e.Fields))
	for p := range e.Fields {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	parts := make([]string, len(paths))
	for i, p := range paths {
		parts[i] = p + ": " + e.Fields[p]
	}
	head := "schema violation"
	if len(paths) > 1 {
		head = fmt.Sprintf("%d schema violations", len(paths))
	}
	return head + " (" + strings.Join(parts, "; ") + ")"
}

// NestedFields returns Fields as Kong nests them: {"config": {"url": "…"}}.
func (e *SchemaError) NestedFields() map[string]any {
	out := map[string]any{}
	for path, msg := range e.Fields {
		parts := strings.Split(path, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = msg
	}
	return out
}

// ParseHook decodes a request body into a Hook. Unknown fields and wrong types are schema
// violations naming the field; the result still needs Validate.
func ParseHook(body []byte) (*Hook, error) {
	var h Hook
	if err := decodeStrict(body, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// decodeStrict unmarshals JSON rejecting unknown fields, turning decoder errors into
// schema violations where they name a field.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &SchemaError{Fields: map[string]string{"@entity": "request body is empty"}}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			return &SchemaError{Fields: map[string]string{"@entity": "cannot parse JSON body: data after the JSON object"}}
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return &SchemaError{Fields: map[string]string{"@entity": "expected a record"}}
		}
		return &SchemaError{Fields: map[string]string{jsonPath(te.Field): "expected " + kongType(te.Type.Kind().String())}}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &SchemaError{Fields: map[string]string{strings.Trim(name, `"`): "unknown field"}}
	}
	return &SchemaError{Fields: map[string]string{"@entity": "cannot parse JSON body: " + err.Error()}}
}

// jsonPath is a decoder error's field path without the Go names of embedded structs
// ("Pipelining.pipeline" is config's "pipeline"): every JSON name of a hook is lower
// case, and a map's keys are not in the path.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	out := parts[:0]
	for _, p := range parts {
		if p == "" || p[0] < 'A' || p[0] > 'Z' {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

func kongType(kind string) string {
	switch kind {
	case "int", "int64", "int32":
		return "an integer"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "map", "struct":
		return "a record"
	case "slice":
		return "an array"
	}
	return kind
}

// Validate checks a hook as given by a client, fills defaults (Kong's config defaults and
// the extensions') and normalises its config. cat may be nil to skip the source check.
func Validate(h *Hook, cat *Catalogue, now time.Time) error {
	e := &SchemaError{}
	if h.Source == "" {
		e.add("source", "required field missing")
	}
	if h.Event != nil && *h.Event == "" {
		h.Event = nil
	}
	if h.Snooze != nil && (*h.Snooze < 0 || *h.Snooze > MaxSnoozeSeconds) {
		e.add("snooze", fmt.Sprintf("value should be between 0 and %d (365 days)", MaxSnoozeSeconds))
	}
	if h.CreatedAt < 0 || h.CreatedAt > MaxCreatedAt {
		e.add("created_at", fmt.Sprintf("value should be between 0 and %d", MaxCreatedAt))
	}
	switch h.Ordering {
	case "", OrderingKey, OrderingNone:
	default:
		e.add("ordering", `expected one of: key, none`)
	}
	switch h.SnoozeScope {
	case "", ScopeKey, ScopeHook:
	default:
		e.add("snooze_scope", `expected one of: key, hook`)
	}
	if h.TimeoutMs < 0 || h.TimeoutMs > MaxTimeoutMs {
		e.add("timeout_ms", fmt.Sprintf("value should be between 1 and %d (0 or unset: %d): a rebalance waits for "+
			"in-flight deliveries and must end within the consumer group's 60 s rebalance timeout", MaxTimeoutMs, DefaultTimeoutMs))
	}
	validateRetry(h.Retry, e)
	validateRateLimit(h, e)
	if h.Source != "" && cat != nil {
		if field, msg := cat.check(h.Source, h.EventName()); msg != "" {
			e.add(field, msg)
		}
	}
	validateConfig(h, e)
	checkSecret(h, e)
	if err := e.orNil(); err != nil {
		return err
	}
	h.applyDefaults(now)
	syncSecrets(h, now)
	return nil
}

// validateRetry checks the retry policy; 0 in a field means its default. An unset
// backoff field defers to the other one (see Retry), so only an initial_backoff_ms above
// an explicit max_backoff_ms contradicts itself; that error names max_backoff_ms.
func validateRetry(r *Retry, e *SchemaError) {
	if r == nil {
		return
	}
	checkBound(e, "retry.max_attempts", r.MaxAttempts, MaxRetryAttempts, DefaultMaxAttempts)
	backoffOK := true
	for _, f := range []struct {
		path string
		v    int64
		def  int64
	}{
		{"retry.initial_backoff_ms", r.InitialBackoffMs, DefaultInitialBackoffMs},
		{"retry.max_backoff_ms", r.MaxBackoffMs, DefaultMaxBackoffMs},
	} {
		if f.v < 0 || f.v > MaxBackoffMs {
			e.add(f.path, fmt.Sprintf("value should be between 1 and %d (24 h; 0 or unset: %d)", MaxBackoffMs, f.def))
			backoffOK = false
		}
	}
	if backoffOK && r.InitialBackoffMs > 0 && r.MaxBackoffMs > 0 && r.InitialBackoffMs > r.MaxBackoffMs {
		e.add("retry.max_backoff_ms", fmt.Sprintf("value should be at least retry.initial_backoff_ms (%d)", r.InitialBackoffMs))
	}
}

// Bounds of the rate limit fields.
const (
	MaxRatePerSecond = 1_000_000
	MaxInFlight      = 100_000
)

// validateRateLimit checks rate_limit, max_in_flight and auto_disable_after.
func validateRateLimit(h *Hook, e *SchemaError) {
	if r := h.RateLimit; r != nil {
		if !(r.PerSecond > 0 && r.PerSecond <= MaxRatePerSecond) { // NaN fails too
			e.add("rate_limit.per_second", fmt.Sprintf("value should be above 0 and at most %d", MaxRatePerSecond))
		}
		if r.Burst < 0 || r.Burst > MaxRatePerSecond {
			e.add("rate_limit.burst", fmt.Sprintf("value should be between 1 and %d (0 or unset: per_second rounded up)", MaxRatePerSecond))
		}
	}
	if h.MaxInFlight < 0 || h.MaxInFlight > MaxInFlight {
		e.add("max_in_flight", fmt.Sprintf("value should be between 1 and %d (0 or unset: no cap)", MaxInFlight))
	}
	if h.AutoDisableAfter < 0 || h.AutoDisableAfter > MaxAutoDisableAfter {
		e.add("auto_disable_after", fmt.Sprintf("value should be between 1 and %d seconds (0 or unset: never)", MaxAutoDisableAfter))
	}
}

// MaxAutoDisableAfter bounds auto_disable_after: 365 days.
const MaxAutoDisableAfter = 365 * 24 * 3600

// validateConfig checks config against the handler's schema and rewrites it in its
// normalised form (every field present, Kong's defaults filled).
func validateConfig(h *Hook, e *SchemaError) {
	var cfg any
	switch h.Handler {
	case "":
		e.add("handler", "required field missing")
		return
	case HandlerWebhook:
		c := &WebhookConfig{}
		if decodeConfig(h.Config, c, e) {
			checkURL(c.URL, e)
			checkPipelining(c.Pipelining, e)
			if c.Headers == nil {
				c.Headers = map[string]string{}
			}
		}
		cfg = c
	case HandlerWebhookCustom:
		c := &WebhookCustomConfig{}
		if decodeConfig(h.Config, c, e) {
			checkURL(c.URL, e)
			checkMethod(c.Method, e)
			checkPipelining(c.Pipelining, e)
			fillCustomDefaults(c)
		}
		cfg = c
	case HandlerLog:
		c := &LogConfig{}
		decodeConfig(h.Config, c, e)
		cfg = c
	case HandlerLambda:
		c := &LambdaConfig{}
		if decodeConfig(h.Config, c, e) && len(c.Functions) == 0 {
			e.add("config.functions", "required field missing")
		}
		for i, f := range c.Functions {
			if strings.TrimSpace(f) == "" {
				e.add(fmt.Sprintf("config.functions.%d", i+1), "length must be at least 1")
			}
		}
		cfg = c
	default:
		e.add("handler", "unknown type: "+h.Handler)
		return
	}
	if len(e.Fields) == 0 {
		h.Config, _ = json.Marshal(cfg)
	}
}

// decodeConfig decodes raw into c, reporting errors under "config.". It reports whether the
// config decoded.
func decodeConfig(raw json.RawMessage, c any, e *SchemaError) bool {
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	err := decodeStrict(raw, c)
	if err == nil {
		return true
	}
	var se *SchemaError
	if errors.As(err, &se) {
		for p, m := range se.Fields {
			if p == "@entity" {
				p, m = "", "expected a record"
			}
			e.add(strings.TrimSuffix("config."+p, "."), m)
		}
	}
	return false
}

func checkURL(raw string, e *SchemaError) {
	if raw == "" {
		e.add("config.url", "required field missing")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		e.add("config.url", "not a valid url: "+err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		e.add("config.url", "scheme must be http or https")
	case u.Host == "":
		e.add("config.url", "missing host in url")
	}
}

// checkPipelining bounds config.pipeline_max_conns and config.pipeline_max_pending: every
// connection is a pair of goroutines and every pending request a slot held in memory.
func checkPipelining(p Pipelining, e *SchemaError) {
	checkBound(e, "config.pipeline_max_conns", p.PipelineMaxConns, MaxPipelineConns, DefaultPipelineMaxConns)
	checkBound(e, "config.pipeline_max_pending", p.PipelineMaxPending, MaxPipelinePending, DefaultPipelineMaxPending)
}

// checkBound adds a violation of path unless v is 0 (the default, def) or 1..maximum.
func checkBound(e *SchemaError, path string, v, maximum, def int) {
	if v < 0 || v > maximum {
		e.add(path, fmt.Sprintf("value should be between 1 and %d (0 or unset: %d)", maximum, def))
	}
}

func checkMethod(m string, e *SchemaError) {
	switch strings.ToUpper(m) {
	case "":
		e.add("config.method", "required field missing")
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
	default:
		e.add("config.method", "expected one of: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
	}
}

// Merge applies a PATCH body to a copy of h: top-level fields replace, config merges key by
// key (Kong merges nested records). The result still needs Validate.
func Merge(h *Hook, patch []byte) (*Hook, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil {
		return nil, &SchemaError{Fields: map[string]string{"@entity": "cannot parse JSON body: " + err.Error()}}
	}
	base, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("cannot encode hook %s: %w", h.ID, err)
	}
	var merged map[string]json.RawMessage
	if err := json.Unmarshal(base, &merged); err != nil {
		return nil, fmt.Errorf("cannot decode hook %s: %w", h.ID, err)
	}
	for k, v := range fields {
		if k == "config" && string(v) != "null" {
			v = mergeObjects(merged["config"], v)
		}
		merged[k] = v
	}
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("cannot encode patched hook %s: %w", h.ID, err)
	}
	nh, err := ParseHook(out)
	if err != nil {
		return nil, err
	}
	nh.ID, nh.CreatedAt = h.ID, h.CreatedAt
	if nh.Handler != h.Handler && string(fields["config"]) == "" {
		// A handler change with no config starts from the new handler's defaults.
		nh.Config = nil
	}
	return nh, nil
}

func mergeObjects(base, patch json.RawMessage) json.RawMessage {
	var b, p map[string]json.RawMessage
	if json.Unmarshal(base, &b) != nil || json.Unmarshal(patch, &p) != nil {
		return patch
	}
	for k, v := range p {
		b[k] = v
	}
	out, err := json.Marshal(b)
	if err != nil {
		return patch
	}
	return out
}
