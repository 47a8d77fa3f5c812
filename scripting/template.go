package scripting

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"time"
)

// Defaults of TemplateLimits (DefaultMaxOutputBytes also of RuntimeConfig).
const (
	// DefaultMaxOutputBytes caps a rendered template and a lambda's JSON result.
	DefaultMaxOutputBytes = 1 << 20
	// DefaultTemplateTimeout bounds one template render. A render takes microseconds;
	// the limit exists to stop runaway loops, and is generous because it is measured in
	// wall-clock time, which includes waiting for a CPU on a loaded host.
	DefaultTemplateTimeout = 500 * time.Millisecond
)

// TemplateOption configures CompileTemplate. TemplateLimits is one.
type TemplateOption interface {
	applyTemplate(*TemplateLimits)
}

// TemplateLimits bounds what one Render may produce and how long it may run. A zero
// field takes its default. Pass it to CompileTemplate:
//
//	CompileTemplate("body", src, TemplateLimits{MaxOutputBytes: 64 << 10})
type TemplateLimits struct {
	// MaxOutputBytes caps the rendered output; Render stops writing as soon as the cap is
	// crossed and returns ErrOutputTooLarge. Default DefaultMaxOutputBytes (1 MiB).
	MaxOutputBytes int
	// Timeout bounds one Render; it is checked as output is written and at every range
	// iteration and template call, so a loop that writes nothing is caught too. Default
	// DefaultTemplateTimeout (500 ms).
	Timeout time.Duration
}

func (l TemplateLimits) applyTemplate(c *TemplateLimits) {
	if l.MaxOutputBytes > 0 {
		c.MaxOutputBytes = l.MaxOutputBytes
	}
	if l.Timeout > 0 {
		c.Timeout = l.Timeout
	}
}

// Template is a compiled template. It is immutable and safe for concurrent Render calls:
// compile once per hook version and share it.
type Template struct {
	name   string
	limits TemplateLimits
	// segs is the fast path, set when the template is only text and field paths (the
	// common Kong case); tmpl is nil then.
	segs []segment
	tmpl *template.Template
}

// segment is literal text (path == nil) or a field path to print.
type segment struct {
	text string
	path []string
}

// helperFuncs is the FuncMap with the default limit; CompileTemplate builds one per
// template with the template's own.
var helperFuncs = funcMap(DefaultMaxOutputBytes)

// CompileTemplate compiles a Go text/template for the webhook-custom handler. name
// identifies it in errors ("payload.text", "body", "url").
//
// Templates see the map EventContext builds: the fields of the event data at the top
// level plus "source" and "event", so `{{ .entity.username }}` and `{{ .event }}`. A
// missing field, a JSON null, or a field of something that is not an object renders as
// the empty string rather than "<no value>" or an error; an object or a list prints as
// JSON; numbers print as JavaScript (and Kong) print them: 8000, 0.5, 1e+21.
//
// Kong's syntax is accepted unchanged and translated before parsing:
//   - `{{ entity.username }}` (an action that is only a dotted path, including bare
//     names such as `{{ event }}`) becomes `{{ .entity.username }}`; a bare name that is
//     a template function or keyword (`{{ now }}`, `{{ end }}`) stays Go syntax, and
//     path segments that are not Go identifiers (`{{ entity.user-name }}`) are looked up
//     by name;
//   - `{* entity.username *}`, Kong's raw output, becomes the same action; other
//     expressions inside `{* *}` are rejected;
//   - `{% … %}` (Lua code) is rejected: Lua blocks are not supported.
//
// Real Go actions (`{{ .x }}`, `{{ if … }}`, `{{ range … }}`, pipelines, function calls
// such as `{{ json .entity }}`) are left alone. Unlike Kong, whose lua-resty-template
// HTML-escapes `{{ }}` output, nothing is escaped: `{{ }}` and `{* *}` both print raw
// values, which is what JSON and form bodies need.
//
// Helper functions: json, b64enc, b64dec, hmac_sha256 (key msg, hex), sha256 (hex),
// upper, lower, trim, default (def value), now (RFC 3339 UTC), unix_now, join (sep
// list), replace (old new s), quote (a JSON string literal), plus text/template's own.
//
// Errors are *TemplateError values carrying the line in src.
func CompileTemplate(name, src string, opts ...TemplateOption) (*Template, error) {
	t := &Template{name: name, limits: TemplateLimits{MaxOutputBytes: DefaultMaxOutputBytes, Timeout: DefaultTemplateTimeout}}
	for _, o := range opts {
		if o != nil {
			o.applyTemplate(&t.limits)
		}
	}
	translated, err := translateKong(name, src)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(name).Option("missingkey=default").Funcs(funcMap(t.limits.MaxOutputBytes)).Parse(translated)
	if err != nil {
		return nil, parseError(name, err)
	}
	if segs, ok := fastSegments(tmpl); ok {
		t.segs = segs
		return t, nil
	}
	for _, tt := range tmpl.Templates() {
		rewriteTree(tt.Tree)
	}
	t.tmpl = tmpl
	return t, nil
}

