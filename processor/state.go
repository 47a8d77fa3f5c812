package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/processor/gates"
)

// Gate state lives with the lane that owns the entity key and is written to the compacted
// state topic at the partition number of the event, so the owner of an events partition
// restores exactly the state of its keys before its first record.

var (
	restoreDuration = metrics.NewPrometheusHistogramExt(describe(`eventhooks_state_restore_duration_seconds`, "Time to restore a partition's gate state from the state topic."),
		[]float64{.001, .01, .1, .5, 1, 2.5, 5, 10, 30, 60})
	restoreErrors = metrics.NewCounter(describe(`eventhooks_state_restore_errors_total`, "Failed restores of a partition's gate state, each retried."))
	stateWrites   = metrics.NewCounter(describe(`eventhooks_state_writes_total`, "Gate state changes written to the state topic."))
	// stateWriteErrors counts gate state writes that failed or found the buffer full.
	stateWriteErrors = metrics.NewCounter(describe(`eventhooks_state_write_errors_total`, "Gate state writes that failed or found the buffer full."))
)

// expireEvery is how often a lane sweeps its expired gate entries.
const expireEvery = 5 * time.Second

// maybeExpire sweeps, every expireEvery, the lane's expired entries and those of hooks
// deleted since, and writes their tombstones.
func (l *lane) maybeExpire(now time.Time) {
	if now.Sub(l.lastExpire) < expireEvery {
		return
	}
	l.lastExpire = now
	before := l.gates.Len()
	p := l.w.c.p
	if deleted := p.ib.deleted.Load(); deleted != nil && len(*deleted) > l.deletedSeen {
		for _, id := range (*deleted)[l.deletedSeen:] {
			for _, c := range l.gates.DropHook(id) {
				p.writeState(l.w.ctx, nil, l.w.partition, c)
			}
		}
		l.deletedSeen = len(*deleted)
	}
	for _, c := range l.gates.Expire(now) {
		p.writeState(l.w.ctx, nil, l.w.partition, c)
	}
	p.shared.Expire(now) // every lane sweeps it too: a sweep of nothing costs one lock
	gates.AddEntries(l.gates.Len() - before)
}

// restoreState reads the state topic's partition from its start to the end offset listed
// now into the worker's lanes (and the shared hook-scoped set), before the worker
// dispatches its first record.
func (w *partitionWorker) restoreState() error {
	p := w.c.p
	if p.cfg.StateTopic == "" {
		return nil
	}
	start := time.Now()
	defer func() { restoreDuration.UpdateDuration(start) }()
	cl, err := kgo.NewClient(p.cfg.ClientOpts...)
	if err != nil {
		return fmt.Errorf("cannot create state client: %w", err)
	}
	end, err := p.endOffset(w.feed, kadm.NewClient(cl), p.cfg.StateTopic, w.partition)
	cl.Close()
	if err != nil {
		return err
	}
	now, n := p.cfg.Now(), 0
	err = readPartition(w.feed, p.cfg.ClientOpts, p.cfg.StateTopic, w.partition, 0, end, func(r *kgo.Record) {
		n++
		w.restoreRecord(r, now)
	})
	if err != nil {
		return err
	}
	p.log.Debug("gate state restored", "partition", w.partition, "records", n, "took", time.Since(start))
	return nil
}

// endOffset returns the end offset of topic's partition, a state or retry topic; one that
// lacks the partition is grown (see growTopic) and the restore tried again.
func (p *Processor) endOffset(ctx context.Context, adm *kadm.Client, topic string, partition int32) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("cannot list %s end offsets: %w", topic, err)
	}
	end, ok := ends.Lookup(topic, partition)
	if !ok || end.Err != nil {
		return 0, p.growTopic(ctx, adm, topic, partition)
	}
	return end.Offset, nil
}

// growTopic adds partitions to a state or retry topic that lacks partition: an input
// topic grew, and those topics are co-partitioned with it. It returns an error either way,
// so the restore is tried again (and succeeds once the partition exists).
func (p *Processor) growTopic(ctx context.Context, adm *kadm.Client, topic string, partition int32) error {
	missing := fmt.Errorf("topic %s has no partition %d, which an input topic has (they must be co-partitioned)", topic, partition)
	resp, err := adm.UpdatePartitions(ctx, int(partition)+1, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		p.log.Error("cannot add partitions to a co-partitioned topic: add them by hand", "topic", topic, "partitions", partition+1, "err", err)
		return fmt.Errorf("%w; adding partitions failed: %w", missing, err)
	}
	p.log.Warn("added partitions to a co-partitioned topic, as an input topic has more", "topic", topic, "partitions", partition+1)
	return fmt.Errorf("%w; partitions added, retrying", missing)
}

// restoreStall is how long a restore waits for the next record before it gives up (and
// is retried): the end offset was listed, so a record is there to be read.
const restoreStall = 30 * time.Second

// readPartition calls fn for each record of topic/partition from offset from up to end
// (exclusive), in order. It fails on a fetch error, or when no record arrives for
// restoreStall, rather than mistake a slow broker for the end.
func readPartition(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, end int64, fn func(*kgo.Record)) error {
	if from >= end {
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return fmt.Errorf("cannot create client for %s: %w", topic, err)
	}
	defer cl.Close()
	for next := from; next < end; {
		pctx, cancel := context.WithTimeout(ctx, restoreStall)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			return fmt.Errorf("read %s/%d: no record for %v at offset %d, end %d", topic, partition, restoreStall, next, end)
		}
		var ferr error
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && ferr == nil {
				ferr = fmt.Errorf("read %s/%d: %w", t, part, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Offset < end {
				fn(r)
			}
		})
	}
	return nil
}

func (w *partitionWorker) restoreRecord(r *kgo.Record, now time.Time) {
	p := w.c.p
	var err error
	if gates.IsHookScoped(r.Key) {
		err = p.shared.Restore(r.Key, r.Value, now)
	} else if key := gates.EntityKeyOf(r.Key); key == nil {
		err = fmt.Errorf("unreadable state key %q", r.Key)
	} else {
		l := w.laneFor(&kgo.Record{Key: key})
		before := l.gates.Len()
		err = l.gates.Restore(r.Key, r.Value, now)
		gates.AddEntries(l.gates.Len() - before)
	}
	if err != nil {
		restoreErrors.Inc()
		p.logs.Warn(p.log, "restore", "skipping unreadable gate state", "partition", w.partition, "offset", r.Offset, "err", err)
	}
}
