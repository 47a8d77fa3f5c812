package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/sinks"
)

// Target is where the HTTP baselines send.
type Target struct {
	// URL receives the POSTs.
	URL string
	// Receiver, when the URL is an in-process Receiver, gives the latency figures and is
	// Reset at the start of each baseline; nil for an external target (no latency).
	Receiver *Receiver
	// MaxConns bounds the connections to the target (default sinks.DefaultMaxConnsPerHost,
	// the processor's default).
	MaxConns int
}

// hostClient returns a client configured like the processor's pool (sinks.PoolConfig
// defaults) and the request URI.
func (t Target) hostClient() (*fasthttp.HostClient, string, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("target %q: want an http(s) URL", t.URL)
	}
	isTLS := u.Scheme == "https"
	maxConns := t.MaxConns
	if maxConns <= 0 {
		maxConns = sinks.DefaultMaxConnsPerHost
	}
	return &fasthttp.HostClient{
		Addr:                fasthttp.AddMissingPort(u.Host, isTLS),
		IsTLS:               isTLS,
		MaxConns:            maxConns,
		MaxConnWaitTimeout:  sinks.DefaultMaxConnWaitTimeout,
		ReadTimeout:         sinks.DefaultReadTimeout,
		WriteTimeout:        sinks.DefaultWriteTimeout,
		MaxResponseBodySize: sinks.DefaultMaxResponseBodySize,
		MaxIdleConnDuration: sinks.DefaultMaxIdleConnDuration,
	}, t.URL, nil
}

// begin resets the receiver, if any, and starts measuring.
func (t Target) begin() *Meter {
	if t.Receiver != nil {
		t.Receiver.Reset()
	}
	return StartMeter()
}

// finish fills in the receiver's latency and the meter's figures.
func (t Target) finish(m *Meter, r *Result) {
	m.Stop(r)
	if t.Receiver != nil {
		r.Latency = t.Receiver.Latency()
		r.Deliveries = t.Receiver.Count()
	}
	if r.Seconds > 0 {
		r.PerSec = float64(r.Events) / r.Seconds
	}
}

// deliveryTimeout bounds one baseline POST, like a hook's default timeout.
const deliveryTimeout = 10 * time.Second

// RawHTTP measures the request loop alone: n POSTs of a ~250-byte JSON body (the shape of
// the webhook handler's body, with "ts" set just before sending) through one
// fasthttp.HostClient from concurrency goroutines. Seconds runs from the first request to
// the last response. Failed requests are counted in Errors, not retried.
func RawHTTP(ctx context.Context, t Target, n, concurrency int) (Result, error) {
	res := Result{Name: "raw HTTP"}
	hc, uri, err := t.hostClient()
	if err != nil {
		return res, err
	}
	defer hc.CloseIdleConnections()
	concurrency = max(concurrency, 1)
	var next, done, errs atomic.Int64
	m := t.begin()
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var body []byte
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				body = appendHTTPBody(body[:0], i, time.Now().UnixNano())
				req.SetRequestURI(uri)
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.SetContentType("application/json")
				req.SetBody(body)
				if err := hc.DoDeadline(req, resp, time.Now().Add(deliveryTimeout)); err != nil || resp.StatusCode()/100 != 2 {
					errs.Add(1)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Events = done.Load()
	res.Errors = errs.Load()
	t.finish(m, &res)
	return res, ctx.Err()
}

// appendHTTPBody appends a body shaped like the webhook handler's: the event data plus
// source and event, about 250 bytes.
func appendHTTPBody(b []byte, i, ts int64) []byte {
	k := i % 10000
	b = append(b, `{"upstream_id":"u-`...)
	b = strconv.AppendInt(b, k, 10)
	b = append(b, `","ip":"10.0.0.1","port":8000,"hostname":"u-`...)
	b = strconv.AppendInt(b, k, 10)
	b = append(b, `.internal","health":"unhealthy","ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","source":"balancer","event":"health"}`...)
	return b
}

// RawConsume measures franz-go alone: a direct (groupless) consumer of topic from its
// start, until n records were polled. conn are the connection options (seed brokers,
// TLS, SASL). Seconds include creating the client and the first metadata round trip.
func RawConsume(ctx context.Context, conn []kgo.Opt, topic string, n int) (Result, error) {
	res := Result{Name: "raw consume"}
	m := StartMeter()
	start := time.Now()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, conn...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return res, fmt.Errorf("cannot create consumer: %w", err)
	}
	defer cl.Close()
	var got, bytes int64
	for got < int64(n) {
		fetches := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			break
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
		})
	}
	res.Seconds = time.Since(start).Seconds()
	res.Events = got
	m.Stop(&res)
	res.PerSec = float64(res.Events) / res.Seconds
	if got < int64(n) {
		return res, fmt.Errorf("raw consume got %d of %d records: %w", got, n, ctx.Err())
	}
	return res, nil
}

