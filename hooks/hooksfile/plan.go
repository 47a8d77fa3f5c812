package hooksfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

// Op is what a change does to a hook.
type Op string

// The changes a plan makes.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Options are how a plan checks and what it may delete.
type Options struct {
	// Prune deletes the hooks tagged ManagedTag that the file does not name.
	Prune bool
	// Catalogue checks sources and events as the server does; nil skips that check.
	Catalogue *hooks.Catalogue
	// Check compiles a validated hook as the server does (templates, scripts); nil: none.
	Check func(*hooks.Hook) error
	// Now is the validation clock (default time.Now).
	Now func() time.Time
}

// FieldChange is one field an update changes: a dotted path and its JSON values before
// and after ("" when absent).
type FieldChange struct {
	Path     string
	Old, New string
}

// Change is one write of a plan.
type Change struct {
	Op    Op
	Label string
	// Hook is what is written (create, update), or the hook deleted.
	Hook *hooks.Hook
	// Fields are the fields an update changes.
	Fields []FieldChange
}

// Plan is the writes that bring the current hooks to a file's.
type Plan struct {
	// Changes are in the order they are applied: deletes first (a pruned hook may hold a
	// name the file gives another id), then creates and updates in file order.
	Changes []Change
}

// serverKept are the entity fields a plan does not compare: the server sets them.
var serverKept = append([]string{"id"}, serverFields...)

// NewPlan validates every hook of f against the current hooks (all of them, as the
// Admin API lists them with their secrets) and returns the plan, or an ErrInvalid error
// naming every hook that is wrong: a plan is all or nothing.
func NewPlan(f *File, current []*hooks.Hook, opt Options) (*Plan, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	byID := map[string]*hooks.Hook{}
	byName := map[string]*hooks.Hook{}
	for _, h := range current {
		byID[h.ID] = h
		if h.Name != nil && *h.Name != "" {
			byName[*h.Name] = h
		}
	}
	var (
		p       Plan
		errs    []error
		targets = map[string]*Entry{}
		writes  []Change
	)
	for _, e := range f.Entries {
		cur := match(e, byID, byName)
		c, err := change(e, cur, opt)
		if err == nil && targets[c.Hook.ID] != nil {
			err = fmt.Errorf("is the same hook (%s) as the hook of line %d", c.Hook.ID, targets[c.Hook.ID].Line)
		}
		if err != nil {
			errs = append(errs, fileError(e.Line, e.Label(), "%v", err))
			continue
		}
		targets[c.Hook.ID] = e
		if c.Op != "" {
			writes = append(writes, c)
		}
	}
	deleted := map[string]bool{}
	if opt.Prune {
		for _, h := range current {
			if targets[h.ID] == nil && slices.Contains(h.Tags, ManagedTag) {
				deleted[h.ID] = true
				p.Changes = append(p.Changes, Change{Op: OpDelete, Label: label(h), Hook: h})
			}
		}
	}
	for id, e := range targets {
		if err := nameConflict(e, id, current, deleted); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.Changes = append(p.Changes, writes...)
	return &p, nil
}

// match returns the current hook an entry names: by id, else by name, else the one a
// previous apply created from that name.
func match(e *Entry, byID, byName map[string]*hooks.Hook) *hooks.Hook {
	if e.Hook.ID != "" {
		return byID[e.Hook.ID]
	}
	if h := byName[*e.Hook.Name]; h != nil {
		return h
	}
	return byID[NameID(*e.Hook.Name)]
}

// change returns the write that makes cur what e says (Op "" when it already is),
// validating e's hook as the Admin API will.
func change(e *Entry, cur *hooks.Hook, opt Options) (Change, error) {
	h := e.Hook.Clone()
	switch {
	case cur != nil:
		h.ID = cur.ID
	case h.ID == "":
		h.ID = NameID(*h.Name)
	}
	if !slices.Contains(h.Tags, ManagedTag) {
		h.Tags = append(h.Tags, ManagedTag)
	}
	want := h.Clone()
	if cur != nil {
		want.CreatedAt = cur.CreatedAt
	}
	if err := hooks.Validate(want, opt.Catalogue, opt.Now()); err != nil {
		return Change{}, err
	}
	if opt.Check != nil {
		if err := opt.Check(want); err != nil {
			return Change{}, err
		}
	}
	c := Change{Label: e.Label(), Hook: h}
	if cur == nil {
		c.Op = OpCreate
		return c, nil
	}
	fields, err := diff(cur, want)
	if err != nil {
		return Change{}, err
	}
	if len(fields) > 0 {
		c.Op, c.Fields = OpUpdate, fields
	}
	return c, nil
}

// nameConflict refuses a hook whose name another hook that stays already has: the
// Admin API would refuse it half-way through the apply.
func nameConflict(e *Entry, id string, current []*hooks.Hook, deleted map[string]bool) error {
	name := e.Hook.Name
	if name == nil || *name == "" {
		return nil
	}
	for _, o := range current {
		if o.ID != id && !deleted[o.ID] && o.Name != nil && *o.Name == *name {
			hint := "delete or rename it"
			if slices.Contains(o.Tags, ManagedTag) {
				hint = "--prune deletes it"
			}
			return fileError(e.Line, e.Label(), "the name is taken by hook %s, which the file does not name (%s)", o.ID, hint)
		}
	}
	return nil
}

// diff returns the fields that differ between two validated hooks, server-kept fields
// aside.
func diff(old, want *hooks.Hook) ([]FieldChange, error) {
	a, err := flatten(old)
	if err != nil {
		return nil, err
	}
	b, err := flatten(want)
	if err != nil {
		return nil, err
	}
	paths := slices.Sorted(maps.Keys(a))
	for p := range b {
		if _, ok := a[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var out []FieldChange
	for _, p := range paths {
		if a[p] != b[p] {
			out = append(out, FieldChange{Path: p, Old: a[p], New: b[p]})
		}
	}
	return out, nil
}

// flatten returns a hook's fields as dotted paths to JSON values: objects are walked,
// arrays and scalars are values. Server-kept fields and nulls are left out.
func flatten(h *hooks.Hook) (map[string]string, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode hook %s: %w", h.ID, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode hook %s: %w", h.ID, err)
	}
	for _, k := range serverKept {
		delete(m, k)
	}
	out := map[string]string{}
	walk("", m, out)
	return out, nil
}

func walk(prefix string, m map[string]json.RawMessage, out map[string]string) {
	for k, v := range m {
		path := prefix + k
		var sub map[string]json.RawMessage
		switch {
		case string(v) == "null":
		case len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &sub) == nil:
			walk(path+".", sub, out)
		default:
			var buf bytes.Buffer
			if json.Compact(&buf, v) != nil {
				buf.Reset()
				buf.Write(v)
			}
			out[path] = buf.String()
		}
	}
}

