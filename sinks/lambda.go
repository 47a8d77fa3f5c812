package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/jsonx"
	"github.com/eventhooks/eventhooks/internal/promhelp"
	"github.com/eventhooks/eventhooks/scripting"
)

// Lambda outcomes that send nothing, across hooks (the processor counts per hook).
var (
	lambdaDropped = metrics.NewCounter(promhelp.Describe(`eventhooks_lambda_dropped_total`, "Lambda results that dropped the event (null): nothing sent."))
	lambdaLogged  = metrics.NewCounter(promhelp.Describe(`eventhooks_lambda_results_logged_total`, "Lambda results that were not requests, logged as lambda result: nothing sent."))

	// scriptBuckets span a cached template (µs) to a lambda near its time limit.
	scriptBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}
	// lambdaDuration is the time of one JavaScript chain call.
	lambdaDuration = metrics.NewPrometheusHistogramExt(promhelp.Describe(`eventhooks_lambda_duration_seconds`, "Time of one JavaScript lambda chain call."), scriptBuckets)
	// templateDuration is the time to render and encode one webhook-custom request.
	templateDuration = metrics.NewPrometheusHistogramExt(promhelp.Describe(`eventhooks_template_render_seconds`, "Time to render and encode one webhook-custom request."), scriptBuckets)
)

// MaxLambdaRequests bounds the requests one lambda call may return; a longer array is a
// permanent error.
const MaxLambdaRequests = 64

// maxLoggedResult bounds the result a lambda's log line shows.
const maxLoggedResult = 8 << 10

// lambdaSink is the compiled lambda handler. Its functions run chained on the lane's
// JavaScript runtime, as fn(data, event, source); the final value decides:
//
//   - null or undefined (or an empty array): nothing is sent; the event is done
//     (Result.Dropped, counted in eventhooks_lambda_dropped_total);
//   - an object with a "url" key: a request, sent through the pool like a webhook and
//     signed with config.secret;
//   - an array of such objects: the requests, all checked first, then sent in order; the
//     first that fails ends the attempt with its outcome, and the retry starts again from the first (each has
//     its own webhook-id, "<msg id>_<index>", so receivers dedupe the ones they got);
//   - anything else: logged at info as the hook's result ("lambda result"); done.
//
// A request object has url (required; http or https), method (default POST), headers
// (an object of strings; numbers and booleans are converted), body (a string sent as
// is; any other JSON value is sent JSON-encoded, with Content-Type application/json
// unless headers set one) and ssl_verify (default true: unlike Kong's webhook default,
// the certificate of a computed destination is checked unless the script opts out).
// Any other key is an error, so a script that returns its input unchanged cannot send
// an event that happens to have a "url" field somewhere by accident.
//
// Errors: a script that threw (Result.Err wraps scripting.ErrThrown) or ran out of time
// (scripting.ErrTimeout and ErrTimeout) is retryable: the processor caps such failures
// at two attempts and dead-letters them (script_error, script_timeout). Both count
// against the hook's breaker. Oversized input or output, or an invalid request object,
// is permanent (the same script on the same event fails the same way): the event is
// dead-lettered with the message.
type lambdaSink struct {
	hookID  string
	fn      *scripting.Lambda
	pool    *Pool
	log     *slog.Logger
	timeout time.Duration // one attempt: the script and every request
	script  time.Duration // one script call
	lastURL atomic.Pointer[resolvedURL]
	gate    hookGate // the hook's own breaker and max backoff
	signing
}

func compileLambda(h *hooks.Hook, p *Pool, log *slog.Logger) (*lambdaSink, error) {
	cfg, err := httpConfig[hooks.LambdaConfig](h, p, hooks.HandlerLambda)
	if err != nil {
		return nil, err
	}
	fn, err := scripting.CompileLambda(cfg.Functions)
	if err != nil {
		return nil, lambdaSchemaError(err)
	}
	s := &lambdaSink{hookID: h.ID, fn: fn, pool: p, log: log, timeout: timeoutOf(h), gate: p.hookGate(h)}
	s.script = min(s.timeout, p.cfg.LambdaTimeout)
	if err := s.setSecret(cfg.Secret, h.Secrets); err != nil {
		return nil, err
	}
	return s, nil
}