// BarePipeline measures the least a consumer-group webhook forwarder can do: a kgo
// consumer group (a fresh group id, from the start of topic), one goroutine per assigned
// partition, lanes key lanes per partition by key hash, and in each lane a fasthttp POST
// of the record value to the target; nothing else (no decoding, no matching, no
// watermark: offsets are autocommitted as polled). It stops once n records were
// delivered (non-2xx and errors are counted in Errors, not retried). Seconds runs from
// creating the client (so they include joining the group, as the processor's do) to the
// n-th response.
func BarePipeline(ctx context.Context, conn []kgo.Opt, topic string, t Target, n, lanes int) (Result, error) {
	res := Result{Name: "bare pipeline"}
	hc, uri, err := t.hostClient()
	if err != nil {
		return res, err
	}
	defer hc.CloseIdleConnections()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	bp := &barePipe{
		ctx: pctx, hc: hc, uri: uri, lanes: max(lanes, 1), n: int64(n),
		workers: map[int32]*bareWorker{}, finished: make(chan struct{}),
	}

	m := t.begin()
	start := time.Now()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, conn...),
		kgo.ConsumerGroup("bench-bare-"+hex.EncodeToString(id)),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(bp.assigned),
		kgo.OnPartitionsRevoked(bp.revoked),
		kgo.OnPartitionsLost(bp.revoked),
	)...)
	if err != nil {
		return res, fmt.Errorf("cannot create consumer: %w", err)
	}
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		bp.poll(cl)
	}()
	select {
	case <-bp.finished:
	case <-ctx.Done():
	}
	end := time.Unix(0, bp.lastAt.Load())
	stop()
	<-polled
	bp.stopAll()
	cl.CloseAllowingRebalance()

	res.Events = min(bp.done.Load(), int64(n))
	res.Errors = bp.errs.Load()
	res.Seconds = end.Sub(start).Seconds()
	if res.Events < int64(n) {
		res.Seconds = time.Since(start).Seconds()
	}
	if first := bp.firstAt.Load(); first != 0 {
		res.Startup = time.Unix(0, first).Sub(start)
	}
	t.finish(m, &res)
	if res.Events < int64(n) {
		return res, fmt.Errorf("bare pipeline delivered %d of %d records: %w", res.Events, n, ctx.Err())
	}
	return res, nil
}

// barePipe is BarePipeline's consumer. Concurrency: workers is guarded by mu; the group
// callbacks add and remove workers, the poll loop (which holds off rebalances between
// PollRecords and AllowRebalance) feeds them. Lanes only touch atomics and their own
// request.
type barePipe struct {
	ctx   context.Context
	hc    *fasthttp.HostClient
	uri   string
	lanes int
	n     int64

	mu      sync.Mutex
	workers map[int32]*bareWorker

	done, errs      atomic.Int64
	firstAt, lastAt atomic.Int64 // unix nanos of the first and the n-th delivery
	finishOnce      sync.Once
	finished        chan struct{}
}

type bareWorker struct {
	in    chan []*kgo.Record
	lanes []chan *kgo.Record
	wg    sync.WaitGroup
}

var bareSeed = maphash.MakeSeed()

func (bp *barePipe) poll(cl *kgo.Client) {
	for {
		fetches := cl.PollRecords(bp.ctx, 10000)
		if fetches.IsClientClosed() || bp.ctx.Err() != nil {
			cl.AllowRebalance()
			return
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			bp.mu.Lock()
			w := bp.workers[p.Partition]
			bp.mu.Unlock()
			if w == nil {
				return
			}
			select {
			case w.in <- p.Records:
			case <-bp.ctx.Done():
			}
		})
		cl.AllowRebalance()
	}
}

func (bp *barePipe) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	for _, parts := range assigned {
		for _, p := range parts {
			if bp.workers[p] != nil {
				continue
			}
			w := &bareWorker{in: make(chan []*kgo.Record, 4), lanes: make([]chan *kgo.Record, bp.lanes)}
			for i := range w.lanes {
				w.lanes[i] = make(chan *kgo.Record, 256)
				w.wg.Go(func() { bp.lane(w.lanes[i]) })
			}
			w.wg.Go(func() { bp.dispatch(w) })
			bp.workers[p] = w
		}
	}
}

// revoked stops the revoked partitions' workers and waits for them (they drop what they
// have not sent: this baseline does not care about redelivery).
func (bp *barePipe) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	var ws []*bareWorker
	bp.mu.Lock()
	for _, parts := range revoked {
		for _, p := range parts {
			if w := bp.workers[p]; w != nil {
				ws = append(ws, w)
				delete(bp.workers, p)
			}
		}
	}
	bp.mu.Unlock()
	stopWorkers(ws)
}

func (bp *barePipe) stopAll() {
	bp.mu.Lock()
	ws := make([]*bareWorker, 0, len(bp.workers))
	for p, w := range bp.workers {
		ws = append(ws, w)
		delete(bp.workers, p)
	}
	bp.mu.Unlock()
	stopWorkers(ws)
}

// stopWorkers closes the workers' inputs (nothing sends to them any more: they were
// removed from the map while the poll loop was not feeding) and waits for them.
func stopWorkers(ws []*bareWorker) {
	for _, w := range ws {
		close(w.in)
	}
	for _, w := range ws {
		w.wg.Wait()
	}
}

func (bp *barePipe) dispatch(w *bareWorker) {
	defer func() {
		for _, l := range w.lanes {
			close(l)
		}
	}()
	for batch := range w.in {
		for _, r := range batch {
			select {
			case w.lanes[maphash.Bytes(bareSeed, r.Key)%uint64(len(w.lanes))] <- r:
			case <-bp.ctx.Done():
				return
			}
		}
	}
}

func (bp *barePipe) lane(in <-chan *kgo.Record) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for r := range in {
		if bp.ctx.Err() != nil {
			continue // stopping: drop
		}
		req.SetRequestURI(bp.uri)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(r.Value) // not copied; the record outlives the request's use
		if err := bp.hc.DoDeadline(req, resp, time.Now().Add(deliveryTimeout)); err != nil || resp.StatusCode()/100 != 2 {
			bp.errs.Add(1)
		}
		now := time.Now().UnixNano()
		d := bp.done.Add(1)
		if d == 1 {
			bp.firstAt.Store(now)
		}
		if d == bp.n {
			bp.lastAt.Store(now)
			bp.finishOnce.Do(func() { close(bp.finished) })
		}
	}
}
