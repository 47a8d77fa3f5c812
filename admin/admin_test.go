package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/google/uuid"
)

func TestCreateKongBody(t *testing.T) {
	e := newEnv(t, nil)
	r := e.expect(http.StatusCreated, "POST", "/event-hooks", kongCreate)
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if srv := r.header.Get("Server"); srv != "eventhooks" {
		t.Errorf("Server = %q", srv)
	}
	got := r.json(t)
	wantConfig := map[string]any{"headers": map[string]any{}, "secret": nil, "ssl_verify": false, "url": "https://example.com/hook"}
	if !reflect.DeepEqual(got["config"], wantConfig) {
		t.Errorf("config = %#v, want %#v", got["config"], wantConfig)
	}
	for k, want := range map[string]any{"source": "crud", "event": "consumers", "handler": "webhook",
		"on_change": nil, "snooze": nil, "created_at": 1.7e9, "updated_at": 1.7e9} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %#v (present %v), want %#v", k, v, ok, want)
		}
	}
	id, _ := got["id"].(string)
	if _, err := uuid.Parse(id); err != nil {
		t.Errorf("id %q is not a uuid: %v", id, err)
	}
	again := e.expect(http.StatusOK, "GET", "/event-hooks/"+id, "")
	if string(again.body) != string(r.body) {
		t.Errorf("GET after POST:\n%s\nwant\n%s", again.body, r.body)
	}
}

func TestCreateSchemaViolations(t *testing.T) {
	tests := []struct {
		name, body string
		path       []string // into fields
		want       string
		message    string // exact when set
	}{
		{name: "missing url", body: `{"source":"crud","event":"consumers","handler":"webhook","config":{}}`,
			path: []string{"config", "url"}, want: "required field missing",
			message: "schema violation (config.url: required field missing)"},
		{name: "unknown handler", body: `{"source":"crud","handler":"foo","config":{}}`,
			path: []string{"handler"}, want: "unknown type: foo"},
		{name: "unknown field", body: `{"source":"crud","handler":"log","colour":"red"}`,
			path: []string{"colour"}, want: "unknown field"},
		{name: "snooze not an integer", body: `{"source":"crud","handler":"log","snooze":"soon"}`,
			path: []string{"snooze"}, want: "expected an integer"},
		{name: "max_backoff_ms overflows a duration", body: `{"source":"crud","handler":"log","retry":{"max_backoff_ms":9223372036854775807}}`,
			path: []string{"retry", "max_backoff_ms"}, want: "value should be between 1 and 86400000 (24 h; 0 or unset: 60000)",
			message: "schema violation (retry.max_backoff_ms: value should be between 1 and 86400000 (24 h; 0 or unset: 60000))"},
		{name: "timeout_ms beyond the rebalance budget", body: `{"source":"crud","handler":"log","timeout_ms":60000}`,
			path: []string{"timeout_ms"}, want: "value should be between 1 and 30000 (0 or unset: 10000): a rebalance waits for in-flight deliveries and must end within the consumer group's 60 s rebalance timeout"},
		{name: "id not a uuid", body: `{"id":"nope","source":"crud","handler":"log"}`,
			path: []string{"id"}, want: "expected a uuid"},
		{name: "unknown source", body: `{"source":"billing","handler":"log"}`,
			path: []string{"source"}, want: "unknown source 'billing': register it with PUT /event-hooks/sources/billing/{event} or produce one of its events first"},
		{name: "check rejects config", body: `{"source":"crud","handler":"webhook","config":{"url":"https://reject.example/"}}`,
			path: []string{"config"}, want: "host reject.example is not allowed"},
		{name: "check schema error", body: `{"source":"crud","handler":"webhook","config":{"url":"https://schema.example/"}}`,
			path: []string{"config", "url"}, want: "bad template"},
	}
	e := newEnv(t, func(c *Config) {
		c.Check = func(h *hooks.Hook) error {
			switch {
			case strings.Contains(string(h.Config), "reject.example"):
				return errors.New("host reject.example is not allowed")
			case strings.Contains(string(h.Config), "schema.example"):
				return &hooks.SchemaError{Fields: map[string]string{"config.url": "bad template"}}
			}
			return nil
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := e.expect(http.StatusBadRequest, "POST", "/event-hooks", tc.body).json(t)
			if got["code"] != 2.0 || got["name"] != "schema violation" {
				t.Errorf("code/name = %v/%v", got["code"], got["name"])
			}
			var v any = got["fields"]
			for _, p := range tc.path {
				m, _ := v.(map[string]any)
				v = m[p]
			}
			if v != tc.want {
				t.Errorf("fields.%s = %#v, want %q (body %v)", strings.Join(tc.path, "."), v, tc.want, got)
			}
			if tc.message != "" && got["message"] != tc.message {
				t.Errorf("message = %q, want %q", got["message"], tc.message)
			}
		})
	}
	t.Run("bad JSON", func(t *testing.T) {
		got := e.expect(http.StatusBadRequest, "POST", "/event-hooks", `{"source":`).json(t)
		if got["code"] != 2.0 || !strings.Contains(got["message"].(string), "cannot parse JSON body") {
			t.Errorf("got %v", got)
		}
	})
	if n := len(e.store.Snapshot().Hooks); n != 0 {
		t.Errorf("%d hooks stored after rejected creates", n)
	}
}

