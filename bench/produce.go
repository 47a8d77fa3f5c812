package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
)

// Event shape of the generated load: Kong's balancer health event.
const (
	EventSource = "balancer"
	EventName   = "health"
)

// produceWindow bounds the records Produce has in flight (handed to the client, not yet
// acknowledged).
const produceWindow = 8192

var eventHeaders = []kgo.RecordHeader{
	{Key: hooks.HeaderSource, Value: []byte(EventSource)},
	{Key: hooks.HeaderEvent, Value: []byte(EventName)},
}

// Produce writes n event envelopes of about size bytes to topic, with entity keys
// "u-0" … "u-<keys-1>" round robin, and waits until every one is acknowledged. It keeps
// at most produceWindow records in flight. rate > 0 paces it at that many events per
// second (in bursts of at most a millisecond); 0 produces as fast as the client takes
// them. Each event's data carries "ts", the unix nanoseconds at which the record was
// handed to the client. The envelope is
//
//	{"id":"<run>-<i>","source":"balancer","event":"health","data":{"upstream_id":"u-<k>",
//	 "ip":"10.x.y.z","port":8000,"hostname":"u-<k>.internal","health":"unhealthy",
//	 "ts":<nanos>,"pad":"xx…"}}
//
// with eh-source/eh-event headers. The Result has Events, Seconds and PerSec only: the
// caller measures CPU and memory when the producer runs alone.
func Produce(ctx context.Context, cl *kgo.Client, topic string, n, keys, size int, rate float64) (Result, error) {
	return produce(ctx, cl, topic, n, keys, size, rate, false)
}

// ProduceNumbered is Produce with each event's data carrying "seq":<i> as well, its index
// 0 … n-1 (before "ts", in the same size): a Receiver tracking ids (TrackIDs) then tells
// which events arrived, however many processes delivered them.
func ProduceNumbered(ctx context.Context, cl *kgo.Client, topic string, n, keys, size int, rate float64) (Result, error) {
	return produce(ctx, cl, topic, n, keys, size, rate, true)
}

// produce is Produce, with "seq" in the data when numbered.
func produce(ctx context.Context, cl *kgo.Client, topic string, n, keys, size int, rate float64, numbered bool) (Result, error) {
	res := Result{Name: "produce"}
	if keys <= 0 {
		keys = 1
	}
	run := make([]byte, 4)
	_, _ = rand.Read(run)
	gen := generator{run: hex.EncodeToString(run), size: size, numbered: numbered}
	keyBytes := make([][]byte, min(keys, n))
	for k := range keyBytes {
		keyBytes[k] = []byte("u-" + strconv.Itoa(k))
	}

	var (
		mu      sync.Mutex
		failed  error
		window  = make(chan struct{}, produceWindow)
		release = func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if failed == nil {
					failed = err
				}
				mu.Unlock()
			}
			<-window
		}
	)
	start := time.Now()
	produced := 0
loop:
	for i := 0; i < n; i++ {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > time.Millisecond {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break loop
				}
			}
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		if i%1024 == 0 {
			mu.Lock()
			err := failed
			mu.Unlock()
			if err != nil {
				<-window
				break loop
			}
		}
		k := i % len(keyBytes)
		rec := &kgo.Record{Topic: topic, Key: keyBytes[k], Headers: eventHeaders}
		rec.Value = gen.appendEvent(make([]byte, 0, size+64), i, k, time.Now().UnixNano())
		cl.Produce(ctx, rec, release)
		produced++
	}
	for range produceWindow { // every promise has run once the window is full again
		window <- struct{}{}
	}
	res.Events = int64(produced)
	res.Seconds = time.Since(start).Seconds()
	res.PerSec = float64(res.Events) / res.Seconds
	mu.Lock()
	defer mu.Unlock()
	switch {
	case failed != nil:
		return res, fmt.Errorf("cannot produce to %s: %w", topic, failed)
	case produced < n:
		return res, fmt.Errorf("produced %d of %d events to %s: %w", produced, n, topic, ctx.Err())
	}
	return res, nil
}

// generator builds the event envelopes of one Produce call.
type generator struct {
	run      string // random per call, so event ids are unique across runs
	size     int
	numbered bool // "seq":<i> in the data
}

// appendEvent appends event i of key k, sent at ts, padded to about g.size bytes.
func (g generator) appendEvent(b []byte, i, k int, ts int64) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, g.run...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","source":"`+EventSource+`","event":"`+EventName+`","data":{"upstream_id":"u-`...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, `","ip":"10.`...)
	b = strconv.AppendInt(b, int64(k>>16&255), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(k>>8&255), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(k&255), 10)
	b = append(b, `","port":8000,"hostname":"u-`...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, `.internal","health":"unhealthy",`...)
	if g.numbered {
		b = append(b, `"seq":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
	}
	b = append(b, `"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	for pad := g.size - len(b) - len(`"}}`); pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}}`...)
}
