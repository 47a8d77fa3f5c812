package hooksfile

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

var now = time.Unix(1_790_000_000, 0)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func mustParse(t *testing.T, src string, vars map[string]string) *File {
	t.Helper()
	f, err := Parse([]byte(src), env(vars))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"not yaml", "hooks: [", "did not find expected"},
		{"top-level list", "- name: a", `"hooks" list`},
		{"unknown top-level key", "hook: []", `unknown key "hook"`},
		{"hooks not a list", "hooks: {name: a}", "must be a list"},
		{"no identity", "hooks:\n  - source: crud\n    handler: log", "needs a name"},
		{"unknown field", "hooks:\n  - name: a\n    source: crud\n    handler: log\n    colour: red", "colour: unknown field"},
		{"wrong type", "hooks:\n  - name: a\n    source: crud\n    handler: log\n    timeout_ms: soon", "timeout_ms: expected an integer"},
		{"server field", "hooks:\n  - name: a\n    source: crud\n    handler: log\n    created_at: 1", "created_at is kept by the server"},
		{"bad id", "hooks:\n  - id: nope\n    source: crud\n    handler: log", "id: expected a uuid"},
		{"duplicate name", "hooks:\n  - name: a\n    source: crud\n    handler: log\n  - name: a\n    source: crud\n    handler: log", "line 5 (hook a): name a is also the hook of line 2"},
		{"duplicate key in a hook", "hooks:\n  - name: a\n    name: b", "already defined"},
		{"unset variable", "hooks:\n  - name: a\n    source: crud\n    handler: webhook\n    config: {url: '${URL}'}", "environment variable URL is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), env(nil))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestParseExpandsVariablesInStringsOnly(t *testing.T) {
	src := `hooks:
  - name: crm
    source: crud
    handler: lambda
    config:
      secret: ${CRM_SECRET}
      functions:
        - "return (d) => ({url: ` + "`${d.url}/$${NOT_A_VAR}`" + `})"
`
	f := mustParse(t, src, map[string]string{"CRM_SECRET": `s"3:{x}`})
	h := f.Entries[0].Hook
	if got := configSecret(t, h); got != `s"3:{x}` {
		t.Errorf("secret = %q", got)
	}
	if !strings.Contains(string(h.Config), "`${d.url}/${NOT_A_VAR}`") {
		t.Errorf("a lowercase reference and an escaped one must be left as text: %s", h.Config)
	}
	if f.Entries[0].Key != "name:crm" || f.Entries[0].Line != 2 {
		t.Errorf("entry = %+v", f.Entries[0])
	}
}

// configSecret returns config.secret of h.
func configSecret(t *testing.T, h *hooks.Hook) string {
	t.Helper()
	var c struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(h.Config, &c); err != nil {
		t.Fatal(err)
	}
	return c.Secret
}

func TestParseJSON(t *testing.T) {
	f := mustParse(t, `{"hooks":[{"id":"0B6A3E46-2F6B-4C5E-9F3A-1D2C3B4A5F60","source":"crud","handler":"log"}]}`, nil)
	if f.Entries[0].Key != "id:0b6a3e46-2f6b-4c5e-9f3a-1d2c3b4a5f60" {
		t.Errorf("key = %q", f.Entries[0].Key)
	}
	if f, err := Parse(nil, env(nil)); err != nil || len(f.Entries) != 0 {
		t.Errorf("an empty file names no hooks: %v, %v", f, err)
	}
}

