package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

const eventsTopic = "eventhooks-events"

// ingestEnv is an Ingest endpoint on a real listener, producing to an embedded broker.
type ingestEnv struct {
	t   *testing.T
	emb *broker.Embedded
	url string
	adm *kadm.Client
}

// newIngestEnv starts a broker, a producer with prodOpts and an Ingest; mod may adjust
// the config.
func newIngestEnv(t *testing.T, mod func(*Config), prodOpts ...kgo.Opt) *ingestEnv {
	t.Helper()
	emb := testkit.Broker(t, 4)
	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(emb.Addrs()...)}, prodOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cfg := Config{Producer: prod, Topic: eventsTopic, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = in.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = in.Shutdown(ctx)
	})
	return &ingestEnv{t: t, emb: emb, url: "http://" + ln.Addr().String(), adm: kadm.NewClient(cl)}
}

type ingestResponse struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

var ingestClient = &http.Client{Timeout: 60 * time.Second}

// post sends body to path with a Content-Type and extra header pairs.
func (e *ingestEnv) post(path, contentType, body string, headers ...string) ingestResponse {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return e.do(req)
}

func (e *ingestEnv) do(req *http.Request) ingestResponse {
	e.t.Helper()
	resp, err := ingestClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := ingestResponse{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("response %d is not a JSON object: %s", resp.StatusCode, raw)
		}
	}
	return r
}

// expect checks the status and the body's fields (numbers as float64).
func (r ingestResponse) expect(t *testing.T, status int, fields map[string]any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	for k, want := range fields {
		if got := r.body[k]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v (body %s)", k, got, want, r.raw)
		}
	}
}

// endOffsets returns the sum of the events topic's end offsets: how many records it holds.
func (e *ingestEnv) endOffsets() int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	offs, err := e.adm.ListEndOffsets(ctx, eventsTopic)
	if err != nil {
		e.t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			e.t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		sum += o.Offset
	})
	return sum
}

// consume reads the first n records of the events topic.
func (e *ingestEnv) consume(n int) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.emb.Addrs()...), kgo.ConsumeTopics(eventsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("consumed %d records, want %d", len(recs), n)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func byKey(recs []*kgo.Record) map[string]*kgo.Record {
	m := make(map[string]*kgo.Record, len(recs))
	for _, r := range recs {
		m[string(r.Key)] = r
	}
	return m
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestIngestOneEnvelope(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.KeyField = "entity.id" })
	for _, body := range []string{
		// key from the body's "key"
		`{"id":"ev-1","key":"k-1","source":"crud","event":"consumers:create","data":{"entity":{"id":"c-1"}}}`,
		// key from the key field entity.id
		`{"id":"ev-2","source":"crud","event":"consumers:create","time":"2026-11-27T08:00:00Z","data":{"entity":{"id":"c-2"}}}`,
		// key from the id: the key field is absent
		"{\n  \"id\": \"ev-3\",\n  \"source\": \"balancer\",\n  \"event\": \"health\",\n  \"data\": {\"upstream_id\": \"u-1\"}\n}\n",
	} {
		e.post("/events", "application/json; charset=utf-8", body).expect(t, http.StatusAccepted, map[string]any{"accepted": 1.0})
	}
	recs := byKey(e.consume(3))
	for key, want := range map[string]struct{ id, source, event string }{
		"k-1":  {"ev-1", "crud", "consumers:create"},
		"c-2":  {"ev-2", "crud", "consumers:create"},
		"ev-3": {"ev-3", "balancer", "health"},
	} {
		r := recs[key]
		if r == nil {
			t.Errorf("no record with key %q (got %v)", key, recs)
			continue
		}
		if h, ev := header(r, hooks.HeaderSource), header(r, hooks.HeaderEvent); h != want.source || ev != want.event {
			t.Errorf("%s: headers %s/%s, want %s/%s", key, h, ev, want.source, want.event)
		}
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if _, ok := v["key"]; ok {
			t.Errorf("%s: value keeps the key: %s", key, r.Value)
		}
		if v["id"] != want.id || v["source"] != want.source || v["event"] != want.event || v["time"] == nil {
			t.Errorf("%s: value %s", key, r.Value)
		}
		var d hooks.Decoder
		var ev hooks.Event
		if err := d.Decode(r, &ev); err != nil {
			t.Errorf("%s: the processor cannot decode %s: %v", key, r.Value, err)
		}
	}
	if got := recs["c-2"]; got != nil && !strings.Contains(string(got.Value), `"time":"2026-11-27T08:00:00Z"`) {
		t.Errorf("given time not kept: %s", got.Value)
	}
}

