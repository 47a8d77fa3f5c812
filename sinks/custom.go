package sinks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/jsonx"
	"github.com/eventhooks/eventhooks/scripting"
)

// customSink is the compiled webhook-custom handler: Kong's fully configurable request.
// Everything that does not depend on the event (literal parts, JSON keys, multipart part
// headers, the destination of config.url) is built here once; per event only the
// templates are rendered. Immutable after compileCustom except for the signer pool.
//
// The request, by method:
//   - GET and HEAD carry no body: the payload (templated when payload_format) becomes
//     the query string, a configured body is ignored, and nothing is signed (see
//     signer.signRequest); webhook-id and webhook-timestamp are still sent with a secret.
//   - Any other method sends config.body (templated when body_format) when it is
//     non-empty; else the payload encoded by the configured Content-Type: JSON for
//     application/json (and any +json type), a urlencoded form for
//     application/x-www-form-urlencoded, multipart/form-data otherwise, as Kong does when
//     no content type is set (the Content-Type then becomes multipart/form-data with the
//     boundary); else an empty body (Kong crashes here). Both signatures cover the exact
//     bytes sent.
//
// config.url is a template too (an extension: Kong sends it as is), so a path or a query
// may depend on the event; the host cannot, since hooks.Validate parses the URL. A
// rendered URL that names another destination (user@host tricks) is looked up in the
// pool as a per-event destination, under PoolConfig.MaxDestinations and the SSRF guard.
type customSink struct {
	hookID    string
	method    string
	query     bool // GET, HEAD: the payload goes to the query string, no body
	url       textPart
	sslVerify bool
	dest      destination // of config.url as configured
	ep        *endpoint
	pool      *Pool

	headers  []customHeader // config.headers but Content-Type, Host and framing
	host     textPart       // a configured Host header; hasHost
	hasHost  bool
	ctype    textPart // the configured Content-Type; hasCType
	hasCType bool
	enc      encoding // of a literal ctype

	body      textPart
	useBody   bool // a non-empty config.body: it wins over the payload
	payload   []customField
	boundary  string // multipart boundary, random per hook version
	boundaryB []byte

	needsCtx   bool // some part is a template: the event's template context is needed
	timeout    time.Duration
	circuitErr error    // of an attempt to ep the breaker turns away, built once
	gate       hookGate // the hook's own breaker and max backoff
	signing
}

// textPart is a configured string: literal, or a template rendered per event.
type textPart struct {
	lit  string
	tmpl *scripting.Template
}

func (p *textPart) appendTo(dst []byte, ctx *scripting.EventData) ([]byte, error) {
	if p.tmpl == nil {
		return append(dst, p.lit...), nil
	}
	return p.tmpl.RenderEvent(dst, ctx)
}

// customHeader is one configured header with its value: lit when literal, else value's
// template.
type customHeader struct {
	key   []byte
	lit   []byte
	value textPart
}

// customField is one payload field with its encodings' static parts.
type customField struct {
	value      textPart
	jsonKey    []byte // "name":
	formKey    []byte // name=  (quoted)
	partHeader []byte // Content-Disposition: form-data; name="name"\r\n\r\n
}

// encoding is how a payload becomes a body.
type encoding uint8

const (
	encMultipart encoding = iota // Kong's default when no content type is set
	encJSON
	encForm
)

// encodingOf picks the payload encoding of a Content-Type value.
func encodingOf[T string | []byte](ct T) encoding {
	s := string(ct)
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	switch {
	case strings.EqualFold(s, "application/json"):
		return encJSON
	case len(s) > 5 && strings.EqualFold(s[len(s)-5:], "+json"):
		return encJSON
	case strings.EqualFold(s, "application/x-www-form-urlencoded"):
		return encForm
	}
	return encMultipart
}

var (
	contentTypeMultipart = "multipart/form-data; boundary="
	headerContentType    = []byte("Content-Type")
)

