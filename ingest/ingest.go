// Package ingest is HTTP ingest, the data-plane door into the events topic: POST /events
// (JSON or NDJSON envelopes, or Kong webhook bodies), produced with acks=all and answered
// once the broker has acknowledged every event. It is served on its own listener with its
// own token, apart from the Admin API.
//
// It must not read Kafka, deliver events or touch hooks: it validates and produces.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/bearer"
	"github.com/eventhooks/eventhooks/internal/httpserve"
	"github.com/eventhooks/eventhooks/internal/logthrottle"
	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// Defaults of Config.
const (
	// DefaultMaxBodyBytes is Config.MaxBodyBytes when it is zero (16 MiB).
	DefaultMaxBodyBytes = 16 << 20
	// DefaultTimeout is Config.Timeout when it is zero.
	DefaultTimeout = 30 * time.Second
	// DefaultConcurrency is Config.MaxConcurrency when it is zero.
	DefaultConcurrency = 256
)

// HeaderIdempotencyKey names the request header that makes the ids Ingest gives to
// events without one deterministic: see Ingest.
const HeaderIdempotencyKey = "Idempotency-Key"

const maxIdempotencyKey = 255

// ingestIDSpace is the UUIDv5 namespace of ids derived from an Idempotency-Key.
var ingestIDSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/eventhooks/eventhooks#ingest"))

// Config configures a Server. Producer and Topic are required.
type Config struct {
	// Producer writes the events. Keep franz-go's defaults, acks=all and idempotent writes
	// (do not add kgo.DisableIdempotentWrite); a kgo.RecordDeliveryTimeout no longer than
	// Timeout frees its buffer sooner while the broker is down, and
	// kgo.ProducerBatchMaxBytes must leave room for MaxEventBytes. Ingest never closes it.
	Producer *kgo.Client
	// Topic is the events topic.
	Topic string
	// KeyField is the data path holding the entity key of events without a "key"
	// ("entity.id"; several comma separated, first found wins); "" = the event id.
	// See hooks.EnvelopeOptions.KeyField.
	KeyField string
	// Token, when set, is required as "Authorization: Bearer <token>" on POST /events.
	Token string
	// MaxBodyBytes caps a request body (default 16 MiB); larger ones get 413.
	MaxBodyBytes int
	// MaxEventBytes caps one event's record value (default hooks.DefaultMaxEventBytes);
	// a larger event is a bad line (400).
	MaxEventBytes int
	// Timeout bounds how long a request waits for the broker's acknowledgements
	// (default 30s); then the client gets 503.
	Timeout time.Duration
	// MaxConcurrency bounds the connections served at once (default 256); fasthttp
	// answers 503 beyond it. With MaxBodyBytes it bounds the memory ingest can hold.
	MaxConcurrency int
	// Logger receives produce failures (throttled) and server errors (default
	// slog.Default()).
	Logger *slog.Logger
}

// Server is the HTTP ingest endpoint, POST /events, served on its own listener (plus GET
// /healthz). Create it with New; it is safe for concurrent use.
//
// A request carries one event (Content-Type application/json: an envelope, or the body
// of Kong's own webhook event hook) or many (application/x-ndjson, application/jsonl:
// one per line; application/json whose body is not a single JSON value is read as
// NDJSON too). Every line is validated with hooks.EnvelopeRecord before anything is
// produced: one bad line answers 400 {"message":"line 7: …","line":7} and nothing is
// produced. Then all records are produced (acks=all, idempotent) and the answer is 202
// {"accepted":N} only once the broker has acknowledged every one of them.
//
// When any record fails or Timeout passes first, the answer is 503
// {"message":…,"accepted":0}: the request as a whole was not accepted, but some of its
// events may be in Kafka already (and records still in the producer may yet land). The
// client must retry the whole request; the duplicates this creates are told apart by the
// event id, which receivers dedupe on (the webhook-id of a delivery derives from it).
// Ids given in the events are kept. Ids Ingest fills in are random UUIDs, unless the
// request has an Idempotency-Key header: then an event's id is a UUIDv5 of the key, its
// line number and its line, so a byte-identical retry with the same key gives every
// event the id it had in the failed attempt. Producers that retry should set "id" or
// Idempotency-Key; Kong's webhook hook does not retry, so for it this does not arise.
type Server struct {
	cfg      Config
	log      *slog.Logger
	srv      *httpserve.Server
	requests map[int]*metrics.Counter // read-only after New
	events   *metrics.Counter
	failLogs logthrottle.Throttle // failed requests
}