// TestIngestKongWebhookBody posts what a Kong `webhook` event hook sends.
func TestIngestKongWebhookBody(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.KeyField = "entity.id,upstream_id" })
	kong := `{"operation":"create","entity":{"id":"c-9","username":"ada"},"schema":"consumers","source":"crud","event":"consumers:create"}`
	e.post("/events", "application/json", kong).expect(t, http.StatusAccepted, map[string]any{"accepted": 1.0})
	r := e.consume(1)[0]
	if string(r.Key) != "c-9" {
		t.Errorf("key %q, want the entity id", r.Key)
	}
	var v struct {
		ID, Source, Event, Time string
		Data                    map[string]any
	}
	if err := json.Unmarshal(r.Value, &v); err != nil {
		t.Fatal(err)
	}
	wantData := map[string]any{"operation": "create", "entity": map[string]any{"id": "c-9", "username": "ada"}, "schema": "consumers"}
	if v.Source != "crud" || v.Event != "consumers:create" || !reflect.DeepEqual(v.Data, wantData) {
		t.Errorf("stored %s", r.Value)
	}
	if _, err := uuid.Parse(v.ID); err != nil || v.Time == "" {
		t.Errorf("id %q time %q", v.ID, v.Time)
	}
}

func TestIngestNDJSON(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.KeyField = "upstream_id" })
	const n = 10000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"ev-%d","source":"balancer","event":"health","data":{"upstream_id":"u-%d","seq":%d}}`+"\n", i, i%50, i)
	}
	start := time.Now()
	e.post("/events", "application/x-ndjson", b.String()).expect(t, http.StatusAccepted, map[string]any{"accepted": float64(n)})
	t.Logf("%d events accepted in %v", n, time.Since(start))
	if got := e.endOffsets(); got != n {
		t.Fatalf("the topic holds %d records when the answer arrives, want %d", got, n)
	}

	// Several lines under application/json are NDJSON too; application/jsonl, CRLF and
	// blank lines are fine.
	two := `{"source":"s","event":"e","data":{}}` + "\n\n" + `{"source":"s","event":"e","data":{}}`
	e.post("/events", "application/json", two).expect(t, http.StatusAccepted, map[string]any{"accepted": 2.0})
	e.post("/events", "application/jsonl", strings.ReplaceAll(two, "\n", "\r\n")).expect(t, http.StatusAccepted, map[string]any{"accepted": 2.0})
	if got := e.endOffsets(); got != n+4 {
		t.Fatalf("the topic holds %d records, want %d", got, n+4)
	}
}

func TestIngestBadLine(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.MaxEventBytes = 200 })
	lines := make([]string, 10)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"source":"s","event":"e","data":{"n":%d}}`, i)
	}
	bad := append([]string(nil), lines...)
	bad[6] = `{"event":"e","data":{"n":6}}`
	e.post("/events", "application/x-ndjson", strings.Join(bad, "\n")).expect(t, http.StatusBadRequest,
		map[string]any{"message": `line 7: envelope has no "source"`, "line": 7.0})

	big := append([]string(nil), lines...)
	big[1] = `{"source":"s","event":"e","data":{"pad":"` + strings.Repeat("x", 200) + `"}}`
	r := e.post("/events", "application/x-ndjson", strings.Join(big, "\n"))
	// An event over --max-event-bytes is 413, as the README's answer table says.
	r.expect(t, http.StatusRequestEntityTooLarge, map[string]any{"line": 2.0})
	if msg, _ := r.body["message"].(string); !strings.HasPrefix(msg, "line 2: record value exceeds the size limit") {
		t.Errorf("message %q", msg)
	}
	// curl -d without -H 'content-type: …' sends a form content type: 415, also in the table.
	r = e.post("/events", "application/x-www-form-urlencoded", lines[0])
	r.expect(t, http.StatusUnsupportedMediaType, nil)
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "application/x-ndjson") {
		t.Errorf("415 message %q does not say what to send", msg)
	}
	e.post("/events", "application/json", `{"source":"s","event":"e","data":[]}`).expect(t, http.StatusBadRequest,
		map[string]any{"message": `line 1: envelope has no "data" object: "data" is an array`, "line": 1.0})
	e.post("/events", "application/x-ndjson", "\n \n").expect(t, http.StatusBadRequest,
		map[string]any{"message": "no events: the request body is empty"})
	if got := e.endOffsets(); got != 0 {
		t.Fatalf("%d records produced from rejected requests", got)
	}
}

