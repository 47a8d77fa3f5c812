package processor

import (
	"context"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
)

// partitionWorker owns one assigned partition: it registers each polled record with the
// watermark, in offset order, and hands it to the lane its key hashes to.
type partitionWorker struct {
	p         *Processor
	topic     string
	partition int32
	in        chan []*kgo.Record
	lanes     []*lane
	wm        *watermark
	committed int64 // last committed offset; guarded by Processor.commitMu
	lag       *metrics.Gauge

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var laneSeed = maphash.MakeSeed()

func newPartitionWorker(p *Processor, topic string, partition int32) *partitionWorker {
	ctx, cancel := context.WithCancel(p.ctx)
	w := &partitionWorker{
		p: p, topic: topic, partition: partition,
		in:        make(chan []*kgo.Record, p.cfg.PartitionBuffer),
		wm:        newWatermark(),
		committed: -1,
		lag: metrics.GetOrCreateGauge(`eventhooks_partition_pending_records{topic="`+topic+
			`",partition="`+strconv.Itoa(int(partition))+`"}`, nil),
		ctx: ctx, cancel: cancel,
	}
	w.lanes = make([]*lane, p.cfg.Lanes)
	for i := range w.lanes {
		w.lanes[i] = newLane(w)
	}
	return w
}

func (w *partitionWorker) start() {
	for _, l := range w.lanes {
		w.wg.Go(l.run)
	}
	w.wg.Go(w.dispatch)
}

// stop asks the worker to stop: records not yet handed to a delivery are abandoned (they
// stay uncommitted and are redelivered to the partition's next owner).
func (w *partitionWorker) stop() { w.cancel() }

func (w *partitionWorker) wait() { w.wg.Wait() }

func (w *partitionWorker) dispatch() {
	defer func() {
		for _, l := range w.lanes {
			close(l.in)
		}
	}()
	for {
		select {
		case <-w.ctx.Done():
			return
		case batch := <-w.in:
			for i, r := range batch {
				w.wm.add(r.Offset)
				select {
				case w.laneFor(r, i).in <- r:
				case <-w.ctx.Done():
					return
				}
			}
		}
	}
}

// laneFor picks the lane of a record's key; keyless records are spread by position.
func (w *partitionWorker) laneFor(r *kgo.Record, i int) *lane {
	n := uint64(len(w.lanes))
	if len(r.Key) == 0 {
		return w.lanes[uint64(i)%n]
	}
	return w.lanes[maphash.Bytes(laneSeed, r.Key)%n]
}

// lane processes its records one at a time, in offset order. It owns its decoder and
// scratch event: nothing here is shared with another goroutine but the watermark.
type lane struct {
	w   *partitionWorker
	in  chan *kgo.Record
	dec hooks.Decoder
	ev  hooks.Event
}

func newLane(w *partitionWorker) *lane {
	l := &lane{w: w, in: make(chan *kgo.Record, w.p.cfg.LaneBuffer)}
	l.dec.MaxBytes = w.p.cfg.MaxEventBytes
	if cat := w.p.cfg.Catalogue; cat != nil {
		l.dec.OnNewName = cat.Seen
	}
	return l
}

func (l *lane) run() {
	for r := range l.in {
		if l.w.ctx.Err() != nil {
			continue // abandoned: left uncommitted for the next owner
		}
		l.w.p.handle(l, r)
		l.w.wm.markDone(r.Offset)
	}
}

// handle runs one record through every hook it matches.
func (p *Processor) handle(l *lane, r *kgo.Record) {
	ix := p.index.Load()
	if src, ev, ok := l.dec.Route(r); ok && len(ix.Match(src, ev)) == 0 {
		recordsUnmatched.Inc() // routed by headers: the value is never parsed
		return
	}
	if err := l.dec.Decode(r, &l.ev); err != nil {
		kind := hooks.DecodeErrorKind(err)
		malformedCounter(kind).Inc()
		p.logs.warn(p.log, "malformed:"+kind, "skipping malformed record",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", err)
		return
	}
	matched := ix.Match(l.ev.Source, l.ev.Event)
	if len(matched) == 0 {
		recordsUnmatched.Inc()
		return
	}
	recordsMatched.Inc()
	for _, ch := range matched {
		p.deliver(l, ch)
	}
}

func (p *Processor) deliver(l *lane, ch *compiledHook) {
	res := ch.sink.Deliver(l.w.ctx, &l.ev)
	ch.m.latency.Update(res.Duration.Seconds())
	if res.Delivered {
		ch.m.delivered.Inc()
		return
	}
	ch.m.failed.Inc()
	p.logs.warn(p.log, "deliver:"+ch.hook.ID, "delivery failed",
		"hook_id", ch.hook.ID, "status", res.Status, "err", res.Err,
		"topic", l.ev.Record.Topic, "partition", l.ev.Record.Partition, "offset", l.ev.Record.Offset)
}