// New validates cfg, fills its defaults and returns a Server ready to Serve.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Producer == nil:
		return nil, errors.New("ingest: Config.Producer is required")
	case cfg.Topic == "":
		return nil, errors.New("ingest: Config.Topic is required")
	case cfg.MaxBodyBytes < 0, cfg.MaxEventBytes < 0, cfg.Timeout < 0, cfg.MaxConcurrency < 0:
		return nil, fmt.Errorf("ingest: Config limits must not be negative (MaxBodyBytes %d, MaxEventBytes %d, Timeout %s, MaxConcurrency %d)",
			cfg.MaxBodyBytes, cfg.MaxEventBytes, cfg.Timeout, cfg.MaxConcurrency)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxEventBytes == 0 {
		cfg.MaxEventBytes = hooks.DefaultMaxEventBytes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		requests: make(map[int]*metrics.Counter),
		events:   metrics.GetOrCreateCounter(promhelp.Describe(`eventhooks_ingest_events_total`, "Events accepted by HTTP ingest.")),
	}
	for _, code := range []int{202, 400, 401, 404, 405, 408, 413, 415, 500, 503} {
		in.requests[code] = ingestRequestCounter(code)
	}
	in.srv = httpserve.New(httpserve.Config{
		Handler:            in.serve,
		ErrorHandler:       in.serverError,
		MaxRequestBodySize: cfg.MaxBodyBytes,
		Concurrency:        cfg.MaxConcurrency,
		Logger:             cfg.Logger,
		LogMsg:             "ingest http server",
	})
	return in, nil
}

var familyIngestRequests = promhelp.Describe("eventhooks_ingest_requests_total", "HTTP ingest responses, by status code.")

func ingestRequestCounter(code int) *metrics.Counter {
	return metrics.GetOrCreateCounter(familyIngestRequests + `{code="` + strconv.Itoa(code) + `"}`)
}

// Handler returns the request handler, for serving on a fasthttp.Server of one's own
// (which must then set MaxRequestBodySize itself).
func (in *Server) Handler() fasthttp.RequestHandler { return in.serve }

// Serve serves the endpoint on ln until Shutdown; it then returns nil.
func (in *Server) Serve(ln net.Listener) error { return in.srv.Serve(ln) }

// ListenAndServe listens on the TCP address addr and serves until Shutdown.
func (in *Server) ListenAndServe(addr string) error { return in.srv.ListenAndServe(addr) }

// Shutdown stops accepting connections and waits for in-flight requests (which wait for
// their acknowledgements) until ctx is done; requests still waiting then get 503.
func (in *Server) Shutdown(ctx context.Context) error { return in.srv.Shutdown(ctx) }

// Answers.
type (
	ingestAccepted struct {
		Accepted int `json:"accepted"`
	}
	ingestBadLine struct {
		Message string `json:"message"`
		Line    int    `json:"line"`
	}
	ingestNotAccepted struct {
		Message  string `json:"message"`
		Accepted int    `json:"accepted"`
	}
	ingestMessage struct {
		Message string `json:"message"`
	}
	ingestStatus struct {
		Status string `json:"status"`
	}
)