func TestIngestIdempotencyKey(t *testing.T) {
	e := newIngestEnv(t, nil)
	line := `{"key":"u-1","source":"balancer","event":"health","data":{"health":"unhealthy"}}`
	body := line + "\n" + line + "\n" + `{"id":"mine","key":"u-1","source":"balancer","event":"health","data":{}}`
	for range 2 {
		e.post("/events", "application/x-ndjson", body, HeaderIdempotencyKey, "req-1").expect(t, http.StatusAccepted, nil)
	}
	e.post("/events", "application/x-ndjson", body).expect(t, http.StatusAccepted, nil)
	var ids []string
	for _, r := range e.consume(9) { // one key: one partition, in order
		var v struct{ ID string }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.ID)
	}
	if ids[0] == ids[1] || ids[0] != ids[3] || ids[1] != ids[4] || ids[2] != "mine" || ids[5] != "mine" {
		t.Errorf("with an Idempotency-Key: ids %v, want distinct per line and equal across the retry", ids[:6])
	}
	if ids[6] == ids[0] || ids[7] == ids[1] || ids[8] != "mine" {
		t.Errorf("without an Idempotency-Key: ids %v, want new random ids", ids[6:])
	}
}

func TestIngestLimitsAndAuth(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.Token = "s3cret" })
	one := `{"source":"s","event":"e","data":{}}`
	auth := []string{"Authorization", "Bearer s3cret"}

	t.Run("token", func(t *testing.T) {
		r := e.post("/events", "application/json", one)
		r.expect(t, http.StatusUnauthorized, map[string]any{"message": "Unauthorized"})
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("no WWW-Authenticate")
		}
		e.post("/events", "application/json", one, "Authorization", "Bearer wrong").expect(t, http.StatusUnauthorized, nil)
		e.post("/events", "application/json", one, "Authorization", "s3cret").expect(t, http.StatusUnauthorized, nil)
		e.post("/events", "application/json", one, auth...).expect(t, http.StatusAccepted, map[string]any{"accepted": 1.0})
	})

	t.Run("body limit", func(t *testing.T) {
		// Announce one byte too many and send nothing: the answer must come from the headers.
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n", DefaultMaxBodyBytes+1)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || string(raw) != `{"message":"request body exceeds 16777216 bytes"}` {
			t.Errorf("%d %s", resp.StatusCode, raw)
		}
	})

	t.Run("other answers", func(t *testing.T) {
		e.post("/events", "text/plain", one, auth...).expect(t, http.StatusUnsupportedMediaType, nil)
		e.post("/events", "application/json", one, append(auth, "Content-Encoding", "gzip")...).expect(t, http.StatusUnsupportedMediaType, nil)
		e.post("/nope", "application/json", one).expect(t, http.StatusNotFound, map[string]any{"message": "Not found"})
		req, _ := http.NewRequest(http.MethodGet, e.url+"/events", nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		r := e.do(req)
		r.expect(t, http.StatusMethodNotAllowed, nil)
		if r.header.Get("Allow") != "POST" {
			t.Errorf("Allow %q", r.header.Get("Allow"))
		}
		req, _ = http.NewRequest(http.MethodGet, e.url+"/healthz", nil)
		e.do(req).expect(t, http.StatusOK, map[string]any{"status": "ok"})
	})
	if got := e.endOffsets(); got != 1 {
		t.Errorf("%d records, want the one authorised event", got)
	}
}