func TestCreateDuplicateID(t *testing.T) {
	e := newEnv(t, nil)
	id := "4e8f1b0a-6a0e-4a39-9d3b-2c1b0e6b7f10"
	body := `{"id":"` + strings.ToUpper(id) + `","source":"crud","handler":"log"}`
	if got := e.create(body); got != id {
		t.Fatalf("id = %q, want canonical %q", got, id)
	}
	got := e.expect(http.StatusConflict, "POST", "/event-hooks", body).json(t)
	want := map[string]any{"code": 5.0, "name": "unique constraint violation",
		"message": `UNIQUE violation detected on '{id="` + id + `"}'`, "fields": map[string]any{"id": id}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("409 body = %v, want %v", got, want)
	}
}

// TestHookNamesUnique: a name is taken once (409, Kong's unique violation), through the
// hooks topic on a real broker, by POST, PUT and PATCH alike; a hook keeps its own name.
func TestHookNamesUnique(t *testing.T) {
	e := newEnv(t, nil)
	a := e.create(`{"name":"slack-unhealthy-targets","source":"balancer","event":"health","handler":"log"}`)
	want := map[string]any{"code": 5.0, "name": "unique constraint violation",
		"message": `UNIQUE violation detected on '{name="slack-unhealthy-targets"}'`,
		"fields":  map[string]any{"name": "slack-unhealthy-targets"}}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/event-hooks", `{"name":"slack-unhealthy-targets","source":"crud","handler":"log"}`},
		{"PUT", "/event-hooks/" + uuid.NewString(), `{"name":"slack-unhealthy-targets","source":"crud","handler":"log"}`},
	} {
		if got := e.expect(http.StatusConflict, tc.method, tc.path, tc.body).json(t); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: 409 body = %v, want %v", tc.method, got, want)
		}
	}
	b := e.create(`{"name":"other","source":"crud","handler":"log"}`)
	if got := e.expect(http.StatusConflict, "PATCH", "/event-hooks/"+b, `{"name":"slack-unhealthy-targets"}`).json(t); !reflect.DeepEqual(got, want) {
		t.Errorf("PATCH: 409 body = %v", got)
	}
	// Its own name is no conflict; hooks without a name never conflict.
	e.expect(http.StatusOK, "PATCH", "/event-hooks/"+a, `{"snooze":5}`)
	e.expect(http.StatusOK, "PUT", "/event-hooks/"+a, `{"name":"slack-unhealthy-targets","source":"balancer","handler":"log"}`)
	e.create(`{"source":"crud","handler":"log"}`)
	e.create(`{"source":"crud","handler":"log"}`)
	// A freed name can be taken again.
	e.expect(http.StatusNoContent, "DELETE", "/event-hooks/"+a, "")
	e.expect(http.StatusOK, "PATCH", "/event-hooks/"+b, `{"name":"slack-unhealthy-targets"}`)
	if n := len(e.store.Snapshot().Hooks); n != 3 {
		t.Errorf("%d hooks stored, want 3", n)
	}
}