// stored returns the hook of a file entry as the server would store it.
func stored(t *testing.T, src string, vars map[string]string) []*hooks.Hook {
	t.Helper()
	var out []*hooks.Hook
	p, err := NewPlan(mustParse(t, src, vars), nil, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Changes {
		h := c.Hook.Clone()
		if err := hooks.Validate(h, nil, now); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

const twoHooks = `hooks:
  - name: crm
    source: crud
    event: consumers
    handler: webhook
    config:
      url: http://crm.example/hook
      secret: ${CRM_SECRET}
  - name: audit
    source: crud
    handler: log
`

func TestPlan(t *testing.T) {
	vars := map[string]string{"CRM_SECRET": "s1"}
	current := stored(t, twoHooks, vars)
	unmanaged := stored(t, "hooks:\n  - name: by-hand\n    source: crud\n    handler: log", nil)[0]
	unmanaged.Tags = []string{}
	gone := stored(t, "hooks:\n  - name: gone\n    source: crud\n    handler: log", nil)[0]
	all := append(current, unmanaged, gone)

	for _, tc := range []struct {
		name  string
		src   string
		vars  map[string]string
		prune bool
		want  string // the plan's lines, without ids
	}{
		{"same file: nothing", twoHooks, vars, false, "no changes"},
		{"same file, prune: the managed hook it does not name",
			twoHooks, vars, true, "- delete gone (crud, log)|0 to create, 0 to update, 1 to delete"},
		{"changed secret and url: masked secret",
			strings.Replace(twoHooks, "crm.example", "crm2.example", 1), map[string]string{"CRM_SECRET": "s2"}, false,
			`~ update crm (crud/consumers, webhook)|    config.secret: "***" -> "***" (secret: values hidden)|    config.url: "http://crm.example/hook" -> "http://crm2.example/hook"|0 to create, 1 to update`},
		{"a new hook", twoHooks + "  - name: fresh\n    source: crud\n    handler: log\n", vars, false,
			"+ create fresh (crud, log)|1 to create, 0 to update, 0 to delete"},
		{"adopting a hook made by hand", twoHooks + "  - name: by-hand\n    source: crud\n    handler: log\n", vars, false,
			"~ update by-hand (crud, log)|    tags: [] -> [\"managed-by:eventhooks-apply\"]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(mustParse(t, tc.src, tc.vars), all, Options{Prune: tc.prune, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := p.Print(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, secret := range []string{"s1", "s2"} {
				if strings.Contains(out, `"`+secret+`"`) {
					t.Errorf("the plan shows a secret:\n%s", out)
				}
			}
			for _, id := range []string{current[0].ID, current[1].ID, unmanaged.ID, gone.ID, NameID("fresh")} {
				out = strings.ReplaceAll(out, ", id "+id, "")
			}
			for _, want := range strings.Split(tc.want, "|") {
				if !strings.Contains(out, want) {
					t.Errorf("plan lacks %q:\n%s", want, out)
				}
			}
			if tc.prune && strings.Contains(out, "by-hand") {
				t.Errorf("prune touches a hook apply did not create:\n%s", out)
			}
		})
	}
}

func TestPlanRefusesAndChangesNothing(t *testing.T) {
	current := stored(t, twoHooks, map[string]string{"CRM_SECRET": "s1"})
	byHand := stored(t, "hooks:\n  - name: by-hand\n    source: crud\n    handler: log", nil)[0]
	byHand.Tags = []string{}
	byHand.ID = "3f0e6a1c-7d52-4d8e-b1c4-5a6b7c8d9e0f"
	all := append(current, byHand)
	src := `hooks:
  - name: ok
    source: crud
    handler: log
  - name: no-url
    source: crud
    handler: webhook
  - id: 9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d
    name: by-hand
    source: crud
    handler: log
  - name: unknown-source
    source: nowhere
    handler: log
  - name: bad-script
    source: crud
    handler: lambda
    config: {functions: ["return ("]}
`
	check := func(h *hooks.Hook) error {
		if h.Handler == hooks.HandlerLambda {
			return &hooks.SchemaError{Fields: map[string]string{"config.functions.1": "does not compile"}}
		}
		return nil
	}
	_, err := NewPlan(mustParse(t, src, nil), all, Options{Catalogue: hooks.NewCatalogue(), Check: check})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, want := range []string{
		"line 5 (hook no-url): schema violation (config.url: required field missing)",
		"line 8 (hook by-hand): the name is taken by hook " + byHand.ID,
		"line 12 (hook unknown-source): schema violation (source: unknown source 'nowhere'",
		"line 15 (hook bad-script): schema violation (config.functions.1: does not compile)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hook ok") {
		t.Errorf("a valid hook is reported: %v", err)
	}
}

func TestDumpReadsBackUnchanged(t *testing.T) {
	src := twoHooks + `  - id: 0b6a3e46-2f6b-4c5e-9f3a-1d2c3b4a5f60
    source: crud
    handler: lambda
    config:
      functions:
        - |
          return (d) => ({url: ` + "`http://x.example/$${RAW}/${d.id}`" + `})
`
	vars := map[string]string{"CRM_SECRET": "s$1"}
	list := stored(t, src, vars)
	for _, tc := range []struct {
		format string
		reveal bool
	}{{FormatYAML, false}, {FormatYAML, true}, {FormatJSON, false}} {
		d, err := Dump(list, tc.format, tc.reveal)
		if err != nil {
			t.Fatal(err)
		}
		text := string(d.Data)
		if strings.Contains(text, "created_at") || strings.Contains(text, "secrets") || strings.Contains(text, "null") {
			t.Errorf("%s: server fields or nulls written:\n%s", tc.format, text)
		}
		if strings.Contains(text, "s$1") != tc.reveal {
			t.Errorf("%s reveal=%v: secret shown %v:\n%s", tc.format, tc.reveal, !tc.reveal, text)
		}
		back := map[string]string{"CRM_SECRET": "s$1"}
		if !tc.reveal {
			if len(d.Vars) != 1 || !strings.HasPrefix(d.Vars[0], "CRM_SECRET: config.secret of hook crm") {
				t.Fatalf("vars = %q", d.Vars)
			}
		}
		f, err := Parse(d.Data, env(back))
		if err != nil {
			t.Fatalf("%s: the dump does not parse: %v\n%s", tc.format, err, text)
		}
		p, err := NewPlan(f, list, Options{Prune: true, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Empty() {
			var b strings.Builder
			_ = p.Print(&b)
			t.Errorf("%s reveal=%v: applying the dump would change:\n%s\n%s", tc.format, tc.reveal, b.String(), text)
		}
	}
}
