package processor

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Gate state lives with the lane that owns the entity key and is written to the compacted
// state topic at the partition number of the event, so the owner of an events partition
// restores exactly the state of its keys before its first record.

var (
	gateEntries     atomic.Int64
	_               = metrics.NewGauge(`eventhooks_gate_entries`, func() float64 { return float64(gateEntries.Load()) })
	restoreDuration = metrics.NewPrometheusHistogramExt(`eventhooks_state_restore_duration_seconds`,
		[]float64{.001, .01, .1, .5, 1, 2.5, 5, 10, 30, 60})
	restoreErrors = metrics.NewCounter(`eventhooks_state_restore_errors_total`)
	stateWrites   = metrics.NewCounter(`eventhooks_state_writes_total`)
	// stateWriteErrors counts gate state writes that failed or found the buffer full.
	stateWriteErrors = metrics.NewCounter(`eventhooks_state_write_errors_total`)
)

// expireEvery is how often a lane sweeps its expired gate entries.
const expireEvery = 5 * time.Second

// serveGated runs the hook's gates around serve: a gated event is dropped (counted), a
// delivered one records its firing in the lane's state and the changelog.
func (p *Processor) serveGated(l *lane, ch *compiledHook) outcome {
	spec := &ch.gate
	d := delivery{ctx: l.w.ctx, ev: &l.ev, sinks: &l.sinks, live: l}
	if !spec.active() || l.gates == nil {
		return p.serve(d, ch, nil, p.cfg.InlineAttempts)
	}
	now := p.cfg.Now()
	var fp uint64
	if spec.needsFingerprint() {
		fp = fingerprint(l.ev.Data(), spec.unique)
	}
	key := l.ev.Key
	if spec.hookScoped() {
		key = nil
		if ok, reason := p.shared.check(spec, ch.hook.ID, key, fp, now); !ok {
			ch.m.gatedCounter(reason).Inc()
			return delivered // dropped by the gate: done
		}
		out := p.serve(d, ch, nil, p.cfg.InlineAttempts)
		if out == delivered {
			p.writeState(l.ev.Record.Partition, p.shared.fired(spec, ch.hook.ID, key, fp, now))
		} else {
			p.shared.release(spec, ch.hook.ID, key, fp)
		}
		return out
	}
	if ok, reason := l.gates.check(spec, ch.hook.ID, key, fp, now); !ok {
		ch.m.gatedCounter(reason).Inc()
		return delivered
	}
	out := p.serve(d, ch, nil, p.cfg.InlineAttempts)
	if out == delivered {
		before := l.gates.len()
		p.writeState(l.ev.Record.Partition, l.gates.fired(spec, ch.hook.ID, key, fp, now))
		gateEntries.Add(int64(l.gates.len() - before))
	}
	return out
}

// maybeExpire sweeps, every expireEvery, the lane's expired entries and those of hooks
// deleted since, and writes their tombstones.
func (l *lane) maybeExpire(now time.Time) {
	if now.Sub(l.lastExpire) < expireEvery {
		return
	}
	l.lastExpire = now
	before := l.gates.len()
	p := l.w.c.p
	if deleted := p.ib.deleted.Load(); deleted != nil && len(*deleted) > l.deletedSeen {
		for _, id := range (*deleted)[l.deletedSeen:] {
			for _, c := range l.gates.dropHook(id) {
				p.writeState(l.w.partition, c)
			}
		}
		l.deletedSeen = len(*deleted)
	}
	for _, c := range l.gates.expire(now) {
		p.writeState(l.w.partition, c)
	}
	gateEntries.Add(int64(l.gates.len() - before))
}

// writeState produces a state change to the state topic at partition, asynchronously;
// commits flush the producer first, so no offset is committed before the state it led to.
func (p *Processor) writeState(partition int32, c stateChange) {
	if c.key == nil || p.stateProd == nil {
		return
	}
	stateWrites.Inc()
	rec := &kgo.Record{Topic: p.cfg.StateTopic, Partition: partition, Key: c.key, Value: c.value}
	// TryProduce: a lane never blocks on a full producer buffer (a state topic that is
	// down); the write is then lost and counted, costing at worst a repeated firing.
	p.stateProd.TryProduce(context.Background(), rec, func(r *kgo.Record, err error) {
		if err != nil {
			stateWriteErrors.Inc()
			p.logs.warn(p.log, "state-write", "cannot write gate state", "partition", r.Partition, "err", err)
		}
	})
}

// flushState waits until every state change produced so far is acknowledged.
func (p *Processor) flushState(ctx context.Context) error {
	if p.stateProd == nil {
		return nil
	}
	return p.stateProd.Flush(ctx)
}

// restoreState reads the state topic's partition from its start to its current end into
// the worker's lanes (and the shared hook-scoped set), before the worker dispatches its
// first record.
func (w *partitionWorker) restoreState() error {
	p := w.c.p
	if p.cfg.StateTopic == "" {
		return nil
	}
	start := time.Now()
	defer func() { restoreDuration.UpdateDuration(start) }()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.StateTopic: {w.partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, p.cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("cannot create state client: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(w.ctx, p.cfg.StateTopic)
	if err != nil {
		return fmt.Errorf("cannot list state topic offsets: %w", err)
	}
	end, ok := ends.Lookup(p.cfg.StateTopic, w.partition)
	if !ok || end.Err != nil {
		return fmt.Errorf("state topic %s has no partition %d (it must be co-partitioned with the events topic)", p.cfg.StateTopic, w.partition)
	}
	now, n := p.cfg.Now(), 0
	for next := int64(0); next < end.Offset; {
		// A compacted-away tail never arrives: a quiet poll means the end was reached.
		pctx, cancel := context.WithTimeout(w.ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Offset >= end.Offset {
				return
			}
			n++
			w.restoreRecord(r, now)
		})
	}
	p.log.Debug("gate state restored", "partition", w.partition, "records", n, "took", time.Since(start))
	return nil
}

func (w *partitionWorker) restoreRecord(r *kgo.Record, now time.Time) {
	p := w.c.p
	var err error
	if isHookScoped(r.Key) {
		err = p.shared.restore(r.Key, r.Value, now)
	} else if key := entityKeyOf(r.Key); key == nil {
		err = fmt.Errorf("unreadable state key %q", r.Key)
	} else {
		l := w.laneFor(&kgo.Record{Key: key})
		before := l.gates.len()
		err = l.gates.restore(r.Key, r.Value, now)
		gateEntries.Add(int64(l.gates.len() - before))
	}
	if err != nil {
		restoreErrors.Inc()
		p.logs.warn(p.log, "restore", "skipping unreadable gate state", "partition", w.partition, "offset", r.Offset, "err", err)
	}
}