func TestFormBodies(t *testing.T) {
	e := newEnv(t, nil)
	form := url.Values{"source": {"crud"}, "event": {"consumers"}, "handler": {"webhook"},
		"config.url": {"http://example.com/x"}, "config.headers.X-Team": {"core"}, "snooze": {"60"},
		"on_change": {"true"}, "tags[]": {"a", "b"}}
	r := e.expect(http.StatusCreated, "POST", "/event-hooks", form.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")
	got := r.json(t)
	cfg := got["config"].(map[string]any)
	if cfg["url"] != "http://example.com/x" || cfg["headers"].(map[string]any)["X-Team"] != "core" ||
		got["snooze"] != 60.0 || got["on_change"] != true || !reflect.DeepEqual(got["tags"], []any{"a", "b"}) {
		t.Errorf("form create = %s", r.body)
	}
	id := got["id"].(string)
	e.expect(http.StatusOK, "PATCH", "/event-hooks/"+id, "snooze=", "Content-Type", "application/x-www-form-urlencoded")
	if h, _ := e.store.Snapshot().Get(id); h.Snooze != nil {
		t.Errorf("snooze= did not clear snooze: %v", *h.Snooze)
	}
	// curl -d '{…}' without -H sends JSON as a form: it is read as the JSON it is.
	r = e.expect(http.StatusCreated, "POST", "/event-hooks", ` {"source":"crud","event":"consumers","handler":"log"}`,
		"Content-Type", "application/x-www-form-urlencoded")
	if got := r.json(t); got["handler"] != "log" || got["source"] != "crud" {
		t.Errorf("JSON sent as a form: %s", r.body)
	}
	// A source's fields and unique are lists in a form as a hook's tags are: one value
	// without [] is a list of one.
	form = url.Values{"fields": {"invoice"}, "unique[]": {"invoice"}, "description": {"paid"}}
	r = e.expect(http.StatusOK, "PUT", "/event-hooks/sources/billing/invoice-paid", form.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")
	if info := e.store.Snapshot().Sources["billing"]["invoice-paid"]; !reflect.DeepEqual(info.Fields, []string{"invoice"}) ||
		!reflect.DeepEqual(info.Unique, []string{"invoice"}) || info.Description != "paid" {
		t.Errorf("form source registration stored %+v (answer %s)", info, r.body)
	}
	r = e.expect(http.StatusUnsupportedMediaType, "POST", "/event-hooks", "source=crud", "Content-Type", "text/plain")
	if !strings.Contains(r.json(t)["message"].(string), "text/plain") {
		t.Errorf("415 body %s", r.body)
	}
}

// TestFormTypedFields: the typed fields of a flat Kong form arrive typed, so a hook
// created by form reads back as the JSON one would.
func TestFormTypedFields(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		handler, key, value string
		want                any // the field read back; nil: absent
	}{
		{"webhook", "config.pipeline", "true", true},
		{"webhook", "config.pipeline_max_conns", "4", 4.0},
		{"webhook-custom", "config.pipeline_max_pending", "16", 16.0},
		{"webhook-custom", "config.pipeline", "false", nil}, // unset is left out of a stored config
		{"webhook", "auto_disable_after", "3600", 3600.0},
	} {
		form := url.Values{"source": {"crud"}, "handler": {tc.handler}, "config.url": {"http://example.com/x"},
			tc.key: {tc.value}}
		if tc.handler == "webhook-custom" {
			form.Set("config.method", "POST") // required there, unknown to webhook
		}
		r := e.do("POST", "/event-hooks", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
		if r.status != http.StatusCreated {
			t.Errorf("%s %s=%s: status %d, body %s", tc.handler, tc.key, tc.value, r.status, r.body)
			continue
		}
		id, _ := r.json(t)["id"].(string)
		got, ok := lookup(e.expect(http.StatusOK, "GET", "/event-hooks/"+id, "").json(t), tc.key)
		if got != tc.want || ok != (tc.want != nil) {
			t.Errorf("%s %s=%s read back %#v (present %v), want %#v", tc.handler, tc.key, tc.value, got, ok, tc.want)
		}
	}
}

// lookup returns the value at a dotted path ("config.pipeline") of a decoded object.
func lookup(m map[string]any, path string) (any, bool) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		m, _ = m[k].(map[string]any)
	}
	v, ok := m[keys[len(keys)-1]]
	return v, ok
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, nil)
	created := map[string]bool{}
	for i := range 5 {
		if i == 3 {
			e.now.Add(10) // a mix of equal and distinct created_at
		}
		created[e.create(kongCreate)] = true
	}
	seen := map[string]int{}
	pages := 0
	next := "/event-hooks?size=2"
	for next != "" {
		got := e.expect(http.StatusOK, "GET", next, "").json(t)
		pages++
		for _, h := range got["data"].([]any) {
			seen[h.(map[string]any)["id"].(string)]++
		}
		next = ""
		if n, ok := got["next"].(string); ok {
			next = n
			if !strings.HasSuffix(n, "&size=2") || got["offset"] == nil {
				t.Errorf("next = %q, offset = %v", n, got["offset"])
			}
		} else if got["next"] != nil {
			t.Fatalf("next = %#v", got["next"])
		}
	}
	if pages != 3 || len(seen) != 5 {
		t.Errorf("pages = %d, seen = %v", pages, seen)
	}
	for id, n := range seen {
		if !created[id] || n != 1 {
			t.Errorf("hook %s seen %d times (created %v)", id, n, created[id])
		}
	}
	all := e.expect(http.StatusOK, "GET", "/event-hooks", "").json(t)
	if len(all["data"].([]any)) != 5 || all["next"] != nil {
		t.Errorf("default page: %v", all)
	}
	for _, q := range []string{"size=0", "size=1001", "size=x"} {
		if got := e.expect(http.StatusBadRequest, "GET", "/event-hooks?"+q, "").json(t); got["code"] != 9.0 {
			t.Errorf("%s: %v", q, got)
		}
	}
	if got := e.expect(http.StatusBadRequest, "GET", "/event-hooks?offset=%25%25", "").json(t); got["code"] != 7.0 {
		t.Errorf("bad offset: %v", got)
	}
}