// lambdaSchemaError reports a function that does not compile as a schema violation on
// its element of config.functions, numbered from 1 as hooks.Validate numbers them.
func lambdaSchemaError(err error) error {
	var le *scripting.LambdaError
	if !errors.As(err, &le) {
		return &hooks.SchemaError{Fields: map[string]string{"config.functions": err.Error()}}
	}
	msg := le.Message
	if le.Line > 0 {
		msg += fmt.Sprintf(" (line %d:%d)", le.Line, le.Column)
	}
	return &hooks.SchemaError{Fields: map[string]string{"config.functions." + strconv.Itoa(le.Index+1): msg}}
}

// Handler implements Sink.
func (s *lambdaSink) Handler() string { return hooks.HandlerLambda }

// lambdaRequest is one request object of a lambda's result. Byte slices point into the
// lane's parser; headers and the body are ranges of the lane's hdrs and scratch.
type lambdaRequest struct {
	dest             destination
	url, method      []byte
	hdrFrom, hdrTo   int
	host, ctype      []byte
	bodyFrom, bodyTo int
	hasBody          bool
	sslVerify        bool
}

// resultKind is what a lambda's final value asks for.
type resultKind uint8

const (
	resultDrop resultKind = iota
	resultLog
	resultRequests
)

// Deliver implements Sink: it runs the chain on ev and acts on the final value.
func (s *lambdaSink) Deliver(ctx context.Context, ev *hooks.Event, lane *Lane) Result {
	start := time.Now()
	if res, stop := unusable(ctx, s.hookID, ev, start); stop {
		return res
	}
	return s.gate.run(lane, start, func(lane *Lane) (Result, verdict) {
		return s.deliver(ctx, ev, lane, start)
	})
}

// deliver makes the attempt: it runs the chain and sends its requests. The verdict is
// what the attempt says about the hook, for its breaker: a failure when the script threw
// or timed out or a request's status failed, healthy when every request was delivered,
// neutral otherwise (nothing sent, a connection failure, a rejection).
func (s *lambdaSink) deliver(ctx context.Context, ev *hooks.Event, lane *Lane, start time.Time) (Result, verdict) {
	limit := s.script
	if d, ok := ctx.Deadline(); ok {
		limit = max(min(limit, time.Until(d)), time.Millisecond)
	}
	callStart := time.Now()
	rt, err := s.pool.js.get(ctx)
	if err != nil {
		return Result{Err: fmt.Errorf("deliver hook %s: %w", s.hookID, err), Retryable: true, Duration: time.Since(start)}, verdictNeutral
	}
	var (
		out  []byte
		used bool
	)
	if lane.capture != nil { // the Tester shows the result as JSON
		data := ev.Data()
		if data == nil { // a hand-built event: fastjson values are not for sharing, even read
			data = fastjson.MustParse(`{}`)
		}
		buf := getBuffer()
		buf.B = jsonx.AppendValue(buf.B[:0], data, true)
		out, err = rt.Call(s.fn, s.hookID, buf.B, ev.Event, ev.Source, limit)
		putBuffer(buf)
	} else {
		if lane.takeReq == nil {
			lane.takeReq = lane.takeRequest
		}
		// The event is the data: the runtime reads its text, parsing it only if the
		// script reads a member.
		out, used, err = rt.CallRequest(s.fn, s.hookID, ev, ev.Event, ev.Source, limit, &lane.jsReq, lane.takeReq)
	}
	s.pool.js.put(rt)
	lambdaDuration.UpdateDuration(callStart)
	if err != nil {
		res := scriptFailure(s.hookID, err)
		if isScriptFailure(err) {
			return res, verdictFailure
		}
		return res, verdictNeutral
	}
	kind, array := resultRequests, false
	if used {
		if err := s.resolve(&lane.reqs[0]); err != nil {
			return Result{Err: fmt.Errorf("deliver hook %s: %w: lambda result: %w", s.hookID, ErrPermanent, err)}, verdictNeutral
		}
	} else {
		if lane.capture != nil {
			lane.capture.value = append(json.RawMessage(nil), out...)
		}
		v, err := lane.parser.ParseBytes(out)
		if err != nil { // cannot happen: the runtime writes JSON
			return Result{Err: fmt.Errorf("deliver hook %s: %w: lambda result is not JSON: %w", s.hookID, ErrPermanent, err)}, verdictNeutral
		}
		if kind, array, err = parseResult(v, lane); err != nil {
			return Result{Err: fmt.Errorf("deliver hook %s: %w: lambda result: %w", s.hookID, ErrPermanent, err)}, verdictNeutral
		}
	}
	switch kind {
	case resultDrop:
		lambdaDropped.Inc()
		return Result{Delivered: true, Dropped: true}, verdictNeutral
	case resultLog:
		lambdaLogged.Inc()
		s.logResult(ctx, ev, out)
		return Result{Delivered: true}, verdictNeutral
	}
	deadline := deadlineOf(ctx, start, s.timeout)
	var (
		res Result
		hv  verdict
	)
	for i := range lane.reqs {
		if i > 0 && ctx.Err() != nil {
			return canceled(ctx, s.hookID, start), verdictNeutral
		}
		index := -1
		if array {
			index = i
		}
		res, hv = s.send(ev, lane, &lane.reqs[i], index, start, deadline)
		if !res.Delivered {
			if array {
				res.Err = fmt.Errorf("%w (lambda request %d of %d)", res.Err, i+1, len(lane.reqs))
			}
			return res, hv
		}
	}
	return res, hv
}