func compileCustom(h *hooks.Hook, p *Pool) (*customSink, error) {
	cfg, err := httpConfig[hooks.WebhookCustomConfig](h, p, hooks.HandlerWebhookCustom)
	if err != nil {
		return nil, err
	}
	s := &customSink{hookID: h.ID, method: strings.ToUpper(cfg.Method), sslVerify: cfg.SSLVerify, pool: p, timeout: timeoutOf(h)}
	if s.method == "" {
		s.method = fasthttp.MethodPost
	}
	s.query = s.method == fasthttp.MethodGet || s.method == fasthttp.MethodHead

	tc := templateCompiler{}
	s.url = tc.compile("config.url", cfg.URL, true)
	names, err := headerNames(cfg.Headers)
	if err != nil {
		return nil, err
	}
	headersFormat := cfg.HeadersFormat != nil && *cfg.HeadersFormat
	for _, k := range names {
		v := cfg.Headers[k]
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("%w: config.headers.%s: value contains CR, LF or NUL", ErrInvalidConfig, k)
		}
		part := tc.compile("config.headers."+k, v, headersFormat)
		switch headerRole(k) {
		case roleFraming:
		case roleContentType:
			if !s.hasCType { // the first in sorted order ("Content-Type" before "content-type")
				s.ctype, s.hasCType = part, true
			}
		case roleHost:
			if !s.hasHost {
				s.host, s.hasHost = part, true
			}
		default:
			s.headers = append(s.headers, customHeader{key: []byte(k), lit: []byte(part.lit), value: part})
		}
	}
	if s.hasCType && s.ctype.tmpl == nil {
		s.enc = encodingOf(s.ctype.lit)
	}
	bodyFormat := cfg.BodyFormat == nil || *cfg.BodyFormat
	if cfg.Body != nil && *cfg.Body != "" {
		s.body, s.useBody = tc.compile("config.body", *cfg.Body, bodyFormat), true
	}
	payloadFormat := cfg.PayloadFormat == nil || *cfg.PayloadFormat
	keys := make([]string, 0, len(cfg.Payload))
	for k := range cfg.Payload {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := customField{value: tc.compile("config.payload."+k, cfg.Payload[k], payloadFormat)}
		f.jsonKey = append(jsonx.AppendString(nil, k, true), ':')
		f.formKey = append(fasthttp.AppendQuotedArg(nil, []byte(k)), '=')
		f.partHeader = []byte(`Content-Disposition: form-data; name="` + escapeQuotes(k) + "\"\r\n\r\n")
		s.payload = append(s.payload, f)
	}
	if err := tc.err(); err != nil {
		return nil, err
	}
	s.needsCtx = tc.templates > 0

	if s.dest, err = parseDestination(urlForDestination(cfg.URL), cfg.SSLVerify); err != nil {
		return nil, err
	}
	if s.ep, err = p.client(s.dest); err != nil {
		return nil, fmt.Errorf("cannot get a client for %s: %w", s.dest.addr, err)
	}
	s.circuitErr = s.ep.circuitError(s.hookID)
	s.ep = withPipeline(s, p, s.ep, s.dest, cfg.Pipelining, s.timeout) // the configured destination's only
	s.gate = p.hookGate(h)
	s.boundary = newBoundary()
	s.boundaryB = []byte(s.boundary)
	if err := s.setSecret(cfg.Secret, h.Secrets); err != nil {
		return nil, err
	}
	return s, nil
}

// urlForDestination returns a configured URL with its template actions blanked out, so
// its scheme and host can be parsed (a host is never templated: hooks.Validate parses the
// URL as given).
func urlForDestination(raw string) string {
	if !looksTemplated(raw) {
		return raw
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if j := strings.IndexAny(rest, "/?#{"); j >= 0 {
			return raw[:i+3+j]
		}
	}
	return raw
}

