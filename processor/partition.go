package processor

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/processor/gates"
	"github.com/eventhooks/eventhooks/sinks"
)

// partitionWorker owns one assigned partition: it registers each polled record with the
// watermark, in offset order, and hands it to the lane its key hashes to (events) or to
// its retry scheduler (the retry topic).
type partitionWorker struct {
	c         *groupConsumer
	topic     string
	partition int32
	in        chan []*kgo.Record
	wake      chan struct{}   // a batch went to the backlog
	lanes     []*lane         // events partitions
	sched     *retryScheduler // the retry topic's partitions
	blocks    *blockSet       // of the partition number; nil without a retry topic
	resume    *resumeBatch    // resumes the partition with the rest of its assignment
	wm        *watermark
	committed int64 // last committed offset; guarded by groupConsumer.commitMu
	m         partitionMetrics

	// liveNext is the first offset the dispatcher has not dispatched live (-1 before the
	// first), written under dmu: a deferral opens there (cursor.go).
	liveNext atomic.Int64
	dmu      sync.Mutex
	cursorIn chan cursorBatch // deferred hooks' records, to queue in the lanes

	// ctx ends when the worker's records are abandoned: deliveries in flight stop
	// waiting, and lanes skip what they still hold. feed, its child, ends at stop: the
	// dispatcher, the scheduler and cursors stop taking records, while lanes finish the
	// records they were given (so a revoke commits them rather than leave them, and
	// every delivered record after them, to be sent again by the next owner).
	ctx      context.Context
	cancel   context.CancelFunc
	feed     context.Context
	stopFeed context.CancelFunc
	wg       sync.WaitGroup

	// buffered counts the bytes of records polled and not yet handled (by a lane) or
	// handed over (to the retry scheduler, which keeps its own budget).
	buffered atomic.Int64

	bmu     sync.Mutex
	backlog [][]*kgo.Record // polled batches waiting for room in `in`; guarded by bmu
	paused  atomic.Bool     // fetching paused for the backlog or the bytes; set under bmu
}

var laneSeed = maphash.MakeSeed()

