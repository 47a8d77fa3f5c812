package hooksfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/eventhooks/eventhooks/hooks"
)

// Dump formats.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// Dumped is a dump: the file, and the variables it references in place of secrets.
type Dumped struct {
	Data []byte
	// Vars are the ${VAR} references written in place of secret values (none when
	// revealed), each with the hook and field it stands for.
	Vars []string
}

// Dump writes hooks in the hooks-file format (FormatYAML or FormatJSON), ready for
// apply: server-kept fields and nulls are left out, a hook with a name is identified by
// it (no id). Secret values (see sensitive) are written as ${VAR} references named
// after the hook and field, unless reveal.
func Dump(list []*hooks.Hook, format string, reveal bool) (*Dumped, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	d := &Dumped{}
	for _, h := range list {
		n, err := hookNode(h)
		if err != nil {
			return nil, err
		}
		d.Vars = append(d.Vars, prepareStrings(n, "", envName(label(h)), label(h), reveal)...)
		seq.Content = append(seq.Content, n)
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "hooks"}, seq}}
	var err error
	switch format {
	case FormatYAML, "":
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err = enc.Encode(doc); err == nil {
			err = enc.Close()
		}
		d.Data = buf.Bytes()
	case FormatJSON:
		var v any
		if err = doc.Decode(&v); err == nil {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // scripts and templates stay readable
			enc.SetIndent("", "  ")
			err = enc.Encode(v)
			d.Data = buf.Bytes()
		}
	default:
		return nil, fmt.Errorf("unknown format %q (yaml or json)", format)
	}
	if err != nil {
		return nil, fmt.Errorf("encode hooks: %w", err)
	}
	return d, nil
}

// hookNode returns h as an ordered YAML mapping in the entity's field order, name
// first, without server-kept fields (id too when the name identifies the hook) and
// nulls, in block style.
func hookNode(h *hooks.Hook) (*yaml.Node, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode hook %s: %w", h.ID, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil { // JSON is YAML: the order is kept
		return nil, fmt.Errorf("decode hook %s: %w", h.ID, err)
	}
	n := doc.Content[0]
	drop := serverKept
	if h.Name == nil || *h.Name == "" {
		drop = serverFields // the id identifies it
	}
	tidy(n, drop)
	moveFirst(n, "name")
	return n, nil
}

// tidy removes the keys drop and null members from mapping n, and block-styles n and
// everything under it (strings that would read as another type stay quoted).
func tidy(n *yaml.Node, drop []string) {
	n.Style = 0
	if n.Kind == yaml.MappingNode {
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if slices.Contains(drop, k.Value) || v.Tag == "!!null" {
				continue
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		tidy(c, nil)
	}
}

// moveFirst moves the member key of mapping n to the front.
func moveFirst(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			pair := slices.Clone(n.Content[i : i+2])
			n.Content = slices.Concat(pair, slices.Delete(n.Content, i, i+2))
			return
		}
	}
}

// prepareStrings readies the strings under mapping or sequence n (at path prefix) for
// Parse: a "${" is written "$${", so that it reads back as it is, and unless reveal the
// value of a sensitive member becomes a ${ENV_FIELD} reference (env: the hook's
// variable prefix). It returns the references, described.
func prepareStrings(n *yaml.Node, prefix, env, hook string, reveal bool) []string {
	var vars []string
	for i, v := range n.Content {
		path := prefix + strconv.Itoa(i)
		if n.Kind == yaml.MappingNode {
			if i%2 == 0 {
				continue
			}
			path = prefix + n.Content[i-1].Value
		}
		switch {
		case v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode:
			vars = append(vars, prepareStrings(v, path+".", env, hook, reveal)...)
		case v.Kind != yaml.ScalarNode || v.Tag != "!!str":
		case !reveal && n.Kind == yaml.MappingNode && sensitive(path):
			name := env + "_" + envName(n.Content[i-1].Value)
			v.Value = "${" + name + "}"
			vars = append(vars, fmt.Sprintf("%s: %s of hook %s", name, path, hook))
		default:
			v.Value = strings.ReplaceAll(v.Value, "${", "$${")
		}
	}
	return vars
}

var notEnv = regexp.MustCompile(`[^A-Z0-9]+`)

// envName turns s into an environment variable name: upper case, other characters "_".
func envName(s string) string {
	n := strings.Trim(notEnv.ReplaceAllString(strings.ToUpper(s), "_"), "_")
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		n = "HOOK_" + n
	}
	return n
}