// sensitive reports whether a field path holds a secret: config.secret, and anything
// named like a credential (a header such as Authorization or X-Api-Key).
func sensitive(path string) bool {
	last := strings.ToLower(path[strings.LastIndexByte(path, '.')+1:])
	for _, w := range []string{"secret", "token", "password", "authorization", "api-key", "apikey", "api_key"} {
		if strings.Contains(last, w) {
			return true
		}
	}
	return false
}

// label names a hook in messages: its name, else its id.
func label(h *hooks.Hook) string {
	if h.Name != nil && *h.Name != "" {
		return *h.Name
	}
	return h.ID
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// Count returns how many changes of op the plan holds.
func (p *Plan) Count(op Op) int {
	n := 0
	for _, c := range p.Changes {
		if c.Op == op {
			n++
		}
	}
	return n
}

// Print writes the plan for a person: one line per change, the fields an update changes
// under it, secret values masked.
func (p *Plan) Print(w io.Writer) error {
	var b strings.Builder
	for _, c := range p.Changes {
		b.WriteString(c.line())
		for _, f := range c.Fields {
			if sensitive(f.Path) {
				fmt.Fprintf(&b, "    %s: %s -> %s (secret: values hidden)\n", f.Path, orAbsent(masked(f.Old)), orAbsent(masked(f.New)))
				continue
			}
			fmt.Fprintf(&b, "    %s: %s -> %s\n", f.Path, orAbsent(f.Old), orAbsent(f.New))
		}
	}
	fmt.Fprintf(&b, "%s\n", p.Summary())
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is one line: how many hooks the plan creates, updates and deletes.
func (p *Plan) Summary() string {
	if p.Empty() {
		return "no changes"
	}
	return fmt.Sprintf("%d to create, %d to update, %d to delete", p.Count(OpCreate), p.Count(OpUpdate), p.Count(OpDelete))
}

func (c *Change) line() string {
	sign := map[Op]string{OpCreate: "+", OpUpdate: "~", OpDelete: "-"}[c.Op]
	detail := c.Hook.Source
	if ev := c.Hook.EventName(); ev != "" {
		detail += "/" + ev
	}
	return fmt.Sprintf("%s %s %s (%s, %s, id %s)\n", sign, c.Op, c.Label, detail, c.Hook.Handler, c.Hook.ID)
}

// masked hides a secret value, keeping whether there is one.
func masked(v string) string {
	if v == "" {
		return ""
	}
	return `"***"`
}

func orAbsent(v string) string {
	if v == "" {
		return "(absent)"
	}
	return v
}