// resolvedURL is a request URL with its destination.
type resolvedURL struct {
	url       string
	sslVerify bool
	dest      destination
}

// resolve sets r's destination from its URL, as parseRequest does, reusing the last one
// the hook resolved: a lambda's requests usually all go to one place, and parsing the URL
// costs more than comparing it.
func (s *lambdaSink) resolve(r *lambdaRequest) error {
	if last := s.lastURL.Load(); last != nil && last.url == string(r.url) && last.sslVerify == r.sslVerify {
		r.dest = last.dest
		return nil
	}
	dest, err := parseDestination(string(r.url), r.sslVerify)
	if err != nil {
		return fmt.Errorf("url %q: %w", r.url, err)
	}
	s.lastURL.Store(&resolvedURL{url: string(r.url), sslVerify: r.sslVerify, dest: dest})
	r.dest = dest
	return nil
}

// scriptFailure is the Result of a lambda call that failed: retryable when it ran out of
// time (wrapping scripting.ErrTimeout and ErrTimeout) or threw (wrapping
// scripting.ErrThrown), so that the processor applies its cap on script failures;
// permanent otherwise (oversized input or output).
func scriptFailure(hookID string, err error) Result {
	switch {
	case errors.Is(err, scripting.ErrTimeout):
		return Result{Err: fmt.Errorf("deliver hook %s: %w: %w", hookID, ErrTimeout, err), Retryable: true}
	case errors.Is(err, scripting.ErrThrown):
		return Result{Err: fmt.Errorf("deliver hook %s: %w", hookID, err), Retryable: true}
	}
	return Result{Err: fmt.Errorf("deliver hook %s: %w: %w", hookID, ErrPermanent, err)}
}

func (s *lambdaSink) logResult(ctx context.Context, ev *hooks.Event, out []byte) {
	attrs := [6]slog.Attr{
		slog.String("hook_id", s.hookID),
		slog.String("source", ev.Source),
		slog.String("event", ev.Event),
		slog.String("key", string(ev.Key)),
		slog.String("result", truncate(out, maxLoggedResult)),
	}
	n := 5
	if len(ev.ID) > 0 {
		attrs[n] = slog.String("event_id", string(ev.ID))
		n++
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "lambda result", attrs[:n]...)
}