// Name returns the name given to CompileTemplate.
func (t *Template) Name() string { return t.name }

// Render appends the template's output for ctx (normally built by EventContext) to dst
// and returns the extended slice. On error dst is returned unchanged (truncated to its
// original length) with an error wrapping ErrOutputTooLarge, ErrTimeout, or ErrThrown
// and the failing helper's or action's error. ctx is only read, so one context may be shared by the hooks of an event.
func (t *Template) Render(dst []byte, ctx map[string]any) ([]byte, error) {
	start := len(dst)
	if t.tmpl == nil {
		for _, s := range t.segs {
			if s.path == nil {
				dst = append(dst, s.text...)
			} else {
				dst = appendValue(dst, fieldHelper(ctx, s.path...))
			}
			if len(dst)-start > t.limits.MaxOutputBytes {
				return dst[:start], t.tooLarge()
			}
		}
		return dst, nil
	}
	w := writerPool.Get().(*limitWriter)
	*w = limitWriter{buf: dst, start: start, max: t.limits.MaxOutputBytes, deadline: time.Now().Add(t.limits.Timeout)}
	err := t.tmpl.Execute(w, ctx)
	dst = w.buf
	*w = limitWriter{}
	writerPool.Put(w)
	switch {
	case err == nil:
		return dst, nil
	case errors.Is(err, ErrOutputTooLarge):
		return dst[:start], t.tooLarge()
	case errors.Is(err, ErrTimeout):
		return dst[:start], fmt.Errorf("cannot render template %s: %w (after %v)", t.name, ErrTimeout, t.limits.Timeout)
	}
	return dst[:start], fmt.Errorf("cannot render template %s: %w", t.name, thrownError{err})
}

// thrownError is the error of a template whose execution failed (a helper's error, an
// action on a value it cannot handle): it reads as err and wraps both ErrThrown and err.
type thrownError struct{ err error }

// Error implements error.
func (e thrownError) Error() string { return e.err.Error() }

// Unwrap returns ErrThrown and the execution error.
func (e thrownError) Unwrap() []error { return []error{ErrThrown, e.err} }

// RenderEvent is Render for an event's EventData: a template of text and field paths
// reads the parsed data directly, any other renders with EventContext's map, built once
// per EventData.
func (t *Template) RenderEvent(dst []byte, d *EventData) ([]byte, error) {
	if t.tmpl != nil {
		return t.Render(dst, d.context())
	}
	start := len(dst)
	for _, s := range t.segs {
		if s.path == nil {
			dst = append(dst, s.text...)
		} else {
			dst = d.appendField(dst, s.path)
		}
		if len(dst)-start > t.limits.MaxOutputBytes {
			return dst[:start], t.tooLarge()
		}
	}
	return dst, nil
}

func (t *Template) tooLarge() error {
	return fmt.Errorf("cannot render template %s: %w (%d bytes)", t.name, ErrOutputTooLarge, t.limits.MaxOutputBytes)
}

// appendValue prints v as a template action prints it after printHelper.
func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return dst
	case string:
		return append(dst, x...)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case float64:
		return appendFloat(dst, x)
	case bool:
		return strconv.AppendBool(dst, x)
	case map[string]any, []any:
		return append(dst, toString(x)...)
	}
	return fmt.Append(dst, v)
}

// limitWriter collects output up to max bytes and enforces the deadline. The compiler
// makes every range iteration and template call write (an empty string), so a loop that
// prints nothing still passes through here.
type limitWriter struct {
	buf        []byte
	start, max int
	writes     int
	deadline   time.Time
}

var writerPool = sync.Pool{New: func() any { return new(limitWriter) }}