func TestListTags(t *testing.T) {
	e := newEnv(t, nil)
	a := e.create(`{"source":"crud","handler":"log","tags":["a"]}`)
	ab := e.create(`{"source":"crud","handler":"log","tags":["a","b"]}`)
	e.create(`{"source":"crud","handler":"log"}`)
	for q, want := range map[string][]string{"a": {a, ab}, "a,b": {ab}, "b/a": {a, ab}, "c": nil} {
		var ids []string
		for _, h := range e.expect(http.StatusOK, "GET", "/event-hooks?tags="+url.QueryEscape(q), "").json(t)["data"].([]any) {
			ids = append(ids, h.(map[string]any)["id"].(string))
		}
		if !sameSet(ids, want) {
			t.Errorf("tags=%s: %v, want %v", q, ids, want)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(`{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"https://example.com/hook","headers":{"A":"1"}}}`)
	e.now.Add(60)

	got := e.expect(http.StatusOK, "PATCH", "/event-hooks/"+id, `{"snooze":30,"config":{"url":"https://example.com/v2"}}`).json(t)
	cfg := got["config"].(map[string]any)
	if got["snooze"] != 30.0 || cfg["url"] != "https://example.com/v2" || cfg["headers"].(map[string]any)["A"] != "1" {
		t.Errorf("PATCH result %v", got)
	}
	if got["created_at"] != 1.7e9 || got["updated_at"] != 1.7e9+60 {
		t.Errorf("PATCH timestamps %v/%v", got["created_at"], got["updated_at"])
	}
	e.expect(http.StatusBadRequest, "PATCH", "/event-hooks/"+id, `{"handler":"webhook-custom"}`)

	got = e.expect(http.StatusOK, "PUT", "/event-hooks/"+id, `{"id":"ignored","source":"balancer","event":"health","handler":"log"}`).json(t)
	if got["id"] != id || got["handler"] != "log" || got["snooze"] != nil || got["created_at"] != 1.7e9 {
		t.Errorf("PUT replace %v", got)
	}
	if h, _ := e.store.Snapshot().Get(id); h.Source != "balancer" {
		t.Errorf("store has %+v after PUT", h)
	}

	fresh := uuid.NewString()
	got = e.expect(http.StatusOK, "PUT", "/event-hooks/"+fresh, `{"source":"crud","handler":"log"}`).json(t)
	if got["id"] != fresh || got["created_at"] != 1.7e9+60 {
		t.Errorf("PUT create %v", got)
	}
	e.expect(http.StatusBadRequest, "PUT", "/event-hooks/not-a-uuid", `{"source":"crud","handler":"log"}`)

	e.expect(http.StatusNoContent, "DELETE", "/event-hooks/"+id, "")
	e.expect(http.StatusNotFound, "GET", "/event-hooks/"+id, "")
	e.expect(http.StatusNoContent, "DELETE", "/event-hooks/"+id, "")
	e.expect(http.StatusNotFound, "PATCH", "/event-hooks/"+id, `{"snooze":1}`)
	if n := len(e.store.Snapshot().Hooks); n != 1 {
		t.Errorf("%d hooks left, want 1", n)
	}
}

// TestPatchConfigMaps pins what the README says PATCH does: config is merged key by key,
// and a map inside it (headers) is replaced whole, as Kong does with map fields — so a
// header can be removed by sending the map without it.
func TestPatchConfigMaps(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(`{"source":"crud","handler":"webhook","config":{"url":"https://example.com/hook","headers":{"A":"1","B":"2"}}}`)
	got := e.expect(http.StatusOK, "PATCH", "/event-hooks/"+id, `{"config":{"headers":{"B":"3"}}}`).json(t)
	cfg := got["config"].(map[string]any)
	if cfg["url"] != "https://example.com/hook" || !reflect.DeepEqual(cfg["headers"], map[string]any{"B": "3"}) {
		t.Errorf("PATCH config = %v, want url kept and headers replaced by {B:3}", cfg)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		message      string
	}{
		{"GET", "/nope", 404, "Not found"},
		{"GET", "/event-hooks/" + uuid.NewString(), 404, "Not found"},
		{"GET", "/event-hooks/not-a-uuid", 404, "Not found"},
		{"GET", "/event-hooks/a/b/c", 404, "Not found"},
		{"GET", "/event-hooks/sources/nope", 404, "Not found"},
		{"GET", "/event-hooks/sources/balancer/nope", 404, "Not found"},
		{"DELETE", "/event-hooks", 405, "Method not allowed"},
		{"POST", "/event-hooks/" + uuid.NewString(), 405, "Method not allowed"},
		{"POST", "/healthz", 405, "Method not allowed"},
	} {
		r := e.expect(tc.status, tc.method, tc.path, "")
		if got := r.json(t)["message"]; got != tc.message {
			t.Errorf("%s %s: message %q", tc.method, tc.path, got)
		}
		if r.header.Get("Content-Type") != contentTypeJSON {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, r.header.Get("Content-Type"))
		}
	}
	if allow := e.do("DELETE", "/event-hooks", "").header.Get("Allow"); allow != "GET, HEAD, POST" {
		t.Errorf("Allow = %q", allow)
	}
	e.expect(http.StatusOK, "GET", "/event-hooks/", "")
	e.expect(http.StatusOK, "HEAD", "/event-hooks", "")
}

func TestSources(t *testing.T) {
	e := newEnv(t, nil)
	var all struct {
		Data map[string]map[string]hooks.EventInfo `json:"data"`
	}
	if err := json.Unmarshal(e.expect(http.StatusOK, "GET", "/event-hooks/sources", "").body, &all); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		source, event  string
		fields, unique []string
	}{
		{"crud", "consumers", []string{"operation", "entity", "old_entity", "schema"}, []string{}},
		{"crud", "consumers:create", []string{"operation", "entity", "old_entity", "schema"}, []string{}},
		{"balancer", "health", []string{"upstream_id", "ip", "port", "hostname", "health"}, []string{}},
		{"rate-limiting-advanced", "rate-limit-exceeded", []string{"consumer", "ip", "service", "rate", "limit", "window"}, []string{"consumer", "ip", "service"}},
	}
	for _, c := range checks {
		info, ok := all.Data[c.source][c.event]
		if !ok || !reflect.DeepEqual(info.Fields, c.fields) || !reflect.DeepEqual(info.Unique, c.unique) || info.Origin != "builtin" {
			t.Errorf("%s/%s = %+v (present %v)", c.source, c.event, info, ok)
		}
	}
	src := e.expect(http.StatusOK, "GET", "/event-hooks/sources/balancer", "").json(t)
	if _, ok := src["data"].(map[string]any)["health"]; !ok {
		t.Errorf("balancer subtree %v", src)
	}
	ev := e.expect(http.StatusOK, "GET", "/event-hooks/sources/rate-limiting-advanced/rate-limit-exceeded", "").json(t)
	if !reflect.DeepEqual(ev["data"].(map[string]any)["unique"], []any{"consumer", "ip", "service"}) {
		t.Errorf("event info %v", ev)
	}
}