// TestIngestSmallBodyLimit sends a real body over a configured limit.
func TestIngestSmallBodyLimit(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	body := strings.Repeat(`{"source":"s","event":"e","data":{}}`+"\n", 60)
	e.post("/events", "application/x-ndjson", body).expect(t, http.StatusRequestEntityTooLarge,
		map[string]any{"message": "request body exceeds 1024 bytes"})
}

func ndjsonLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"source":"balancer","event":"health","data":{"upstream_id":"u-%d","seq":%d}}`+"\n", i%50, i)
	}
	return b.String()
}

// TestIngestBrokerDown: with the broker gone before the request, the answer is 503 after
// Timeout, never 202.
func TestIngestBrokerDown(t *testing.T) {
	e := newIngestEnv(t, func(c *Config) { c.Timeout = 2 * time.Second },
		kgo.RecordDeliveryTimeout(2*time.Second))
	e.post("/events", "application/json", `{"source":"s","event":"e","data":{}}`).expect(t, http.StatusAccepted, nil)
	e.emb.Close()
	start := time.Now()
	r := e.post("/events", "application/x-ndjson", ndjsonLines(1000))
	r.expect(t, http.StatusServiceUnavailable, map[string]any{"accepted": 0.0})
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "retry the whole request") || !strings.Contains(msg, "of 1000 events") {
		t.Errorf("message %q", msg)
	}
	// Generous: without the timeout the request would wait for the client's 60 s.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("503 after %v, want about the 2s timeout", d)
	}
}

// stallAfterFirstBatch holds the producer's acknowledgement path after its first
// acknowledged batch until resume is closed, so the test can kill the broker mid-request.
type stallAfterFirstBatch struct {
	once            sync.Once
	written, resume chan struct{}
}

func (h *stallAfterFirstBatch) OnProduceBatchWritten(kgo.BrokerMetadata, string, int32, kgo.ProduceBatchMetrics) {
	h.once.Do(func() {
		close(h.written)
		select {
		case <-h.resume:
		case <-time.After(time.Minute):
		}
	})
}

// TestIngestBrokerDiesMidRequest kills the broker after part of a 10k batch was
// acknowledged: the answer is 503, no partial acknowledgement.
func TestIngestBrokerDiesMidRequest(t *testing.T) {
	stall := &stallAfterFirstBatch{written: make(chan struct{}), resume: make(chan struct{})}
	e := newIngestEnv(t, func(c *Config) { c.Timeout = 2 * time.Second },
		kgo.RecordDeliveryTimeout(2*time.Second), kgo.MaxBufferedRecords(100), kgo.WithHooks(stall))
	answer := make(chan ingestResponse, 1)
	go func() { answer <- e.post("/events", "application/x-ndjson", ndjsonLines(10000)) }()
	select {
	case <-stall.written:
	case r := <-answer:
		t.Fatalf("answered %d before any batch was acknowledged: %s", r.status, r.raw)
	case <-time.After(time.Minute):
		t.Fatal("no batch acknowledged")
	}
	e.emb.Close()
	close(stall.resume)
	select {
	case r := <-answer:
		r.expect(t, http.StatusServiceUnavailable, map[string]any{"accepted": 0.0})
		t.Logf("answer: %s", r.raw)
	case <-time.After(time.Minute):
		t.Fatal("no answer")
	}
}

func TestNewValidates(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, cfg := range []Config{
		{Topic: eventsTopic},
		{Producer: cl},
		{Producer: cl, Topic: eventsTopic, Timeout: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}