func (w *limitWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes&7 == 0 && time.Now().After(w.deadline) {
		return 0, ErrTimeout
	}
	if len(w.buf)-w.start+len(p) > w.max {
		return 0, ErrOutputTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// parseError turns text/template's "template: NAME:LINE: MSG" into a TemplateError.
func parseError(name string, err error) *TemplateError {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return &TemplateError{Name: name, Message: strings.TrimPrefix(msg, "template: ")}
	}
	lineStr, after, ok := strings.Cut(rest, ":")
	line, convErr := strconv.Atoi(lineStr)
	if !ok || convErr != nil {
		return &TemplateError{Name: name, Message: strings.TrimSpace(rest)}
	}
	// Some errors carry a column ("LINE:COL: MSG"); the line is what users need.
	if col, tail, ok := strings.Cut(after, ":"); ok {
		if _, err := strconv.Atoi(col); err == nil {
			after = tail
		}
	}
	return &TemplateError{Name: name, Line: line, Message: strings.TrimSpace(after)}
}

// translateKong rewrites Kong's template syntax into Go's, keeping every newline so that
// line numbers in parse errors still point into src.
func translateKong(name, src string) (string, error) {
	if !strings.Contains(src, "{") {
		return src, nil
	}
	var b strings.Builder
	b.Grow(len(src) + 16)
	i := 0
	for i < len(src) {
		j := strings.IndexByte(src[i:], '{')
		if j < 0 || i+j+1 >= len(src) {
			b.WriteString(src[i:])
			break
		}
		p := i + j
		b.WriteString(src[i:p])
		switch src[p+1] {
		case '{':
			end := strings.Index(src[p+2:], "}}")
			if end < 0 {
				b.WriteString(src[p:])
				return b.String(), nil
			}
			content := src[p+2 : p+2+end]
			i = p + 2 + end + 2
			left, right := "", ""
			inner := content
			if len(inner) >= 2 && inner[0] == '-' && isSpace(inner[1]) {
				left, inner = "- ", inner[2:]
			}
			if n := len(inner); n >= 2 && inner[n-1] == '-' && isSpace(inner[n-2]) {
				right, inner = " -", inner[:n-2]
			}
			if expr, ok := kongPath(strings.TrimSpace(inner)); ok {
				b.WriteString("{{" + left + expr + right + "}}")
			} else {
				b.WriteString(src[p:i])
			}
		case '*':
			end := strings.Index(src[p+2:], "*}")
			if end < 0 {
				b.WriteByte('{')
				i = p + 1
				continue
			}
			inner := strings.TrimSpace(src[p+2 : p+2+end])
			expr, ok := kongPath(inner)
			if !ok {
				return "", &TemplateError{Name: name, Line: lineAt(src, p),
					Message: fmt.Sprintf("Kong raw output {* %s *} is supported only for field paths such as {* entity.username *}", inner)}
			}
			b.WriteString("{{" + expr + "}}")
			i = p + 2 + end + 2
		case '%':
			if !strings.Contains(src[p+2:], "%}") {
				b.WriteByte('{')
				i = p + 1
				continue
			}
			return "", &TemplateError{Name: name, Line: lineAt(src, p),
				Message: "Lua blocks {% … %} are not supported; use Go template actions such as {{ if .x }}…{{ end }}"}
		default:
			b.WriteByte('{')
			i = p + 1
		}
	}
	return b.String(), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func lineAt(src string, off int) int { return 1 + strings.Count(src[:off], "\n") }

// kongPath reports whether s is a Kong field path (entity.username) and returns the Go
// template expression for it.
func kongPath(s string) (string, bool) {
	if s == "" || !isIdentStart(s[0]) {
		return "", false
	}
	segs := strings.Split(s, ".")
	goIdents := true
	for _, seg := range segs {
		if seg == "" || seg[0] == '-' {
			return "", false
		}
		for k := 0; k < len(seg); k++ {
			c := seg[k]
			switch {
			case isIdentStart(c), c >= '0' && c <= '9' && k > 0:
			case c >= '0' && c <= '9', c == '-':
				goIdents = false
			default:
				return "", false
			}
		}
	}
	if len(segs) == 1 {
		if _, ok := helperFuncs[s]; ok || builtinNames[s] {
			return "", false
		}
	}
	if goIdents {
		return "." + s, true
	}
	var b strings.Builder
	b.WriteString(fnField + " .")
	for _, seg := range segs {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(seg))
	}
	return b.String(), true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// fastSegments recognises a template made only of text and field paths and returns it as
// segments that Render prints without text/template.
func fastSegments(t *template.Template) ([]segment, bool) {
	if len(t.Templates()) != 1 || t.Tree == nil || t.Tree.Root == nil {
		return nil, false
	}
	var segs []segment
	for _, n := range t.Tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			segs = append(segs, segment{text: string(n.Text)})
		case *parse.ActionNode:
			path, ok := simplePath(n.Pipe)
			if !ok {
				return nil, false
			}
			segs = append(segs, segment{path: path})
		default:
			return nil, false
		}
	}
	if segs == nil {
		segs = []segment{}
	}
	return segs, true
}