func TestCustomSource(t *testing.T) {
	e := newEnv(t, nil)
	hook := `{"source":"billing","event":"invoice-paid","handler":"log"}`
	got := e.expect(http.StatusBadRequest, "POST", "/event-hooks", hook).json(t)
	if _, ok := got["fields"].(map[string]any)["source"]; !ok {
		t.Fatalf("unregistered source: %v", got)
	}
	e.expect(http.StatusBadRequest, "PUT", "/event-hooks/sources/billing/invoice-paid", `{"fields":["amount"],"unique":["customer"]}`)
	e.expect(http.StatusBadRequest, "PUT", "/event-hooks/sources/billing/invoice-paid", `{"fields":"amount"}`)
	e.expect(http.StatusBadRequest, "PUT", "/event-hooks/sources/crud/consumers", `{}`)
	e.expect(http.StatusBadRequest, "DELETE", "/event-hooks/sources/balancer/health", ``)

	reg := e.expect(http.StatusOK, "PUT", "/event-hooks/sources/billing/invoice-paid",
		`{"fields":["customer","amount"],"unique":["customer"],"description":"An invoice was paid"}`).json(t)
	want := map[string]any{"fields": []any{"customer", "amount"}, "unique": []any{"customer"},
		"description": "An invoice was paid", "origin": "registered"}
	if !reflect.DeepEqual(reg["data"], want) {
		t.Errorf("PUT source = %v, want data %v", reg, want)
	}
	e.create(hook)
	e.expect(http.StatusOK, "GET", "/event-hooks/sources/billing", "")
	if u := e.cat.UniqueFields("billing", "invoice-paid"); !reflect.DeepEqual(u, []string{"customer"}) {
		t.Errorf("catalogue unique = %v", u)
	}

	e.expect(http.StatusNoContent, "DELETE", "/event-hooks/sources/billing/invoice-paid", "")
	e.expect(http.StatusNotFound, "GET", "/event-hooks/sources/billing/invoice-paid", "")
	e.expect(http.StatusNoContent, "DELETE", "/event-hooks/sources/billing/invoice-paid", "")
}

