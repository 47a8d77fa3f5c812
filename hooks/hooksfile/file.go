// Package hooksfile is hooks as code: a file (YAML or JSON) naming many hooks, the plan
// that brings the Admin API's hooks to what the file says (create, update and, with
// prune, delete the hooks an earlier apply created that the file no longer names), and
// the dump that writes the current hooks in the same format.
//
// A hook is identified by its id when the file gives one, else by its name; a hook
// created from a name gets an id derived from it (NameID), so that instances applying
// the same file at once write the same hook. The hooks topic stays the one source of
// truth: a file is applied through the Admin API, with its validation.
package hooksfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/eventhooks/eventhooks/hooks"
)

// ManagedTag marks the hooks an apply wrote: prune deletes only those.
const ManagedTag = "managed-by:eventhooks-apply"

// ErrInvalid is matched (errors.Is) by every error that a file or one of its hooks is
// wrong; nothing has been changed when it is returned.
var ErrInvalid = errors.New("invalid hooks file")

// serverFields are entity fields the server keeps: a file setting them is refused rather
// than silently ignored.
var serverFields = []string{"created_at", "updated_at", "secrets"}

// Entry is one hook of a file.
type Entry struct {
	// Key identifies the hook: "id:<uuid>" or "name:<name>".
	Key string
	// Line is where the hook starts in the file (1-based).
	Line int
	// Hook is the hook as the file gives it, with ${VAR} references expanded; it has not
	// been validated.
	Hook *hooks.Hook
}

// Label names the entry in messages: its name, else its id.
func (e *Entry) Label() string {
	if e.Hook.Name != nil && *e.Hook.Name != "" {
		return *e.Hook.Name
	}
	return e.Hook.ID
}

// File is a parsed hooks file.
type File struct {
	// Entries are the hooks in file order.
	Entries []*Entry
}

// fileError is an ErrInvalid error naming the file position.
func fileError(line int, label, format string, args ...any) error {
	where := ""
	switch {
	case line > 0 && label != "":
		where = fmt.Sprintf("line %d (hook %s): ", line, label)
	case line > 0:
		where = fmt.Sprintf("line %d: ", line)
	}
	return fmt.Errorf("%w: %s%s", ErrInvalid, where, fmt.Sprintf(format, args...))
}

// Parse reads a hooks file: a YAML or JSON document `{"hooks": [hook, …]}`, each hook in
// the Admin API's JSON form with `id` or `name` set. ${VAR} in a string value is replaced
// by the variable's value as lookup returns it (os.LookupEnv); VAR is upper case, digits
// and underscores, so that a lambda's `${x}` is left alone, and `$${` writes `${`. An
// unset variable, an unknown field, a server-kept field, a duplicate id or name is an
// ErrInvalid error.
func Parse(data []byte, lookup func(string) (string, bool)) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	list, err := hooksList(&doc)
	if err != nil {
		return nil, err
	}
	f := &File{}
	seen := map[string]int{}
	for _, n := range list {
		e, err := parseEntry(n, lookup)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[e.Key]; dup {
			return nil, fileError(e.Line, e.Label(), "%s is also the hook of line %d", strings.Replace(e.Key, ":", " ", 1), first)
		}
		seen[e.Key] = e.Line
		if e.Hook.Name != nil && *e.Hook.Name != "" && e.Hook.ID != "" {
			byName := "name:" + *e.Hook.Name
			if first, dup := seen[byName]; dup {
				return nil, fileError(e.Line, e.Label(), "the name is also that of the hook of line %d", first)
			}
			seen[byName] = e.Line
		}
		f.Entries = append(f.Entries, e)
	}
	return f, nil
}

// hooksList returns the sequence under the document's "hooks" key.
func hooksList(doc *yaml.Node) ([]*yaml.Node, error) {
	if doc.Kind == 0 {
		return nil, nil // an empty file names no hooks
	}
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fileError(root.Line, "", `expected a mapping with a "hooks" list`)
	}
	var list []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "hooks" {
			return nil, fileError(k.Line, "", "unknown key %q (only \"hooks\")", k.Value)
		}
		if v.Tag == "!!null" {
			continue
		}
		if v.Kind != yaml.SequenceNode {
			return nil, fileError(v.Line, "", `"hooks" must be a list`)
		}
		list = v.Content
	}
	return list, nil
}

// parseEntry decodes one hook node.
func parseEntry(n *yaml.Node, lookup func(string) (string, bool)) (*Entry, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fileError(n.Line, "", "%v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fileError(n.Line, "", "a hook must be a mapping")
	}
	label, _ := m["name"].(string)
	for _, f := range serverFields {
		if _, set := m[f]; set {
			return nil, fileError(n.Line, label, "%s is kept by the server: remove it from the file", f)
		}
	}
	expanded, err := expand(m, lookup)
	if err != nil {
		return nil, fileError(n.Line, label, "%v", err)
	}
	body, err := json.Marshal(expanded)
	if err != nil {
		return nil, fileError(n.Line, label, "cannot encode as JSON: %v", err)
	}
	h, err := hooks.ParseHook(body)
	if err != nil {
		return nil, fileError(n.Line, label, "%v", err)
	}
	e := &Entry{Line: n.Line, Hook: h}
	switch {
	case h.ID != "":
		id, err := uuid.Parse(h.ID)
		if err != nil || len(h.ID) != 36 {
			return nil, fileError(n.Line, label, "id: expected a uuid")
		}
		h.ID = id.String()
		e.Key = "id:" + h.ID
	case h.Name != nil && *h.Name != "":
		e.Key = "name:" + *h.Name
	default:
		return nil, fileError(n.Line, "", "a hook needs a name (or an id): it is how a later apply finds it")
	}
	return e, nil
}

// varRe matches a ${VAR} reference, or the escape $${.
var varRe = regexp.MustCompile(`\$\$\{|\$\{([A-Z_][A-Z0-9_]*)\}`)

// expand returns v with ${VAR} references replaced in every string value.
func expand(v any, lookup func(string) (string, bool)) (any, error) {
	switch t := v.(type) {
	case string:
		return expandString(t, lookup)
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			y, err := expand(x, lookup)
			if err != nil {
				return nil, err
			}
			out[k] = y
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			y, err := expand(x, lookup)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	}
	return v, nil
}

func expandString(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var missing []string
	out := varRe.ReplaceAllStringFunc(s, func(ref string) string {
		if ref == "$${" {
			return "${"
		}
		name := ref[2 : len(ref)-1]
		val, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}

// nameSpace is the namespace of the ids NameID derives.
var nameSpace = uuid.MustParse("6f0c1f4e-5d8a-4c3e-9b7a-2e5d0c9a1b37")

// NameID returns the id of a hook created from a file by name: the same for every apply
// of that name, so that concurrent applies (several instances with --hooks-file) upsert
// one hook instead of creating one each.
func NameID(name string) string { return uuid.NewSHA1(nameSpace, []byte(name)).String() }
