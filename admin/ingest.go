package admin

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
)

// Defaults of IngestConfig.
const (
	// DefaultIngestMaxBodyBytes is IngestConfig.MaxBodyBytes when it is zero (16 MiB).
	DefaultIngestMaxBodyBytes = 16 << 20
	// DefaultIngestTimeout is IngestConfig.Timeout when it is zero.
	DefaultIngestTimeout = 30 * time.Second
	// DefaultIngestConcurrency is IngestConfig.MaxConcurrency when it is zero.
	DefaultIngestConcurrency = 256
)

// HeaderIdempotencyKey names the request header that makes the ids Ingest gives to
// events without one deterministic: see Ingest.
const HeaderIdempotencyKey = "Idempotency-Key"

const maxIdempotencyKey = 255

// ingestIDSpace is the UUIDv5 namespace of ids derived from an Idempotency-Key.
var ingestIDSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/eventhooks/eventhooks#ingest"))

// IngestConfig configures an Ingest endpoint. Producer and Topic are required.
type IngestConfig struct {
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

// Ingest is the HTTP ingest endpoint, POST /events, served on its own listener (plus GET
// /healthz). Create it with NewIngest; it is safe for concurrent use.
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
type Ingest struct {
	cfg      IngestConfig
	log      *slog.Logger
	srv      *fasthttp.Server
	base     context.Context
	cancel   context.CancelFunc
	requests map[int]*metrics.Counter // read-only after NewIngest
	events   *metrics.Counter

	lastFailLog atomic.Int64 // unix nanoseconds of the last produce failure logged
	suppressed  atomic.Int64 // produce failures not logged since
}

// NewIngest validates cfg, fills its defaults and returns an Ingest ready to Serve.
func NewIngest(cfg IngestConfig) (*Ingest, error) {
	switch {
	case cfg.Producer == nil:
		return nil, errors.New("admin: IngestConfig.Producer is required")
	case cfg.Topic == "":
		return nil, errors.New("admin: IngestConfig.Topic is required")
	case cfg.MaxBodyBytes < 0, cfg.MaxEventBytes < 0, cfg.Timeout < 0, cfg.MaxConcurrency < 0:
		return nil, fmt.Errorf("admin: IngestConfig limits must not be negative (MaxBodyBytes %d, MaxEventBytes %d, Timeout %s, MaxConcurrency %d)",
			cfg.MaxBodyBytes, cfg.MaxEventBytes, cfg.Timeout, cfg.MaxConcurrency)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultIngestMaxBodyBytes
	}
	if cfg.MaxEventBytes == 0 {
		cfg.MaxEventBytes = hooks.DefaultMaxEventBytes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultIngestTimeout
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = DefaultIngestConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Ingest{
		cfg:      cfg,
		log:      cfg.Logger,
		requests: make(map[int]*metrics.Counter),
		events:   metrics.GetOrCreateCounter(`eventhooks_ingest_events_total`),
	}
	for _, code := range []int{202, 400, 401, 404, 405, 408, 413, 415, 500, 503} {
		in.requests[code] = ingestRequestCounter(code)
	}
	in.base, in.cancel = context.WithCancel(context.Background())
	in.srv = &fasthttp.Server{
		Handler:                      in.serve,
		ErrorHandler:                 in.serverError,
		Name:                         serverName,
		ReadTimeout:                  readTimeout,
		WriteTimeout:                 writeTimeout,
		IdleTimeout:                  idleTimeout,
		MaxRequestBodySize:           cfg.MaxBodyBytes,
		Concurrency:                  cfg.MaxConcurrency,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{cfg.Logger},
	}
	return in, nil
}

func ingestRequestCounter(code int) *metrics.Counter {
	return metrics.GetOrCreateCounter(`eventhooks_ingest_requests_total{code="` + strconv.Itoa(code) + `"}`)
}

// Handler returns the request handler, for serving on a fasthttp.Server of one's own
// (which must then set MaxRequestBodySize itself).
func (in *Ingest) Handler() fasthttp.RequestHandler { return in.serve }

// Serve serves the endpoint on ln until Shutdown; it then returns nil.
func (in *Ingest) Serve(ln net.Listener) error { return in.srv.Serve(ln) }

// ListenAndServe listens on the TCP address addr and serves until Shutdown.
func (in *Ingest) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return in.Serve(ln)
}

// Shutdown stops accepting connections and waits for in-flight requests (which wait for
// their acknowledgements) until ctx is done; requests still waiting then get 503.
func (in *Ingest) Shutdown(ctx context.Context) error {
	err := in.srv.ShutdownWithContext(ctx)
	in.cancel()
	return err
}

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
)

// serve is the fasthttp handler: route, answer, count.
func (in *Ingest) serve(ctx *fasthttp.RequestCtx) {
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
	case patHealth:
		if !ctx.IsGet() && !ctx.IsHead() {
			ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
			in.answer(ctx, fasthttp.StatusMethodNotAllowed, ingestMessage{"Method not allowed"})
			return
		}
		in.answer(ctx, fasthttp.StatusOK, statusResponse{Status: "ok"})
	default:
		in.answer(ctx, fasthttp.StatusNotFound, ingestMessage{"Not found"})
	}
}

// ingest answers POST /events.
func (in *Ingest) ingest(ctx *fasthttp.RequestCtx) {
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
func (in *Ingest) records(body []byte, ndjson bool, idemKey string) ([]*kgo.Record, int, error) {
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
func (in *Ingest) produce(recs []*kgo.Record) error {
	ctx, cancel := context.WithTimeout(in.base, in.cfg.Timeout)
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
	case in.base.Err() != nil:
		err = fmt.Errorf("the server is shutting down: %w", in.base.Err())
	default:
		err = fmt.Errorf("no acknowledgement within %s (is the broker reachable?): %w", in.cfg.Timeout, context.DeadlineExceeded)
	}
	return &produceError{unconfirmed: len(recs) - confirmed, total: len(recs), err: err}
}

// logFailure logs a failed request, at most once per 10 s while failures repeat (a broker
// outage fails every request).
func (in *Ingest) logFailure(err error, events int) {
	now := time.Now().UnixNano()
	last := in.lastFailLog.Load()
	if now-last < int64(10*time.Second) || !in.lastFailLog.CompareAndSwap(last, now) {
		in.suppressed.Add(1)
		return
	}
	in.log.Warn("ingest: events not accepted", "topic", in.cfg.Topic, "events", events, "err", err,
		"suppressed", in.suppressed.Swap(0))
}

// authorized checks the bearer token in constant time.
func (in *Ingest) authorized(ctx *fasthttp.RequestCtx) bool {
	return in.cfg.Token == "" || bearerIs(ctx, in.cfg.Token)
}

// serverError answers requests fasthttp could not read (too large, malformed, timed out).
func (in *Ingest) serverError(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
		err = fmt.Errorf("request body exceeds %d bytes", in.cfg.MaxBodyBytes)
	case errors.As(err, &netErr) && netErr.Timeout():
		status = fasthttp.StatusRequestTimeout
	}
	ctx.ResetBody()
	in.answer(ctx, status, ingestMessage{err.Error()})
	in.count(status)
}

func (in *Ingest) answer(ctx *fasthttp.RequestCtx, status int, v any) {
	if err := respond(ctx, status, v); err != nil {
		ctx.Error(err.Error(), fasthttp.StatusInternalServerError)
	}
}

func (in *Ingest) count(status int) {
	c := in.requests[status]
	if c == nil {
		c = ingestRequestCounter(status) // rare codes; GetOrCreate is idempotent
	}
	c.Inc()
}
