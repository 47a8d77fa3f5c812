package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConsumer consumes the input topics and the retry topic in one consumer group with
// the range balancer, so that partition p of every topic (they have equal partition
// counts) is owned by one member, with one partitionWorker per assigned topic partition:
// an events worker runs key lanes, a retry worker a scheduler (scheduler.go). The
// workers of partition number p share its blockSet. It commits done offsets.
type groupConsumer struct {
	p      *Processor
	group  string
	topics []string // input topics
	retry  string   // retry topic, "" for none
	handle func(l *lane, r *kgo.Record) bool

	clp      atomic.Pointer[kgo.Client] // set by run, and by the group callbacks, which may run first
	ctx      context.Context            // the run context, parent of the workers'
	commitMu sync.Mutex                 // one commit at a time; guards removal from workers too
	wmu      sync.Mutex                 // guards workers and blocks
	workers  map[tp]*partitionWorker
	blocks   map[int32]*blockSet // by partition number, while a worker of it is owned
	joined   atomic.Bool
	// stragglers waits for workers still delivering after their stop grace.
	stragglers sync.WaitGroup
}

type tp struct {
	topic     string
	partition int32
}

func newGroupConsumer(p *Processor, group string, topics []string, retry string) *groupConsumer {
	return &groupConsumer{p: p, group: group, topics: topics, retry: retry, handle: p.handleEvent,
		workers: map[tp]*partitionWorker{}, blocks: map[int32]*blockSet{}}
}

// run consumes until ctx is done, then stops the workers, commits and leaves the group.
func (c *groupConsumer) run(ctx context.Context) error {
	c.carryOverRetryOffsets(ctx)
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.allTopics()...),
		// Range over equal partition counts gives a member the same partition numbers of
		// every topic: the co-partitioning the blocked keys rely on.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// A partition resumed (after its restore, or its backlog drained) is fetched only
		// once the fetch in flight returns: with the other partitions idle that is the
		// max wait, so it is short. An idle member then asks ten times a second.
		kgo.FetchMaxWait(100 * time.Millisecond),
		// Bound what the client buffers ahead of the lanes (default 50 MiB): draining a
		// backlog then costs no more memory than the steady state. 1 MiB of a partition
		// per fetch (kgo's default) fills a quarter of its PartitionBufferBytes; larger
		// fetches made the first record of a drain wait for one huge fetch, for no more
		// events/s.
		kgo.FetchMaxBytes(8 << 20),
		kgo.FetchMaxPartitionBytes(1 << 20),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	}, c.p.cfg.ClientOpts...)
	c.ctx = ctx // before NewClient: group callbacks may run as soon as it returns
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("cannot create consumer for %v: %w", c.topics, err)
	}
	c.clp.Store(cl)

	var wg sync.WaitGroup
	commitCtx, stopCommitter := context.WithCancel(context.Background())
	wg.Go(func() { c.commitLoop(commitCtx) })

	c.pollLoop(ctx)

	// Shutdown: stop feeding, let lanes finish their current record, commit, leave.
	ws := c.takeAll()
	c.stopWorkers(ws)
	stopCommitter()
	wg.Wait()
	c.commitFinal(ws)
	cl.CloseAllowingRebalance()
	c.waitStragglers(time.Second) // stopWorkers gave them stopGrace already
	return nil
}

func (c *groupConsumer) pollLoop(ctx context.Context) {
	for {
		fetches := c.client().PollRecords(ctx, c.p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			// No AllowRebalance: no partition may move while run stops the workers and
			// commits; CloseAllowingRebalance then leaves the group.
			return
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.p.logs.Warn(c.p.log, "fetch:"+t, "fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			c.wmu.Lock()
			w := c.workers[tp{ftp.Topic, ftp.Partition}]
			c.wmu.Unlock()
			if w == nil {
				return
			}
			w.m.consumed.Add(len(ftp.Records))
			w.m.lag.Set(float64(ftp.HighWatermark - ftp.Records[len(ftp.Records)-1].Offset - 1))
			w.offer(ftp.Records)
		})
		c.client().AllowRebalance()
	}
}

// carryOverRetryOffsets starts the retry topic where the previous version's retry group
// (<group>-retry) got to, when this group has no offsets of its own for it yet: without
// it an upgrade would re-send every retry entry the topic still holds. It can only commit
// while the group is empty (all instances upgraded together, as the README says); if it
// cannot, it says so and the retry topic is read from its start.
func (c *groupConsumer) carryOverRetryOffsets(ctx context.Context) {
	if c.retry == "" {
		return
	}
	cl, err := kgo.NewClient(c.p.cfg.ClientOpts...)
	if err != nil {
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if own, err := adm.FetchOffsets(ctx, c.group); err == nil && len(own[c.retry]) > 0 {
		return
	}
	old, err := adm.FetchOffsets(ctx, c.group+"-retry")
	if err != nil || len(old[c.retry]) == 0 {
		return
	}
	var offs kadm.Offsets
	old.Each(func(o kadm.OffsetResponse) {
		if o.Topic == c.retry && o.Err == nil {
			offs.AddOffset(o.Topic, o.Partition, o.At, -1)
		}
	})
	resp, err := adm.CommitOffsets(ctx, c.group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		c.p.log.Warn("cannot carry over the previous retry group's offsets; the retry topic is read from its start",
			"group", c.group, "from", c.group+"-retry", "err", err)
		return
	}
	c.p.log.Info("retry topic offsets carried over from the previous version's retry group", "from", c.group+"-retry")
}

// allTopics is what the group consumes: the input topics and the retry topic.
func (c *groupConsumer) allTopics() []string {
	if c.retry == "" {
		return c.topics
	}
	return append(append([]string(nil), c.topics...), c.retry)
}

// client returns the group's kgo client.
func (c *groupConsumer) client() *kgo.Client { return c.clp.Load() }

func (c *groupConsumer) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	c.clp.Store(cl)
	// Nothing is fetched for a partition until its worker restored its state (gates,
	// blocked keys) and resumed it: the poll loop never waits on a worker that is still
	// restoring. kgo also keeps a partition paused across a revoke: one paused for its
	// backlog and assigned again is resumed by its new worker.
	cl.PauseFetchPartitions(assigned)
	c.wmu.Lock()
	var fresh []*partitionWorker
	resume := newResumeBatch(c, c.countNewLocked(assigned))
	for topic, parts := range assigned {
		for _, part := range parts {
			k := tp{topic, part}
			if c.workers[k] != nil {
				continue
			}
			w := newPartitionWorker(c, topic, part, c.blocksOf(part), resume)
			c.workers[k] = w
			fresh = append(fresh, w)
		}
	}
	for _, w := range fresh { // once all are counted: resume waits for every one
		w.start()
	}
	n := len(c.workers)
	c.wmu.Unlock()
	c.setAssignedGauge(n)
	c.joined.Store(true)
	c.p.log.Info("partitions assigned", "group", c.group, "assigned", assigned, "total", n)
}