func TestTokenAuth(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = "s3cret" })
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Kong-Admin-Token", "nope"}} {
		r := e.expect(http.StatusUnauthorized, "GET", "/event-hooks", "", h...)
		if got := r.json(t); got["message"] != "Unauthorized" {
			t.Errorf("401 body %v", got)
		}
	}
	e.expect(http.StatusUnauthorized, "GET", "/nope", "")
	e.expect(http.StatusOK, "GET", "/event-hooks", "", "Authorization", "Bearer s3cret")
	e.expect(http.StatusOK, "GET", "/event-hooks", "", "Kong-Admin-Token", "s3cret")
	e.expect(http.StatusCreated, "POST", "/event-hooks", kongCreate, "Kong-Admin-Token", "s3cret")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		e.expect(http.StatusOK, "GET", p, "")
	}
}

// TestMetricsToken: with Config.MetricsToken, /metrics answers only a request bearing it
// (not the admin token); without it, /metrics stays public as before.
func TestMetricsToken(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Token, c.MetricsToken = "adm1n", "m3trics" })
		for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer adm1n"},
			{"Kong-Admin-Token", "m3trics"}, {"Authorization", "m3trics"}} {
			r := e.expect(http.StatusUnauthorized, "GET", "/metrics", "", h...)
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="eventhooks"` {
				t.Errorf("headers %q: WWW-Authenticate %q", h, got)
			}
			if strings.Contains(string(r.body), "eventhooks_") || strings.Contains(string(r.body), "go_goroutines") {
				t.Errorf("headers %q: 401 body leaks metrics: %.200s", h, r.body)
			}
		}
		r := e.expect(http.StatusOK, "GET", "/metrics", "", "Authorization", "Bearer m3trics")
		if !strings.Contains(string(r.body), "go_goroutines") {
			t.Errorf("metrics body lacks go_goroutines: %.200s", r.body)
		}
		e.expect(http.StatusOK, "GET", "/metrics", "", "Authorization", "bearer m3trics")
		e.expect(http.StatusOK, "GET", "/healthz", "")
		e.expect(http.StatusOK, "GET", "/readyz", "")
		e.expect(http.StatusUnauthorized, "GET", "/event-hooks", "", "Authorization", "Bearer m3trics")
		e.expect(http.StatusOK, "GET", "/event-hooks", "", "Authorization", "Bearer adm1n")
	})
	t.Run("unset", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.Token = "adm1n" })
		r := e.expect(http.StatusOK, "GET", "/metrics", "")
		if !strings.Contains(string(r.body), "go_goroutines") {
			t.Errorf("metrics body lacks go_goroutines: %.200s", r.body)
		}
	})
}

func TestHealthReadyMetrics(t *testing.T) {
	var ready atomic.Bool
	e := newEnv(t, func(c *Config) {
		c.Ready = func() (bool, string) { return ready.Load(), "partitions not assigned" }
	})
	if got := e.expect(http.StatusOK, "GET", "/healthz", "").json(t); got["status"] != "ok" {
		t.Errorf("healthz %v", got)
	}
	got := e.expect(http.StatusServiceUnavailable, "GET", "/readyz", "").json(t)
	if got["status"] != "not ready" || got["reason"] != "partitions not assigned" {
		t.Errorf("readyz %v", got)
	}
	ready.Store(true)
	e.expect(http.StatusOK, "GET", "/readyz", "")
	e.expect(http.StatusOK, "GET", "/event-hooks", "")
	e.expect(http.StatusNotFound, "GET", "/event-hooks/"+uuid.NewString(), "")
	r := e.expect(http.StatusOK, "GET", "/metrics", "")
	if ct := r.header.Get("Content-Type"); ct != contentTypeMetrics {
		t.Errorf("metrics Content-Type %q", ct)
	}
	for _, want := range []string{
		`eventhooks_admin_requests_total{route="/event-hooks",code="2xx"}`,
		`eventhooks_admin_requests_total{route="/event-hooks/{id}",code="4xx"}`,
		`eventhooks_admin_requests_total{route="/readyz",code="5xx"}`,
		"go_goroutines",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestTestAndPing(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(kongCreate)
	e.expect(http.StatusNotImplemented, "POST", "/event-hooks/"+id+"/test", `{}`)
	if got := e.expect(http.StatusNotImplemented, "GET", "/event-hooks/"+id+"/ping", "").json(t); got["message"] != "not implemented yet" {
		t.Errorf("501 body %v", got)
	}

	pinged := make(chan string, 1)
	logs := &testkit.Buffer{}
	e = newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Test = func(_ context.Context, h *hooks.Hook, data []byte) (any, error) {
			var d map[string]any
			if err := json.Unmarshal(data, &d); err != nil {
				return nil, err
			}
			switch {
			case d["fail"] != nil:
				return nil, errors.New("dial tcp 10.0.0.1:443: connection refused")
			case d["invalid"] != nil:
				return nil, &hooks.SchemaError{Fields: map[string]string{"config.functions.1": "SyntaxError"}}
			}
			d["source"], d["event"] = h.Source, h.EventName()
			return map[string]any{"data": d, "result": map[string]any{"status": 200}}, nil
		}
		c.Ping = func(_ context.Context, h *hooks.Hook) (any, error) {
			pinged <- h.ID
			return nil, nil
		}
	})
	id = e.create(kongCreate)
	logID := e.create(`{"source":"crud","handler":"log"}`)

	got := e.expect(http.StatusOK, "POST", "/event-hooks/"+id+"/test", `{"entity":{"username":"ada"}}`).json(t)
	data := got["data"].(map[string]any)
	if data["source"] != "crud" || data["event"] != "consumers" || data["entity"] == nil || got["result"] == nil {
		t.Errorf("test result %v", got)
	}
	e.expect(http.StatusOK, "POST", "/event-hooks/"+id+"/test", "")
	if got := e.expect(http.StatusBadGateway, "POST", "/event-hooks/"+id+"/test", `{"fail":1}`).json(t); !strings.Contains(got["message"].(string), "connection refused") {
		t.Errorf("502 body %v", got)
	}
	e.expect(http.StatusBadRequest, "POST", "/event-hooks/"+id+"/test", `{"invalid":1}`)
	// Data that is not an object: a 400 in JSON's terms, not Go's.
	for body, what := range map[string]string{`[1]`: "got an array", `"x"`: "got a string", `42`: "got a number",
		`null`: "got null", `{"a":`: "invalid JSON"} {
		got := e.expect(http.StatusBadRequest, "POST", "/event-hooks/"+id+"/test", body).json(t)
		msg, _ := got["message"].(string)
		if !strings.Contains(msg, "expected a JSON object as event data") || !strings.Contains(msg, what) ||
			strings.Contains(msg, "Go value") || strings.Contains(msg, "map[") {
			t.Errorf("/test %s: message %q, want one saying %q", body, msg, what)
		}
	}
	// A failed /test is the destination's failure: logged, but not at error level.
	if l := logs.String(); strings.Contains(l, "level=ERROR") || !strings.Contains(l, "connection refused") {
		t.Errorf("logs after a failed /test:\n%s", l)
	}
	e.expect(http.StatusNotFound, "POST", "/event-hooks/"+uuid.NewString()+"/test", `{}`)

	e.expect(http.StatusOK, "GET", "/event-hooks/"+id+"/ping", "")
	if got := <-pinged; got != id {
		t.Errorf("pinged %s, want %s", got, id)
	}
	if got := e.expect(http.StatusBadRequest, "GET", "/event-hooks/"+logID+"/ping", "").json(t); !strings.Contains(got["message"].(string), "webhook") {
		t.Errorf("ping log hook: %v", got)
	}
	e.expect(http.StatusNotFound, "GET", "/event-hooks/"+uuid.NewString()+"/ping", "")
}

// failingStore wraps a real store and makes its hook writes fail.
type failingStore struct {
	HookStore
	err error // nil: block until the context is done
}

func (f failingStore) Put(ctx context.Context, _ *hooks.Hook) error {
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	return fmt.Errorf("cannot write hook: %w", ctx.Err())
}

func TestStoreErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.WriteTimeout = 100 * time.Millisecond
		c.Store = failingStore{HookStore: c.Store}
	})
	start := time.Now()
	got := e.expect(http.StatusGatewayTimeout, "POST", "/event-hooks", kongCreate).json(t)
	if !strings.Contains(got["message"].(string), "timed out") || time.Since(start) > 5*time.Second {
		t.Errorf("504 body %v after %s", got, time.Since(start))
	}

	e = newEnv(t, func(c *Config) {
		c.Store = failingStore{HookStore: c.Store, err: errors.New("broker on fire")}
	})
	if got := e.expect(http.StatusInternalServerError, "POST", "/event-hooks", kongCreate).json(t); got["message"] != "broker on fire" {
		t.Errorf("500 body %v", got)
	}
}

// TestBodyLimit announces an oversized body and reads the answer before sending it: the
// server answers 413 from the headers (a client still writing would race its close).
func TestBodyLimit(t *testing.T) {
	e := newEnv(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /event-hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", MaxRequestBodySize+1)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestNewRequiresStore(t *testing.T) {
	if _, err := New(Config{Catalogue: hooks.NewCatalogue()}); err == nil {
		t.Error("New without Store succeeded")
	}
}

func TestWritesWaitForTheHooksTopic(t *testing.T) {
	never := make(chan struct{})
	e := newEnv(t, func(c *Config) { c.Loaded = never; c.WriteTimeout = 200 * time.Millisecond })
	if got := e.expect(http.StatusServiceUnavailable, "POST", "/event-hooks", kongCreate).json(t); !strings.Contains(got["message"].(string), "loading") {
		t.Errorf("503 body %v", got)
	}
}