func newPartitionWorker(c *groupConsumer, topic string, partition int32, blocks *blockSet, resume *resumeBatch) *partitionWorker {
	p := c.p
	ctx, cancel := context.WithCancel(c.ctx)
	w := &partitionWorker{
		c: c, topic: topic, partition: partition, blocks: blocks, resume: resume,
		in:        make(chan []*kgo.Record, p.cfg.PartitionBuffer),
		wake:      make(chan struct{}, 1),
		wm:        newWatermark(),
		committed: -1,
		cursorIn:  make(chan cursorBatch),
		m:         newPartitionMetrics(topic, partition),
		ctx:       ctx, cancel: cancel,
	}
	w.feed, w.stopFeed = context.WithCancel(ctx)
	w.liveNext.Store(-1)
	if topic == c.retry {
		w.sched = newRetryScheduler(w)
		return w
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
	if w.sched != nil {
		w.sched.start(&w.wg)
	}
	w.wg.Go(w.dispatch)
}

// stop asks the worker to stop taking records: its lanes finish those they hold.
func (w *partitionWorker) stop() { w.stopFeed() }

// abandon stops the worker at once: records not yet handed to a delivery stay
// uncommitted, for the partition's next owner.
func (w *partitionWorker) abandon() { w.cancel() }

func (w *partitionWorker) wait() { w.wg.Wait() }

func (w *partitionWorker) dispatch() {
	defer func() {
		for _, l := range w.lanes {
			close(l.in)
		}
		if w.sched != nil {
			close(w.sched.in)
		}
	}()
	if !w.restoreUntilDone() {
		return
	}
	w.startRestoredCursors()
	for {
		select {
		case <-w.feed.Done():
			return
		case batch := <-w.in:
			if !w.dispatchBatch(batch) {
				return
			}
		case b := <-w.cursorIn:
			if !w.dispatchCursor(b) {
				return
			}
		case <-w.wake:
		}
		if !w.drainBacklog() {
			return
		}
	}
}

// dispatchBatch registers each record with the watermark, in offset order, and hands it
// to its lane. It reports false when the worker was stopped.
func (w *partitionWorker) dispatchBatch(batch []*kgo.Record) bool {
	if w.sched != nil {
		return w.dispatchRetries(batch)
	}
	w.dmu.Lock() // a deferral opened now starts past the batch
	w.liveNext.Store(batch[len(batch)-1].Offset + 1)
	w.dmu.Unlock()
	for _, r := range batch {
		w.wm.add(r.Offset)
		select {
		case w.laneFor(r).in <- laneItem{r: r}:
		case <-w.feed.Done():
			return false
		}
	}
	return true
}

// dispatchRetries is dispatchBatch for the retry topic: to the scheduler.
func (w *partitionWorker) dispatchRetries(batch []*kgo.Record) bool {
	for _, r := range batch {
		w.wm.add(r.Offset)
		select {
		case w.sched.in <- r:
		case <-w.feed.Done():
			return false
		}
		w.handled(r)
	}
	return true
}

// recordBytes is what a polled record holds in memory, for the partition's byte budget.
func recordBytes(r *kgo.Record) int64 {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// handled takes r off the partition's byte count, and wakes the dispatcher to resume
// fetching when the partition was paused and half of its budget is left. Called by the
// lane that handled r (the dispatcher, for the retry scheduler's records).
func (w *partitionWorker) handled(r *kgo.Record) {
	left := w.buffered.Add(-recordBytes(r))
	if left <= w.resumeBelow() && w.paused.Load() {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// resumeBelow is the byte count under which a paused partition is fetched again.
func (w *partitionWorker) resumeBelow() int64 { return int64(w.c.p.cfg.PartitionBufferBytes) / 2 }

// offer hands a polled batch to the worker without ever blocking the poll loop (which
// would stall every partition and the rebalance): when the worker's queue is full the
// batch waits in the backlog and fetching the partition is paused until it drains.
// Called by the poll loop only.
func (w *partitionWorker) offer(batch []*kgo.Record) {
	var n int64
	for _, r := range batch {
		n += recordBytes(r)
	}
	over := w.buffered.Add(n) > int64(w.c.p.cfg.PartitionBufferBytes)
	w.bmu.Lock()
	queued := false
	if len(w.backlog) == 0 {
		select {
		case w.in <- batch:
			queued = true
		default:
		}
	}
	if !queued {
		w.backlog = append(w.backlog, batch)
	}
	if (over || !queued) && !w.paused.Load() {
		// Under bmu, as the resume in drainBacklog: a pause issued after the
		// dispatcher drained and resumed would never be undone.
		w.paused.Store(true)
		w.m.paused.Inc()
		w.c.client().PauseFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	w.bmu.Unlock()
	if queued {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// drainBacklog dispatches the backlog once the queue is empty (the backlog is newer than
// anything queued), then resumes fetching. It reports false when the worker was stopped.
func (w *partitionWorker) drainBacklog() bool {
	for len(w.in) == 0 {
		w.bmu.Lock()
		if len(w.backlog) == 0 {
			if w.paused.Load() && w.buffered.Load() <= w.resumeBelow() {
				w.paused.Store(false)
				w.c.client().ResumeFetchPartitions(map[string][]int32{w.topic: {w.partition}})
			}
			w.bmu.Unlock()
			return true
		}
		batch := w.backlog[0]
		w.backlog = w.backlog[1:]
		w.bmu.Unlock()
		if !w.dispatchBatch(batch) {
			return false
		}
	}
	return true
}

// restoreUntilDone restores the partition's state, retrying with backoff (without it the
// partition would fire what it should not, or deliver a key out of order): an events
// partition its gate state, both kinds the blocked keys of the partition number. Then it
// resumes fetching the partition (assigned paused it), with the rest of its assignment.
// It reports false when the worker was stopped first.
func (w *partitionWorker) restoreUntilDone() bool {
	p := w.c.p
	policy := hooks.Retry{InitialBackoffMs: 500, MaxBackoffMs: 30_000}
	for attempt := 1; ; attempt++ {
		err := w.restore()
		if err == nil {
			break
		}
		if w.feed.Err() != nil {
			return false
		}
		restoreErrors.Inc()
		p.logs.Warn(p.log, "restore:"+w.topic, "cannot restore partition state; partition waits", "partition", w.partition, "attempt", attempt, "err", err)
		if !sleepCtx(w.feed, backoff(policy, attempt, 0)) {
			return false
		}
	}
	w.resume.restored(w.feed, w.topic, w.partition)
	return w.feed.Err() == nil
}

// restore restores what the partition needs before its first record.
func (w *partitionWorker) restore() error {
	if w.lanes != nil && w.c.p.cfg.StateTopic != "" {
		if err := w.restoreState(); err != nil {
			return err
		}
	}
	if w.blocks != nil {
		if err := w.blocks.restore(w.feed, w.c.p, w.c.group, w.partition); err != nil {
			blockedRestore.Inc()
			return err
		}
	}
	return nil
}

// laneFor picks the lane of a record's key. Keyless records all share one lane: they have
// one (empty) entity key, whose gate state must live in one place.
func (w *partitionWorker) laneFor(r *kgo.Record) *lane {
	return w.lanes[maphash.Bytes(laneSeed, r.Key)%uint64(len(w.lanes))]
}

// lane processes its records one at a time, in offset order. It owns its decoder and
// scratch event: nothing here is shared with another goroutine but the watermark, and
// the records and record holds of deliveries it sends aside (held.go).
type lane struct {
	w     *partitionWorker
	in    chan laneItem
	dec   hooks.Decoder
	ev    hooks.Event
	sinks sinks.Lane // the sinks' per-goroutine state (JS runtime, template context)

	gates       *gates.Set // nil on consumers without gates
	lastExpire  time.Time
	offset      int64      // of the record being handled
	cur         *cursor    // the current item's cursor; nil for a live record
	wm          *watermark // the current item's: the partition's, or its cursor's
	ack         *recordAck // the current record's, when a park is in flight
	behind      behindList // the current record's hooks parked behind blocked keys
	attempts    attemptBatch
	held        heldList // live deliveries waiting for a first answer (held.go)
	deletedSeen int      // how many of the deleted hooks (indexBuilder.deleted) were dropped
}

func newLane(w *partitionWorker) *lane {
	p := w.c.p
	l := &lane{w: w, in: make(chan laneItem, p.cfg.LaneBuffer)}
	l.dec.MaxBytes = p.cfg.MaxEventBytes
	l.gates = gates.NewSet(max(1024, p.cfg.GateEntriesPerPartition/p.cfg.Lanes))
	if cat := p.cfg.Catalogue; cat != nil {
		l.dec.OnNewName = cat.Seen
	}
	return l
}

func (l *lane) run() {
	if l.gates != nil {
		defer func() { gates.AddEntries(-l.gates.Len()) }()
	}
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	for {
		l.serveHeld(false, "")
		l.waitBelowHeldBound()
		it, ok := l.next(idle)
		if !ok {
			break
		}
		if it.r == nil || l.w.ctx.Err() != nil {
			continue // woken for held deliveries, or abandoned: left uncommitted
		}
		if it.c != nil { // its hook's held deliveries come first
			l.serveHeld(true, it.c.hook)
		}
		r := it.r
		l.offset, l.cur, l.wm = r.Offset, it.c, l.w.wm
		if it.c != nil {
			l.wm = it.c.wm
		}
		done := l.handleSafely(r)
		if l.held.recordHeld { // counted until its holds are settled
			l.held.recordHeld = false
		} else {
			l.w.handled(r)
		}
		if l.gates != nil {
			l.maybeExpire(l.w.c.p.cfg.Now())
		}
		if ack := l.ack; ack != nil { // parks still in flight finish the record
			l.ack = nil
			ack.finish(done)
		} else if done {
			l.wm.markDone(r.Offset)
		}
	}
	l.serveHeld(true, "")
	l.w.c.p.attempts.flush(&l.attempts)
}

// waitBelowHeldBound: a lane holding as many deliveries as it may (see heldList) takes
// no record until one of them, whichever hook's, is ready and served. Waiting for the
// first one's hook instead held a healthy hook's deliveries, ready once its own first
// answer came, behind a slow hook's probe for that hook's whole timeout.
func (l *lane) waitBelowHeldBound() {
	for len(l.held.list) >= max(l.w.c.p.cfg.LaneBuffer/4, 1) && l.w.ctx.Err() == nil {
		l.flushAttempts(false)
		waitBreaker(l.w.ctx, heldPoll, l.held.firstProbe())
		l.serveHeld(false, "")
	}
}

// flushAttempts writes the lane's attempt lines if always, else once the first is
// attemptBatchAge old.
func (l *lane) flushAttempts(always bool) {
	if always || time.Since(l.attempts.since) >= attemptBatchAge {
		l.w.c.p.attempts.flush(&l.attempts)
	}
}

// next returns the lane's next record, false once its queue is closed. While attempt log
// lines wait in the lane, it waits attemptBatchAge at most before it writes them: a
// lane that runs out of records would otherwise hold them until its next record, and
// writing them each time its queue is empty made a record of almost every line.
func (l *lane) next(idle *time.Timer) (laneItem, bool) {
	for {
		holding := len(l.held.list) > 0
		if len(l.attempts.buf) == 0 && !holding {
			it, ok := <-l.in
			return it, ok
		}
		select {
		case it, ok := <-l.in:
			return it, ok
		default:
		}
		poll := attemptBatchAge
		if holding {
			poll = heldPoll
		}
		idle.Reset(poll)
		select {
		case it, ok := <-l.in:
			idle.Stop()
			return it, ok
		case <-l.held.firstProbe():
			idle.Stop()
			return laneItem{}, true
		case <-idle.C:
			l.flushAttempts(!holding)
			if holding {
				return laneItem{}, true
			}
		}
	}
}

// pendingAck returns the completion of the lane's current record, created on its first
// asynchronous write (see Processor.write).
func (l *lane) pendingAck() *recordAck {
	if l.ack == nil {
		l.ack = &recordAck{wm: l.wm, offset: l.offset}
		l.ack.pending.Store(1) // the lane's own hold, released when it is done with the record
	}
	return l.ack
}

// recordAck finishes a record whose retry or DLQ writes are acknowledged after its lane
// moved on: the record is done once every hold is released, unless a write or the lane
// failed.
type recordAck struct {
	wm      *watermark
	offset  int64
	pending atomic.Int32
	failed  atomic.Bool
}

func (a *recordAck) hold() { a.pending.Add(1) }
func (a *recordAck) fail() { a.failed.Store(true) }

// finish releases one hold, failing the record first unless ok.
func (a *recordAck) finish(ok bool) {
	if !ok {
		a.fail()
	}
	a.release()
}

func (a *recordAck) release() {
	if a.pending.Add(-1) == 0 && !a.failed.Load() {
		a.wm.markDone(a.offset)
	}
}