// countNewLocked counts the partitions of assigned that have no worker yet. wmu must be
// held.
func (c *groupConsumer) countNewLocked(assigned map[string][]int32) int {
	n := 0
	for topic, parts := range assigned {
		for _, part := range parts {
			if c.workers[tp{topic, part}] == nil {
				n++
			}
		}
	}
	return n
}

// blocksOf returns the blockSet of partition number part, creating it; nil without a
// retry topic. wmu must be held.
func (c *groupConsumer) blocksOf(part int32) *blockSet {
	if c.retry == "" {
		return nil
	}
	b := c.blocks[part]
	if b == nil {
		b = newBlockSet()
		c.blocks[part] = b
	}
	return b
}

// dropBlocksLocked forgets the blockSets of partition numbers no owned worker uses any
// more. wmu must be held.
func (c *groupConsumer) dropBlocksLocked() {
	for part, b := range c.blocks {
		used := false
		for k := range c.workers {
			used = used || k.partition == part
		}
		if !used {
			b.forget()
			delete(c.blocks, part)
		}
	}
}

func (c *groupConsumer) setAssignedGauge(n int) { partitionsAssigned.Set(float64(n)) }

// revoked stops the revoked partitions' workers, waits for their lanes, and commits what
// they finished before the partitions go to another member.
func (c *groupConsumer) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.clp.Store(cl)
	ws := c.take(revoked)
	c.stopWorkers(ws)
	c.commitFinal(ws)
	c.p.log.Info("partitions revoked", "group", c.group, "revoked", revoked)
}

// lost stops the workers without committing: the partitions already belong to someone
// else, and anything not committed is redelivered there.
func (c *groupConsumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ws := c.take(lost)
	for _, w := range ws {
		w.abandon() // another member owns them: finishing their records only sends them twice
	}
	c.stopWorkers(ws)
	if len(lost) > 0 { // kgo calls it with nothing lost while the broker is unreachable
		c.p.log.Warn("partitions lost", "group", c.group, "lost", lost)
	}
}

// take removes the workers of parts from the owned set. Holding commitMu makes a
// concurrent timer commit finish first, so none is issued for them afterwards.
func (c *groupConsumer) take(parts map[string][]int32) []*partitionWorker {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var ws []*partitionWorker
	for topic, ps := range parts {
		for _, part := range ps {
			if w := c.workers[tp{topic, part}]; w != nil {
				ws = append(ws, w)
				delete(c.workers, tp{topic, part})
			}
		}
	}
	c.dropBlocksLocked()
	c.setAssignedGauge(len(c.workers))
	return ws
}

func (c *groupConsumer) takeAll() []*partitionWorker {
	c.wmu.Lock()
	all := map[string][]int32{}
	for k := range c.workers {
		all[k.topic] = append(all[k.topic], k.partition)
	}
	c.wmu.Unlock()
	return c.take(all)
}

// stopGrace is how long a revoke or shutdown waits for deliveries in flight (fasthttp
// cannot cancel a request) before it commits without them: their records stay
// uncommitted for the next owner, and a member never outstays the rebalance timeout.
const stopGrace = 5 * time.Second

// waitStragglers waits, at most grace, for workers still delivering after their stop
// grace: a request fasthttp cannot cancel must not hold a shutdown for its whole
// timeout. One still running after that ends on its own when its request does; its
// records were not committed, and its writes fail on the closed producers.
func (c *groupConsumer) waitStragglers(grace time.Duration) {
	done := make(chan struct{})
	go func() {
		c.stragglers.Wait()
		close(done)
	}()
	if !closedWithin(done, grace) {
		c.p.log.Warn("stopping with deliveries still in flight; their records stay uncommitted", "group", c.group)
	}
}

// closedWithin reports whether done is closed within d.
func closedWithin(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// stopWorkers stops ws (their lanes finish the records they hold) and waits for them, at
// most stopGrace; then it abandons what they still hold, and workers still busy finish
// in the background, waited for by run before it returns.
func (c *groupConsumer) stopWorkers(ws []*partitionWorker) {
	for _, w := range ws {
		w.stop()
	}
	done := make(chan struct{})
	c.stragglers.Go(func() {
		for _, w := range ws {
			w.wait()
		}
		close(done)
	})
	if !closedWithin(done, stopGrace) {
		for _, w := range ws {
			w.abandon()
		}
		c.p.log.Warn("deliveries still in flight after the stop grace; their records stay uncommitted",
			"group", c.group, "grace", stopGrace)
	}
}
