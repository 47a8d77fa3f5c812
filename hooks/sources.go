package hooks

import (
	"strings"
	"sync"
	"sync/atomic"
)

// EventInfo describes one event of a source: its template fields and the fields that make
// its on_change fingerprint.
type EventInfo struct {
	Fields      []string `json:"fields"`
	Unique      []string `json:"unique"`
	Description string   `json:"description"`
	// Origin says where the entry comes from: "builtin", "registered" or "seen".
	Origin string `json:"origin"`
}

// crudEntities are the Kong entities whose changes the crud source announces.
var crudEntities = []string{
	"consumers", "services", "routes", "plugins", "upstreams", "targets", "certificates",
	"snis", "ca_certificates", "admins", "rbac_users", "rbac_roles", "workspaces",
	"consumer_groups", "keys", "key_sets", "vaults", "event_hooks",
}

var crudFields = []string{"operation", "entity", "old_entity", "schema"}

func builtinSources() map[string]map[string]EventInfo {
	rl := EventInfo{
		Fields:      []string{"consumer", "ip", "service", "rate", "limit", "window"},
		Unique:      []string{"consumer", "ip", "service"},
		Description: "Run an event when a rate limit has been exceeded",
		Origin:      "builtin",
	}
	aiRL := rl
	aiRL.Description = "Run an event when an AI rate limit has been exceeded"
	m := map[string]map[string]EventInfo{
		"dao:crud": {
			"create": {Fields: crudFields, Unique: []string{}, Description: "Run an event on any create operation", Origin: "builtin"},
			"update": {Fields: crudFields, Unique: []string{}, Description: "Run an event on any update operation", Origin: "builtin"},
			"delete": {Fields: crudFields, Unique: []string{}, Description: "Run an event on any delete operation", Origin: "builtin"},
		},
		"balancer": {
			"health": {
				Fields:      []string{"upstream_id", "ip", "port", "hostname", "health"},
				Unique:      []string{},
				Description: "Run an event when a target's health changes",
				Origin:      "builtin",
			},
		},
		"rate-limiting-advanced":    {"rate-limit-exceeded": rl},
		"ai-rate-limiting-advanced": {"rate-limit-exceeded": aiRL},
		"service-protection": {"rate-limit-exceeded": {
			Fields:      []string{"service", "rate", "limit", "window"},
			Unique:      []string{"service"},
			Description: "Run an event when a service's rate limit has been exceeded",
			Origin:      "builtin",
		}},
		"oas-validation": {"validation-failed": {
			Fields:      []string{"consumer", "ip", "service", "err"},
			Unique:      []string{"consumer", "ip", "service"},
			Description: "Run an event when OAS validation fails",
			Origin:      "builtin",
		}},
	}
	crud := map[string]EventInfo{}
	for _, ent := range crudEntities {
		crud[ent] = EventInfo{Fields: crudFields, Unique: []string{}, Description: "Run an event on any operation on " + ent, Origin: "builtin"}
		for _, op := range []string{"create", "update", "delete"} {
			crud[ent+":"+op] = EventInfo{Fields: crudFields, Unique: []string{}, Description: "Run an event on " + op + " of " + ent, Origin: "builtin"}
		}
	}
	m["crud"] = crud
	return m
}

// Catalogue is the set of known sources and events: Kong's built-in ones, those registered
// through the Admin API (durable, in the hooks topic) and those seen on the stream (local
// to this instance). Reads are lock-free snapshots.
type Catalogue struct {
	builtin    map[string]map[string]EventInfo
	registered atomic.Pointer[map[string]map[string]EventInfo]
	seenMu     sync.Mutex
	seen       atomic.Pointer[map[string]map[string]EventInfo]
}

// NewCatalogue returns a catalogue holding Kong's built-in sources.
func NewCatalogue() *Catalogue {
	c := &Catalogue{builtin: builtinSources()}
	empty := map[string]map[string]EventInfo{}
	c.registered.Store(&empty)
	seen := map[string]map[string]EventInfo{}
	c.seen.Store(&seen)
	return c
}

// Lookup returns what is known of source/event. Built-in wins over registered over seen.
func (c *Catalogue) Lookup(source, event string) (EventInfo, bool) {
	for _, m := range c.layers() {
		if info, ok := m[source][event]; ok {
			return info, true
		}
	}
	if source == "crud" {
		// Kong's crud source covers every entity, including ones added by plugins.
		return EventInfo{Fields: crudFields, Unique: []string{}, Origin: "builtin"}, true
	}
	return EventInfo{}, false
}

func (c *Catalogue) layers() [3]map[string]map[string]EventInfo {
	return [3]map[string]map[string]EventInfo{c.builtin, *c.registered.Load(), *c.seen.Load()}
}

// check reports the field and message for a hook subscribing to an unknown source/event.
func (c *Catalogue) check(source, event string) (field, msg string) {
	known := false
	for _, m := range c.layers() {
		if _, ok := m[source]; ok {
			known = true
		}
	}
	if !known && source != "crud" {
		return "source", "unknown source '" + source + "': register it with PUT /event-hooks/sources/" +
			source + "/{event} or produce one of its events first"
	}
	if event == "" {
		return "", ""
	}
	if _, ok := c.Lookup(source, event); !ok {
		return "event", "unknown event '" + event + "' of source '" + source + "'"
	}
	return "", ""
}

// All returns the merged catalogue, source → event → info.
func (c *Catalogue) All() map[string]map[string]EventInfo {
	out := map[string]map[string]EventInfo{}
	layers := c.layers()
	for i := len(layers) - 1; i >= 0; i-- {
		for src, evs := range layers[i] {
			if out[src] == nil {
				out[src] = map[string]EventInfo{}
			}
			for ev, info := range evs {
				out[src][ev] = info
			}
		}
	}
	return out
}

// Seen records that source/event occurred on the stream. Callers keep their own cache of
// what they reported, so this is called once per pair per caller, off the steady state.
func (c *Catalogue) Seen(source, event string) {
	if _, ok := c.Lookup(source, event); ok {
		return
	}
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	old := *c.seen.Load()
	if _, ok := old[source][event]; ok {
		return
	}
	next := copyLayer(old)
	if next[source] == nil {
		next[source] = map[string]EventInfo{}
	}
	next[source][event] = EventInfo{Fields: []string{}, Unique: []string{}, Origin: "seen"}
	c.seen.Store(&next)
}

// setRegistered replaces the registered layer; called by the Store as it applies records.
func (c *Catalogue) setRegistered(m map[string]map[string]EventInfo) {
	c.registered.Store(&m)
}

func copyLayer(m map[string]map[string]EventInfo) map[string]map[string]EventInfo {
	out := make(map[string]map[string]EventInfo, len(m)+1)
	for src, evs := range m {
		cp := make(map[string]EventInfo, len(evs)+1)
		for ev, info := range evs {
			cp[ev] = info
		}
		out[src] = cp
	}
	return out
}

// UniqueFields returns the fingerprint fields of source/event (nil: all of data).
func (c *Catalogue) UniqueFields(source, event string) []string {
	info, ok := c.Lookup(source, event)
	if !ok || len(info.Unique) == 0 {
		return nil
	}
	return info.Unique
}

// ParentEvent returns the event a hierarchical event also matches ("consumers:create" →
// "consumers" for crud), or "".
func ParentEvent(source, event string) string {
	if source != "crud" {
		return ""
	}
	if i := strings.IndexByte(event, ':'); i > 0 {
		return event[:i]
	}
	return ""
}