// takeRequest turns a request object the runtime read directly into lane.reqs, with the
// checks of parseRequest but the URL's (deliver resolves it: see resolve). It returns
// false when one fails: CallRequest then returns the JSON, and parseResult reports the
// error as for any result.
func (l *Lane) takeRequest(jr *scripting.Request) bool {
	l.reqs, l.hdrs = l.reqs[:0], l.hdrs[:0]
	if jr.URL == "" || len(jr.Headers) > 2*maxLambdaHeaders {
		return false
	}
	// Everything is copied into scratch first, and sliced once scratch stops growing.
	sc := append(l.scratch[:0], jr.URL...)
	urlEnd := len(sc)
	if jr.Method != "" {
		if !validHeaderName(jr.Method) {
			return false
		}
		for i := 0; i < len(jr.Method); i++ {
			c := jr.Method[i]
			if c >= 'a' && c <= 'z' {
				c = c - 'a' + 'A'
			}
			sc = append(sc, c)
		}
	}
	methodEnd := len(sc)
	marks := l.marks[:0]
	for i := 0; i < len(jr.Headers); i += 2 {
		k, v := jr.Headers[i], jr.Headers[i+1]
		if !validHeaderName(k) || !validHeaderValue(v) {
			return false
		}
		sc = append(sc, k...)
		marks = append(marks, len(sc))
		sc = append(sc, v...)
		marks = append(marks, len(sc))
	}
	r := lambdaRequest{method: methodPost, sslVerify: jr.SSLVerify}
	r.bodyFrom = len(sc)
	if jr.HasBody {
		sc = append(sc, jr.Body...)
		r.hasBody = true
	}
	r.bodyTo = len(sc)
	l.scratch, l.marks = sc, marks

	r.url = sc[:urlEnd:urlEnd]
	if methodEnd > urlEnd {
		r.method = sc[urlEnd:methodEnd:methodEnd]
	}
	r.hdrFrom = len(l.hdrs)
	from := methodEnd
	for i := 0; i < len(marks); i += 2 {
		k, v := sc[from:marks[i]:marks[i]], sc[marks[i]:marks[i+1]:marks[i+1]]
		from = marks[i+1]
		l.hdrs = r.addHeader(l.hdrs, k, v)
	}
	r.hdrTo = len(l.hdrs)
	if r.hasBody && bodiless(r.method) {
		return false
	}
	l.reqs = append(l.reqs, r)
	return true
}

// maxLambdaHeaders bounds the headers of a request read directly; more go through JSON.
const maxLambdaHeaders = 1024

// parseResult classifies a lambda's final value and, for requests, parses them into
// lane.reqs. array reports whether the value was an array (its requests get indexed
// webhook-ids).
func parseResult(v *fastjson.Value, lane *Lane) (kind resultKind, array bool, err error) {
	lane.reqs, lane.hdrs, lane.scratch = lane.reqs[:0], lane.hdrs[:0], lane.scratch[:0]
	switch v.Type() {
	case fastjson.TypeNull:
		return resultDrop, false, nil
	case fastjson.TypeObject:
		if v.Get("url") == nil {
			return resultLog, false, nil
		}
		o, _ := v.Object()
		r, err := parseRequest(o, lane)
		if err != nil {
			return 0, false, err
		}
		lane.reqs = append(lane.reqs, r)
		return resultRequests, false, nil
	case fastjson.TypeArray:
		items, _ := v.Array()
		if len(items) == 0 {
			return resultDrop, true, nil
		}
		if items[0].Type() != fastjson.TypeObject || items[0].Get("url") == nil {
			return resultLog, true, nil
		}
		if len(items) > MaxLambdaRequests {
			return 0, true, fmt.Errorf("%d requests, more than %d", len(items), MaxLambdaRequests)
		}
		for i, it := range items {
			o, err := it.Object()
			if err != nil || it.Get("url") == nil {
				return 0, true, fmt.Errorf("request %d: not a request object (an object with a url); the first element is one, so all must be", i)
			}
			r, err := parseRequest(o, lane)
			if err != nil {
				return 0, true, fmt.Errorf("request %d: %w", i, err)
			}
			lane.reqs = append(lane.reqs, r)
		}
		return resultRequests, true, nil
	}
	return resultLog, false, nil
}

var (
	methodPost = []byte(fasthttp.MethodPost)
	headerHost = []byte("Host")
)

// addHeader files one header of r by its role: framing headers are dropped (the client
// sets them), Content-Type and Host are kept apart, the rest are appended to hdrs.
func (r *lambdaRequest) addHeader(hdrs []header, k, v []byte) []header {
	switch headerRole(string(k)) {
	case roleFraming:
	case roleContentType:
		r.ctype = v
	case roleHost:
		r.host = v
	default:
		hdrs = append(hdrs, header{key: k, value: v})
	}
	return hdrs
}