// simplePath returns the keys of a pipeline that is only `.a.b` or `_eh_field . "a" "b"`.
func simplePath(p *parse.PipeNode) ([]string, bool) {
	if p == nil || len(p.Decl) > 0 || len(p.Cmds) != 1 {
		return nil, false
	}
	args := p.Cmds[0].Args
	if len(args) == 1 {
		f, ok := args[0].(*parse.FieldNode)
		if !ok {
			return nil, false
		}
		return f.Ident, true
	}
	if id, ok := args[0].(*parse.IdentifierNode); !ok || id.Ident != fnField || len(args) < 3 {
		return nil, false
	}
	if _, ok := args[1].(*parse.DotNode); !ok {
		return nil, false
	}
	path := make([]string, 0, len(args)-2)
	for _, a := range args[2:] {
		s, ok := a.(*parse.StringNode)
		if !ok {
			return nil, false
		}
		path = append(path, s.Text)
	}
	return path, true
}

// rewriteTree makes a parsed template Kong-tolerant and bounded:
//   - every field access (.a.b, $x.a, (pipe).a) outside a method-call position becomes
//     `_eh_field <base> "a" "b"`, which yields nil instead of failing on a missing key, a
//     null or a non-object;
//   - every printing action ends with `| _eh_print`, so nil prints as "";
//   - every template body and range body starts with `{{ _eh_tick }}`, whose (empty)
//     write lets the output writer enforce the deadline in loops that print nothing.
func rewriteTree(tr *parse.Tree) {
	if tr == nil || tr.Root == nil {
		return
	}
	rw := rewriter{tr: tr}
	rw.list(tr.Root, true)
}

type rewriter struct{ tr *parse.Tree }

func (rw rewriter) list(l *parse.ListNode, tick bool) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		rw.node(n)
	}
	if tick {
		action := &parse.ActionNode{NodeType: parse.NodeAction, Pos: l.Pos, Pipe: &parse.PipeNode{
			NodeType: parse.NodePipe, Pos: l.Pos,
			Cmds: []*parse.CommandNode{rw.command(l.Pos, rw.ident(fnTick, l.Pos))},
		}}
		l.Nodes = append([]parse.Node{action}, l.Nodes...)
	}
}

func (rw rewriter) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ActionNode:
		rw.pipe(n.Pipe)
		if n.Pipe != nil && len(n.Pipe.Decl) == 0 {
			n.Pipe.Cmds = append(n.Pipe.Cmds, rw.command(n.Pos, rw.ident(fnPrint, n.Pos)))
		}
	case *parse.IfNode:
		rw.branch(&n.BranchNode, false)
	case *parse.WithNode:
		rw.branch(&n.BranchNode, false)
	case *parse.RangeNode:
		if n.List == nil {
			n.List = &parse.ListNode{NodeType: parse.NodeList, Pos: n.Pos}
		}
		rw.branch(&n.BranchNode, true)
	case *parse.TemplateNode:
		rw.pipe(n.Pipe)
	}
}

func (rw rewriter) branch(b *parse.BranchNode, loop bool) {
	rw.pipe(b.Pipe)
	rw.list(b.List, loop)
	rw.list(b.ElseList, false)
}

func (rw rewriter) pipe(p *parse.PipeNode) {
	if p == nil {
		return
	}
	for ci, c := range p.Cmds {
		for ai, a := range c.Args {
			if ai == 0 && (len(c.Args) > 1 || ci > 0) {
				// A method call (.Method arg) or a command fed by the previous one
				// (x | .f): keep text/template's semantics, only look inside.
				if pn, ok := a.(*parse.PipeNode); ok {
					rw.pipe(pn)
				}
				continue
			}
			c.Args[ai] = rw.arg(a)
		}
	}
}

func (rw rewriter) arg(a parse.Node) parse.Node {
	switch a := a.(type) {
	case *parse.FieldNode:
		return rw.fieldCall(a.Pos, &parse.DotNode{NodeType: parse.NodeDot, Pos: a.Pos}, a.Ident)
	case *parse.VariableNode:
		if len(a.Ident) > 1 {
			base := &parse.VariableNode{NodeType: parse.NodeVariable, Pos: a.Pos, Ident: a.Ident[:1]}
			return rw.fieldCall(a.Pos, base, a.Ident[1:])
		}
	case *parse.ChainNode:
		return rw.fieldCall(a.Pos, rw.arg(a.Node), a.Field)
	case *parse.PipeNode:
		rw.pipe(a)
	}
	return a
}

func (rw rewriter) fieldCall(pos parse.Pos, base parse.Node, keys []string) parse.Node {
	args := make([]parse.Node, 0, len(keys)+2)
	args = append(args, rw.ident(fnField, pos), base)
	for _, k := range keys {
		args = append(args, &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(k), Text: k})
	}
	return &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{rw.command(pos, args...)}}
}

func (rw rewriter) command(pos parse.Pos, args ...parse.Node) *parse.CommandNode {
	return &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: args}
}

func (rw rewriter) ident(name string, pos parse.Pos) *parse.IdentifierNode {
	return parse.NewIdentifier(name).SetTree(rw.tr).SetPos(pos)
}