// looksTemplated reports whether s contains template syntax (Go's or Kong's); anything
// else renders as itself and is kept literal.
func looksTemplated(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{*") || strings.Contains(s, "{%")
}

// templateCompiler compiles a hook's templates, collecting every error as a schema
// violation on its field.
type templateCompiler struct {
	fields    map[string]string
	templates int
}

// compile returns the textPart of src: a template when format is set and src has
// template syntax, else the literal.
func (tc *templateCompiler) compile(field, src string, format bool) textPart {
	if !format || !looksTemplated(src) {
		return textPart{lit: src}
	}
	t, err := scripting.CompileTemplate(field, src)
	if err != nil {
		if tc.fields == nil {
			tc.fields = map[string]string{}
		}
		tc.fields[field] = templateMessage(err)
		return textPart{}
	}
	tc.templates++
	return textPart{tmpl: t}
}

func (tc *templateCompiler) err() error {
	if len(tc.fields) == 0 {
		return nil
	}
	return &hooks.SchemaError{Fields: tc.fields}
}

// templateMessage is the schema-violation message of a template error:
// "invalid template: line 2: unexpected "}" in operand".
func templateMessage(err error) string {
	var te *scripting.TemplateError
	if errors.As(err, &te) {
		if te.Line > 0 {
			return fmt.Sprintf("invalid template: line %d: %s", te.Line, te.Message)
		}
		return "invalid template: " + te.Message
	}
	return "invalid template: " + err.Error()
}

// escapeQuotes escapes a multipart field name as mime/multipart does.
func escapeQuotes(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// newBoundary returns a random multipart boundary.
func newBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "eventhooks-" + hex.EncodeToString(b[:])
}

// Handler implements Sink.
func (s *customSink) Handler() string { return hooks.HandlerWebhookCustom }

// Deliver implements Sink: one request built from the config and the event, signed over
// the body sent when the hook has a secret.
func (s *customSink) Deliver(ctx context.Context, ev *hooks.Event, lane *Lane) Result {
	start := time.Now()
	if res, stop := unusable(ctx, s.hookID, ev, start); stop {
		return res
	}
	if s.url.tmpl == nil { // a templated url may name another destination
		if res, away := s.ep.early(s.circuitErr, lane, s.gate.maxWait, start); away {
			return res
		}
	}
	return s.gate.run(lane, start, func(lane *Lane) (Result, verdict) {
		return s.deliver(ctx, ev, lane, start)
	})
}

// deliver makes the attempt: it builds the request, signs it and sends it. The verdict
// is what the attempt says about the hook, for its breaker: a failure when a template
// or script threw or timed out, else send's.
func (s *customSink) deliver(ctx context.Context, ev *hooks.Event, lane *Lane, start time.Time) (Result, verdict) {
	deadline := deadlineOf(ctx, start, s.timeout)
	req := fasthttp.AcquireRequest()
	buf := getBuffer()
	ep, err := s.build(req, buf, ev, lane)
	templateDuration.UpdateDuration(start)
	var (
		res Result
		v   = verdictNeutral
	)
	if err != nil {
		res = buildFailure(s.hookID, err)
		if isScriptFailure(err) { // the hook's own fault, like a 5xx of its endpoint
			v = verdictFailure
		}
	} else {
		s.signInto(req, s.hookID, ev, -1, start.Unix(), buf.B, !s.query)
		res, v = send(ep, req, deadline, s.hookID, lane, s.gate.maxWait)
	}
	fasthttp.ReleaseRequest(req)
	putBuffer(buf)
	return res, v
}

// isScriptFailure reports whether err is a template or script that threw or ran out of
// time: the hook's own fault, counted by its breaker.
func isScriptFailure(err error) bool {
	return errors.Is(err, scripting.ErrThrown) || errors.Is(err, scripting.ErrTimeout)
}

// build fills req for ev, the body going to buf (not copied into req: buf outlives it),
// and returns the endpoint to send it to. It renders in the lane's scratch space, in
// order: the payload values (GET puts them in the URL, other methods in the body), the
// URL, the headers, the body.
func (s *customSink) build(req *fasthttp.Request, buf *buffer, ev *hooks.Event, lane *Lane) (*endpoint, error) {
	b := customBuild{s: s, req: req, sc: lane.scratch[:0], marks: lane.marks[:0]}
	if s.needsCtx {
		b.tctx = lane.eventData(ev)
	}
	ep, err := b.build(buf)
	lane.scratch = b.sc
	if err == nil {
		lane.marks = b.marks
	}
	return ep, err
}

// customBuild is the state of one customSink.build.
type customBuild struct {
	s    *customSink
	req  *fasthttp.Request
	tctx *scripting.EventData // nil when no part is a template
	// sc holds the rendered payload values (sc[:values], value i ending at marks[i]),
	// then from mark on the rendered URL or header value being set.
	sc            []byte
	marks         []int
	values, mark  int
	encodePayload bool // the payload is sent, in the query string or as the body
}

func (b *customBuild) build(buf *buffer) (*endpoint, error) {
	s := b.s
	b.encodePayload = len(s.payload) > 0 && (s.query || !s.useBody)
	if b.encodePayload {
		if err := b.renderPayload(); err != nil {
			return nil, err
		}
	}
	b.values = len(b.sc)
	ep := s.ep
	if s.url.tmpl == nil && !(s.query && b.encodePayload) {
		b.req.SetRequestURI(s.url.lit) // the common case: a literal URL, no query to add
	} else {
		var err error
		if ep, err = b.url(); err != nil {
			return nil, err
		}
	}
	b.req.Header.SetMethod(s.method)
	ctype, enc, err := b.headers()
	if err != nil {
		return nil, err
	}
	if ctype, err = b.body(buf, ctype, enc); err != nil {
		return nil, err
	}
	switch {
	case s.query:
	case ctype != nil:
		b.req.Header.SetContentTypeBytes(ctype)
	default:
		b.req.Header.SetNoDefaultContentType(true) // as configured: none
	}
	if !s.query {
		b.req.SetBodyRaw(buf.B)
	}
	return ep, nil
}

// renderPayload renders the payload values into sc.
func (b *customBuild) renderPayload() error {
	var err error
	for i := range b.s.payload {
		if b.sc, err = b.s.payload[i].value.appendTo(b.sc, b.tctx); err != nil {
			return err
		}
		b.marks = append(b.marks, len(b.sc))
	}
	return nil
}

// value returns the i-th rendered payload value.
func (b *customBuild) value(i int) []byte {
	from := 0
	if i > 0 {
		from = b.marks[i-1]
	}
	return b.sc[from:b.marks[i]]
}

// url sets the request URI of a templated URL or one that takes the payload as its
// query string (GET and HEAD), and returns the endpoint it names (another one than the
// configured URL's only when the URL is a template).
func (b *customBuild) url() (*endpoint, error) {
	s := b.s
	var err error
	ep := s.ep
	if b.sc, err = s.url.appendTo(b.sc, b.tctx); err != nil {
		return nil, err
	}
	if s.url.tmpl != nil {
		if ep, err = s.endpointFor(b.sc[b.values:]); err != nil {
			return nil, err
		}
	}
	if s.query && b.encodePayload {
		if i := bytes.IndexByte(b.sc[b.values:], '#'); i >= 0 {
			b.sc = b.sc[:b.values+i] // a fragment is never sent; the query goes before it
		}
		sep := byte('?')
		if bytes.IndexByte(b.sc[b.values:], '?') >= 0 {
			sep = '&'
		}
		for i := range s.payload {
			b.sc = append(b.sc, sep)
			sep = '&'
			b.sc = append(b.sc, s.payload[i].formKey...)
			b.sc = fasthttp.AppendQuotedArg(b.sc, b.value(i))
		}
	}
	b.req.SetRequestURIBytes(b.sc[b.values:]) // copied
	return ep, nil
}

// headers sets the configured headers and Host, and returns the rendered Content-Type
// (nil when none is configured) with the payload encoding it selects.
func (b *customBuild) headers() (ctype []byte, enc encoding, err error) {
	s := b.s
	b.mark = len(b.sc)
	mark := b.mark
	for i := range s.headers {
		hv := &s.headers[i]
		if hv.value.tmpl == nil {
			b.req.Header.SetBytesKV(hv.key, hv.lit)
			continue
		}
		if b.sc, err = s.renderHeader(b.sc[:mark], &hv.value, b.tctx, hv.key); err != nil {
			return nil, 0, err
		}
		b.req.Header.SetBytesKV(hv.key, b.sc[mark:]) // copied
	}
	if s.hasHost {
		if b.sc, err = s.renderHeader(b.sc[:mark], &s.host, b.tctx, headerHost); err != nil {
			return nil, 0, err
		}
		b.req.UseHostHeader = true
		b.req.Header.SetHostBytes(b.sc[mark:])
	}
	enc = s.enc
	if s.hasCType {
		if b.sc, err = s.renderHeader(b.sc[:mark], &s.ctype, b.tctx, headerContentType); err != nil {
			return nil, 0, err
		}
		ctype = b.sc[mark:]
		if s.ctype.tmpl != nil {
			enc = encodingOf(ctype)
		}
	}
	return ctype, enc, nil
}

// body writes the body to buf.B: none for GET and HEAD, config.body when set, else the
// payload encoded by enc. It returns the Content-Type to send: ctype, or multipart's
// with its boundary.
func (b *customBuild) body(buf *buffer, ctype []byte, enc encoding) ([]byte, error) {
	s := b.s
	out := buf.B[:0]
	var err error
	switch {
	case s.query:
		// No body, no Content-Type.
	case s.useBody:
		out, err = s.body.appendTo(out, b.tctx)
		if err != nil {
			buf.B = out
			return nil, err
		}
	case b.encodePayload:
		switch enc {
		case encJSON:
			out = append(out, '{')
			for i := range s.payload {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, s.payload[i].jsonKey...)
				out = jsonx.AppendString(out, b.value(i), true)
			}
			out = append(out, '}')
		case encForm:
			for i := range s.payload {
				if i > 0 {
					out = append(out, '&')
				}
				out = append(out, s.payload[i].formKey...)
				out = fasthttp.AppendQuotedArg(out, b.value(i))
			}
		default:
			boundary := s.boundary
			if bytes.Contains(b.sc[:b.values], s.boundaryB) {
				boundary = newBoundary() // a value contains ours: never split a value
			}
			for i := range s.payload {
				out = append(out, "--"...)
				out = append(out, boundary...)
				out = append(out, "\r\n"...)
				out = append(out, s.payload[i].partHeader...)
				out = append(out, b.value(i)...)
				out = append(out, "\r\n"...)
			}
			out = append(out, "--"...)
			out = append(out, boundary...)
			out = append(out, "--\r\n"...)
			b.sc = append(append(b.sc[:b.mark], contentTypeMultipart...), boundary...)
			ctype = b.sc[b.mark:]
		}
	}
	buf.B = out
	return ctype, nil
}

// renderHeader appends the rendered value of a templated header to dst and checks that
// it cannot inject headers.
func (s *customSink) renderHeader(dst []byte, v *textPart, tctx *scripting.EventData, name []byte) ([]byte, error) {
	start := len(dst)
	dst, err := v.appendTo(dst, tctx)
	if err != nil {
		return dst, err
	}
	if !validHeaderValue(dst[start:]) {
		return dst, fmt.Errorf("%w: header %s renders to a value with CR, LF or NUL", ErrPermanent, name)
	}
	return dst, nil
}

// endpointFor returns the endpoint of a rendered URL: the configured destination's, or a
// per-event one.
func (s *customSink) endpointFor(rendered []byte) (*endpoint, error) {
	d, err := parseDestination(string(rendered), s.sslVerify)
	if err != nil {
		return nil, fmt.Errorf("%w: rendered url %q: %w", ErrPermanent, rendered, err)
	}
	if d == s.dest {
		return s.ep, nil
	}
	return s.pool.dynamicClient(d)
}

// buildFailure is the Result of a request that could not be built. A template that ran
// out of time (wrapping scripting.ErrTimeout and ErrTimeout) or failed while rendering
// (a helper's error: wrapping scripting.ErrThrown) is retryable, so that the processor
// decides (it caps script failures at two attempts, then dead-letters them as
// script_timeout or script_error). Anything else — an oversized output, an invalid
// rendered URL or header, too many destinations — would fail the same way again and is
// permanent.
func buildFailure(hookID string, err error) Result {
	switch {
	case isScriptFailure(err):
		return scriptFailure(hookID, err)
	case errors.Is(err, ErrPermanent):
		return Result{Err: fmt.Errorf("deliver hook %s: %w", hookID, err)}
	case errors.Is(err, errPoolClosed):
		return Result{Err: fmt.Errorf("deliver hook %s: %w", hookID, err), Retryable: true}
	}
	return Result{Err: fmt.Errorf("deliver hook %s: %w: %w", hookID, ErrPermanent, err)}
}

// AwaitsFirstAnswer implements FirstAnswerAwaiter: the hook version or its configured
// destination. A templated URL that resolves elsewhere is not covered: its first request
// is made where the caller is.
func (s *customSink) AwaitsFirstAnswer() bool { return s.ep.awaitsFirstAnswer(&s.gate) }