// parseRequest reads one request object.
func parseRequest(o *fastjson.Object, lane *Lane) (lambdaRequest, error) {
	r := lambdaRequest{method: methodPost, sslVerify: true, hdrFrom: len(lane.hdrs), hdrTo: len(lane.hdrs)}
	var err error
	jsonBody := false
	o.Visit(func(k []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(k) {
		case "url":
			if r.url, err = v.StringBytes(); err != nil || len(r.url) == 0 {
				err = errors.New(`"url" must be a non-empty string`)
			}
		case "method":
			m, e := v.StringBytes()
			if e != nil || !validHeaderName(string(m)) {
				err = errors.New(`"method" must be an HTTP method such as "POST"`)
				return
			}
			for i, c := range m { // in place: the parser's memory is ours
				if c >= 'a' && c <= 'z' {
					m[i] = c - 'a' + 'A'
				}
			}
			r.method = m
		case "headers":
			err = parseHeaders(v, lane, &r)
		case "body":
			r.bodyFrom = len(lane.scratch)
			switch v.Type() {
			case fastjson.TypeNull:
				return
			case fastjson.TypeString:
				lane.scratch = append(lane.scratch, v.GetStringBytes()...)
			default:
				lane.scratch = jsonx.AppendValue(lane.scratch, v, true)
				jsonBody = true
			}
			r.bodyTo, r.hasBody = len(lane.scratch), true
		case "ssl_verify":
			if r.sslVerify, err = v.Bool(); err != nil {
				err = errors.New(`"ssl_verify" must be a boolean`)
			}
		default:
			err = fmt.Errorf("unknown field %q (a request has url, method, headers, body, ssl_verify)", k)
		}
	})
	if err != nil {
		return r, err
	}
	if r.url == nil {
		return r, errors.New(`"url" must be a non-empty string`)
	}
	if r.hasBody && bodiless(r.method) {
		return r, fmt.Errorf("a %s request cannot carry a body", r.method)
	}
	// Checked before anything of the result is sent.
	if r.dest, err = parseDestination(string(r.url), r.sslVerify); err != nil {
		return r, fmt.Errorf("url %q: %w", r.url, err)
	}
	if jsonBody && r.ctype == nil {
		r.ctype = contentTypeJSON
	}
	return r, nil
}

// parseHeaders reads a request object's headers into lane.hdrs.
func parseHeaders(v *fastjson.Value, lane *Lane, r *lambdaRequest) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	o, err := v.Object()
	if err != nil {
		return errors.New(`"headers" must be an object of strings`)
	}
	o.Visit(func(k []byte, hv *fastjson.Value) {
		if err != nil {
			return
		}
		var val []byte
		switch hv.Type() {
		case fastjson.TypeString:
			val = hv.GetStringBytes()
		case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
			val = hv.MarshalTo(nil)
		default:
			err = fmt.Errorf("header %q: the value must be a string", k)
			return
		}
		if !validHeaderName(string(k)) {
			err = fmt.Errorf("invalid header name %q", k)
			return
		}
		if !validHeaderValue(val) {
			err = fmt.Errorf("header %q: the value contains CR, LF or NUL", k)
			return
		}
		lane.hdrs = r.addHeader(lane.hdrs, k, val)
	})
	r.hdrTo = len(lane.hdrs)
	return err
}

// bodiless reports whether method is GET or HEAD, which carry no body (fasthttp does not
// send one) and so are not signed.
func bodiless(method []byte) bool {
	return string(method) == fasthttp.MethodGet || string(method) == fasthttp.MethodHead
}

// send makes one request of the lambda's result, returning its verdict for the hook.
func (s *lambdaSink) send(ev *hooks.Event, lane *Lane, r *lambdaRequest, index int, start, deadline time.Time) (Result, verdict) {
	ep, err := s.pool.dynamicClient(r.dest)
	if err != nil {
		return buildFailure(s.hookID, err), verdictNeutral
	}
	req := fasthttp.AcquireRequest()
	req.SetRequestURIBytes(r.url)
	req.Header.SetMethodBytes(r.method)
	for _, h := range lane.hdrs[r.hdrFrom:r.hdrTo] {
		req.Header.SetBytesKV(h.key, h.value)
	}
	if r.host != nil {
		req.UseHostHeader = true
		req.Header.SetHostBytes(r.host)
	}
	if r.ctype != nil {
		req.Header.SetContentTypeBytes(r.ctype)
	} else {
		req.Header.SetNoDefaultContentType(true)
	}
	body := lane.scratch[r.bodyFrom:r.bodyTo]
	withBody := !bodiless(r.method)
	if withBody {
		req.SetBodyRaw(body)
	}
	s.signInto(req, s.hookID, ev, index, start.Unix(), body, withBody)
	res, v := send(ep, req, deadline, s.hookID, lane, s.gate.maxWait)
	fasthttp.ReleaseRequest(req)
	return res, v
}

// AwaitsFirstAnswer implements FirstAnswerAwaiter: the hook version (its script and its
// requests' destinations answer as one).
func (s *lambdaSink) AwaitsFirstAnswer() bool { return s.gate.br.awaitsFirstAnswer() }
