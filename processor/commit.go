package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// commitLoop commits the done offsets of every owned partition on a timer.
func (c *groupConsumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.p.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.commitOwned()
		}
	}
}

// commitOwned commits the partitions this member still owns. It holds commitMu across the
// read of the worker set and the commit, so a partition revoked meanwhile is either
// committed here before its revoke commit, or not at all.
func (c *groupConsumer) commitOwned() {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.wmu.Lock()
	ws := make([]*partitionWorker, 0, len(c.workers))
	for _, w := range c.workers {
		ws = append(ws, w)
	}
	c.wmu.Unlock()
	c.commitLocked(ws)
}

// commitFinal commits the done offsets of workers that were just stopped, after waiting
// (briefly) for the parks and gate state still in flight, so records they finish are
// committed too.
func (c *groupConsumer) commitFinal(ws []*partitionWorker) {
	ctx, cancel := context.WithTimeout(context.Background(), finalFlush)
	defer cancel()
	// On timeout, the records waiting for those writes are redelivered: at-least-once.
	_ = c.p.parker.Flush(ctx)
	if c.p.stateProd != nil {
		_ = c.p.stateProd.Flush(ctx)
	}
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.commitLocked(ws)
}

// finalFlush bounds how long a revoke or shutdown waits for writes in flight.
const finalFlush = 10 * time.Second

// commitLocked commits each worker's commit point if it moved. commitMu must be held.
func (c *groupConsumer) commitLocked(ws []*partitionWorker) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, w := range ws {
		at := w.wm.commitPoint()
		w.m.pending.Set(float64(w.wm.pending()))
		w.m.buffered.Set(float64(w.buffered.Load()))
		if at < 0 || at == w.committed {
			continue
		}
		if offsets[w.topic] == nil {
			offsets[w.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[w.topic][w.partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
	}
	if len(offsets) == 0 {
		return
	}
	// No flush: a record whose gate state, park or dead letter is not acknowledged is not
	// done (recordAck), so it is below no commit point yet.
	start := time.Now()
	// The commit itself is not cancelled: a cancelled request may still reach the broker
	// after a later commit and rewind the offset. kgo's own retry timeout bounds it.
	c.client().CommitOffsetsSync(context.Background(), offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitDuration.UpdateDuration(start)
		if err != nil {
			commitErrors.Inc()
			c.p.logs.Warn(c.p.log, "commit", "cannot commit offsets", "err", err)
			return
		}
		rejected := map[tp]bool{}
		for _, t := range resp.Topics {
			for _, part := range t.Partitions {
				if part.ErrorCode != 0 {
					rejected[tp{t.Topic, part.Partition}] = true
					commitErrors.Inc()
					c.p.logs.Warn(c.p.log, "commit", "offset commit rejected", "topic", t.Topic, "partition", part.Partition, "code", part.ErrorCode)
				}
			}
		}
		for _, w := range ws {
			if o, ok := offsets[w.topic][w.partition]; ok && !rejected[tp{w.topic, w.partition}] {
				w.committed = o.Offset
			}
		}
	})
}
