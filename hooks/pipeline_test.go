package hooks

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// TestValidatePipelining bounds config.pipeline, pipeline_max_conns and
// pipeline_max_pending for both HTTP handlers, and keeps a stored config free of them
// when unset.
func TestValidatePipelining(t *testing.T) {
	const (
		conns   = "value should be between 1 and 64 (0 or unset: 2)"
		pending = "value should be between 1 and 1024 (0 or unset: 128)"
	)
	for _, handler := range []string{HandlerWebhook, HandlerWebhookCustom} {
		for _, tt := range []struct {
			name   string
			config string
			fields map[string]string // nil: valid
			want   Pipelining        // when valid: as stored
		}{
			{name: "unset", config: ``},
			{name: "on, defaults", config: `,"pipeline":true`, want: Pipelining{Pipeline: true}},
			{name: "upper bounds", config: `,"pipeline":true,"pipeline_max_conns":64,"pipeline_max_pending":1024`,
				want: Pipelining{true, 64, 1024}},
			{name: "lower bounds", config: `,"pipeline":true,"pipeline_max_conns":1,"pipeline_max_pending":1`,
				want: Pipelining{true, 1, 1}},
			{name: "conns over 64", config: `,"pipeline":true,"pipeline_max_conns":65`,
				fields: map[string]string{"config.pipeline_max_conns": conns}},
			{name: "negative conns and pending", config: `,"pipeline_max_conns":-1,"pipeline_max_pending":-1`,
				fields: map[string]string{"config.pipeline_max_conns": conns, "config.pipeline_max_pending": pending}},
			{name: "pending over 1024", config: `,"pipeline":true,"pipeline_max_pending":1025`,
				fields: map[string]string{"config.pipeline_max_pending": pending}},
			{name: "pipeline not a boolean", config: `,"pipeline":"yes"`,
				fields: map[string]string{"config.pipeline": "expected a boolean"}},
			{name: "conns not an integer", config: `,"pipeline_max_conns":1.5`,
				fields: map[string]string{"config.pipeline_max_conns": "expected an integer"}},
		} {
			t.Run(handler+"/"+tt.name, func(t *testing.T) {
				body := `{"source":"crud","handler":"` + handler + `","config":{"url":"https://example.com/hook","method":"POST"` + tt.config + `}}`
				if handler == HandlerWebhook {
					body = `{"source":"crud","handler":"` + handler + `","config":{"url":"https://example.com/hook"` + tt.config + `}}`
				}
				h, err := ParseHook([]byte(body))
				if err == nil {
					err = Validate(h, nil, now)
				}
				if tt.fields != nil {
					var se *SchemaError
					if !errors.As(err, &se) || !reflect.DeepEqual(se.Fields, tt.fields) {
						t.Fatalf("err = %v, want schema violations %v", err, tt.fields)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var stored WebhookCustomConfig // a superset of the webhook's
				var raw map[string]any
				if err := errors.Join(json.Unmarshal(h.Config, &stored), json.Unmarshal(h.Config, &raw)); err != nil {
					t.Fatal(err)
				}
				if stored.Pipelining != tt.want {
					t.Errorf("stored %s, want %+v", h.Config, tt.want)
				}
				if _, ok := raw["pipeline"]; ok != tt.want.Pipeline {
					t.Errorf("stored config %s: pipeline present %v, want %v", h.Config, ok, tt.want.Pipeline)
				}
			})
		}
	}
}

// TestPipeliningDefaults: unset limits take the defaults, set ones are kept.
func TestPipeliningDefaults(t *testing.T) {
	for _, tt := range []struct {
		p              Pipelining
		conns, pending int
	}{
		{Pipelining{Pipeline: true}, DefaultPipelineMaxConns, DefaultPipelineMaxPending},
		{Pipelining{true, 3, 7}, 3, 7},
	} {
		if c, p := tt.p.Conns(), tt.p.Pending(); c != tt.conns || p != tt.pending {
			t.Errorf("%+v: conns %d pending %d, want %d %d", tt.p, c, p, tt.conns, tt.pending)
		}
	}
}