// serve is the fasthttp handler: route, answer, count.
func (in *Server) serve(ctx *fasthttp.RequestCtx) {
	defer func() {
		if v := recover(); v != nil {
			in.log.Error("ingest: panic", "method", string(ctx.Method()), "path", string(ctx.Path()), "panic", v)
			in.answer(ctx, fasthttp.StatusInternalServerError, ingestMessage{fmt.Sprintf("internal error: %v", v)})
		}
		in.count(ctx.Response.StatusCode())
	}()
	path := ctx.Path()
	if len(path) > 1 {
		path = bytes.TrimSuffix(path, []byte("/"))
	}
	switch string(path) {
	case "/events":
		if !in.authorized(ctx) {
			ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="eventhooks"`)
			in.answer(ctx, fasthttp.StatusUnauthorized, ingestMessage{"Unauthorized"})
			return
		}
		if !ctx.IsPost() {
			ctx.Response.Header.Set(fasthttp.HeaderAllow, fasthttp.MethodPost)
			in.answer(ctx, fasthttp.StatusMethodNotAllowed, ingestMessage{"Method not allowed"})
			return
		}
		in.ingest(ctx)
	case "/healthz":
		if !ctx.IsGet() && !ctx.IsHead() {
			ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
			in.answer(ctx, fasthttp.StatusMethodNotAllowed, ingestMessage{"Method not allowed"})
			return
		}
		in.answer(ctx, fasthttp.StatusOK, ingestStatus{Status: "ok"})
	default:
		in.answer(ctx, fasthttp.StatusNotFound, ingestMessage{"Not found"})
	}
}

// ingest answers POST /events.
func (in *Server) ingest(ctx *fasthttp.RequestCtx) {
	if enc := ctx.Request.Header.ContentEncoding(); len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")) {
		in.answer(ctx, fasthttp.StatusUnsupportedMediaType, ingestMessage{fmt.Sprintf("Content-Encoding %q is not supported", enc)})
		return
	}
	ndjson, ok := ingestMediaType(ctx.Request.Header.ContentType())
	if !ok {
		in.answer(ctx, fasthttp.StatusUnsupportedMediaType, ingestMessage{fmt.Sprintf(
			"Content-Type %q is not supported: send application/json (one event) or application/x-ndjson (one event per line)",
			ctx.Request.Header.ContentType())})
		return
	}
	idemKey := ctx.Request.Header.Peek(HeaderIdempotencyKey)
	if len(idemKey) > maxIdempotencyKey {
		in.answer(ctx, fasthttp.StatusBadRequest, ingestMessage{fmt.Sprintf("%s is longer than %d bytes", HeaderIdempotencyKey, maxIdempotencyKey)})
		return
	}
	recs, line, err := in.records(ctx.PostBody(), ndjson, string(idemKey))
	switch {
	case err != nil:
		status := fasthttp.StatusBadRequest
		if errors.Is(err, hooks.ErrOversize) {
			status = fasthttp.StatusRequestEntityTooLarge // as documented: an event over --max-event-bytes
		}
		in.answer(ctx, status, ingestBadLine{Message: fmt.Sprintf("line %d: %v", line, err), Line: line})
		return
	case len(recs) == 0:
		in.answer(ctx, fasthttp.StatusBadRequest, ingestMessage{"no events: the request body is empty"})
		return
	}
	if err := in.produce(recs); err != nil {
		status := fasthttp.StatusServiceUnavailable
		if errors.Is(err, kerr.MessageTooLarge) {
			status = fasthttp.StatusRequestEntityTooLarge
		}
		in.logFailure(err, len(recs))
		in.answer(ctx, status, ingestNotAccepted{Message: fmt.Sprintf(
			"events not accepted: %v; some may be in Kafka already: retry the whole request "+
				"(receivers dedupe on event ids: events keep theirs on retry if they have an \"id\" or the request an %s header)",
			err, HeaderIdempotencyKey)})
		return
	}
	in.events.Add(len(recs))
	in.answer(ctx, fasthttp.StatusAccepted, ingestAccepted{Accepted: len(recs)})
}

// ingestMediaType tells NDJSON from JSON by Content-Type; ok is false for other types.
// No Content-Type is taken as JSON.
func ingestMediaType(ct []byte) (ndjson, ok bool) {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch string(bytes.ToLower(bytes.TrimSpace(ct))) {
	case "", "application/json":
		return false, true
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl",
		"application/jsonlines", "application/x-jsonlines":
		return true, true
	}
	return false, false
}

// records validates every event of body and builds its record. On the first bad line it
// returns its number (from 1; blank lines count) and the reason.
func (in *Server) records(body []byte, ndjson bool, idemKey string) ([]*kgo.Record, int, error) {
	opt := hooks.EnvelopeOptions{Topic: in.cfg.Topic, KeyField: in.cfg.KeyField, MaxBytes: in.cfg.MaxEventBytes}
	one := func(n int, line []byte) (*kgo.Record, error) {
		o := opt
		if idemKey != "" {
			o.NewID = func() string { return derivedID(idemKey, n, line) }
		}
		return hooks.EnvelopeRecord(line, o)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, 0, nil
	}
	if !ndjson && fastjson.ValidateBytes(body) == nil {
		// One JSON value, however many lines it spans.
		rec, err := one(1, body)
		if err != nil {
			return nil, 1, err
		}
		return []*kgo.Record{rec}, 0, nil
	}
	recs := make([]*kgo.Record, 0, bytes.Count(body, []byte("\n"))+1)
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if line = bytes.TrimSpace(line); len(line) == 0 {
			continue
		}
		rec, err := one(n, line)
		if err != nil {
			return nil, n, err
		}
		recs = append(recs, rec)
	}
	return recs, 0, nil
}

// derivedID is the id of the event on line n of a request with an Idempotency-Key: a
// UUIDv5 of the key, the line number and the line, stable across identical retries.
func derivedID(idemKey string, n int, line []byte) string {
	b := make([]byte, 0, len(idemKey)+len(line)+12)
	b = append(b, idemKey...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, 0)
	b = append(b, line...)
	return uuid.NewSHA1(ingestIDSpace, b).String()
}

// produceError says how many events of a request the broker did not confirm, and why.
type produceError struct {
	unconfirmed, total int
	err                error
}

func (e *produceError) Error() string {
	return fmt.Sprintf("the broker did not confirm %d of %d events: %v", e.unconfirmed, e.total, e.err)
}

func (e *produceError) Unwrap() error { return e.err }

// produceBatch counts the outstanding records of one request. Its promise runs on the
// producer's promise goroutine and may still run after the request was answered.
type produceBatch struct {
	pending   atomic.Int64
	confirmed atomic.Int64
	done      chan struct{} // closed when pending reaches 0

	mu  sync.Mutex
	err error // the first failure
}

func (b *produceBatch) complete(n int, err error) {
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	} else {
		b.confirmed.Add(int64(n))
	}
	if b.pending.Add(-int64(n)) == 0 {
		close(b.done)
	}
}

func (b *produceBatch) firstErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// produce produces recs and waits until the broker has acknowledged all of them; it
// fails when one fails, when Timeout passes or on Shutdown. Records not yet sent when it
// returns are failed by the producer (their context is cancelled); records already sent
// may still land.
func (in *Server) produce(recs []*kgo.Record) error {
	ctx, cancel := context.WithTimeout(in.srv.Context(), in.cfg.Timeout)
	defer cancel()
	b := &produceBatch{done: make(chan struct{})}
	b.pending.Store(int64(len(recs)))
	promise := func(_ *kgo.Record, err error) { b.complete(1, err) }
	for i, r := range recs {
		if err := ctx.Err(); err != nil {
			b.complete(len(recs)-i, err)
			break
		}
		in.cfg.Producer.Produce(ctx, r, promise) // blocks while the producer's buffer is full
	}
	select {
	case <-b.done:
	case <-ctx.Done():
	}
	// Whatever woke us, only a full count of acknowledgements is a success.
	confirmed := int(b.confirmed.Load())
	if confirmed == len(recs) {
		return nil
	}
	err := b.firstErr()
	// Records failed by the context, or still pending, say nothing about the cause.
	switch {
	case err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
	case in.srv.Context().Err() != nil:
		err = fmt.Errorf("the server is shutting down: %w", in.srv.Context().Err())
	default:
		err = fmt.Errorf("no acknowledgement within %s (is the broker reachable?): %w", in.cfg.Timeout, context.DeadlineExceeded)
	}
	return &produceError{unconfirmed: len(recs) - confirmed, total: len(recs), err: err}
}

// logFailure logs a failed request, at most once per 10 s while failures repeat (a broker
// outage fails every request).
func (in *Server) logFailure(err error, events int) {
	ok, suppressed := in.failLogs.Allow("")
	if !ok {
		return
	}
	in.log.Warn("ingest: events not accepted", "topic", in.cfg.Topic, "events", events, "err", err,
		"suppressed", suppressed)
}

// authorized checks the bearer token in constant time.
func (in *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	return in.cfg.Token == "" || bearer.Is(ctx, in.cfg.Token)
}

// serverError answers requests fasthttp could not read (too large, malformed, timed out).
func (in *Server) serverError(ctx *fasthttp.RequestCtx, err error) {
	status, err := httpserve.ReadError(err, in.cfg.MaxBodyBytes)
	ctx.ResetBody()
	in.answer(ctx, status, ingestMessage{err.Error()})
	in.count(status)
}

func (in *Server) answer(ctx *fasthttp.RequestCtx, status int, v any) {
	if err := httpserve.JSON(ctx, status, v); err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
	}
}

func (in *Server) count(status int) {
	c := in.requests[status]
	if c == nil {
		c = ingestRequestCounter(status) // rare codes; GetOrCreate is idempotent
	}
	c.Inc()
}
