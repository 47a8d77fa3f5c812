package processor

import (
	"container/heap"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// retryScheduler delivers the parked entries of one retry partition by due time, with a
// pool of delivery goroutines, so that an entry that is not due, or whose destination or
// hook is turned away by a breaker, never holds up another hook's entries.
//
// Blocking entries (ordering "key") of one (hook, key) form a queue: only its head is
// scheduled, and a failed head stays in memory (its offset uncommitted) with its next due
// time, so the queue is delivered strictly in order, across restarts too. When the head
// is delivered or dead-lettered its count in the blockSet is released and the next entry
// is due. Other entries (ordering "none") are parked again when they fail, so the retry
// partition's commit point moves past them.
//
// Ownership: the scheduler goroutine owns queues, due and held; delivery goroutines own
// their decoder, event and sinks lane, and finish their job's record (recordAck) and its
// blockSet count themselves before they report back, so a job's completion does not
// depend on the scheduler still running. Memory: entries held are bounded by
// Config.RetryMemoryPerPartition; past it the scheduler reads no further records (the
// partition worker's backlog then pauses fetching).
type retryScheduler struct {
	w       *partitionWorker
	in      chan *kgo.Record
	jobs    chan *retryJob
	results chan *retryJob
	workers int

	queues map[blockKey][]*retryJob // blocking entries, head first
	// suspended holds, per hook, until when a breaker turns its attempts away: its due
	// jobs wait until then without an attempt (no decode, no delivery goroutine), so a
	// dead destination's backlog does not spin through the scheduler every cooldown.
	suspended map[string]time.Time
	due       jobHeap
	held      int // bytes of the entries held
	idle      int
	// starts holds the start markers of open deferrals (cursor.go) until their end
	// marker is read: the partition's commit point stays at the first.
	starts map[markerKey]*recordAck
}

// retryJob is one parked entry held by the scheduler.
type retryJob struct {
	rec  *kgo.Record
	e    parkedEntry
	mark blockMark // e.Blocking as read: the count to release
	key  blockKey  // queue of a blocking entry
	due  time.Time
	size int
	ack  *recordAck
	next jobNext // set by the delivery goroutine
	// turnedAway: its last attempt was turned away by a breaker (set by the delivery
	// goroutine), so its hook is suspended until its due time.
	turnedAway bool
	idx        int // in the heap
}

// jobNext is what a delivery goroutine reports of a job.
type jobNext uint8

const (
	jobSettled   jobNext = iota // delivered, dead-lettered or parked again: done here
	jobLater                    // still in memory, due again at job.due
	jobAbandoned                // the partition is stopping
)

// pendingAck implements acker: the job's record completion.
func (j *retryJob) pendingAck() *recordAck { return j.ack }

// jobOverhead approximates a held job's bytes beyond its record's key, value and headers.
const jobOverhead = 512

func newRetryScheduler(w *partitionWorker) *retryScheduler {
	n := w.c.p.cfg.Lanes
	return &retryScheduler{
		w:       w,
		in:      make(chan *kgo.Record, w.c.p.cfg.LaneBuffer),
		jobs:    make(chan *retryJob, n),
		results: make(chan *retryJob, n),
		workers: n,
		idle:    n,
		queues:  map[blockKey][]*retryJob{},

		suspended: map[string]time.Time{},
		starts:    map[markerKey]*recordAck{},
	}
}

// start runs the scheduler and its delivery goroutines under wg.
func (s *retryScheduler) start(wg *sync.WaitGroup) {
	for range s.workers {
		wg.Go(s.deliverJobs)
	}
	wg.Go(s.run)
}

func (s *retryScheduler) run() {
	defer close(s.jobs)
	ctx := s.w.feed
	budget := s.w.c.p.cfg.RetryMemoryPerPartition
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.dispatchDue()
		var in <-chan *kgo.Record
		if s.held < budget {
			in = s.in
		}
		var tick <-chan time.Time
		if len(s.due) > 0 && s.idle > 0 {
			timer.Reset(time.Until(s.due[0].due))
			tick = timer.C
		}
		hs := s.w.c.p.hs.Load()
		select {
		case <-hs.replaced:
			s.endGone()
			s.w.blocks.signalCursors("") // a fixed hook may answer now
		case r, ok := <-in:
			if !ok {
				return
			}
			s.add(r)
		case j := <-s.results:
			s.idle++
			s.finished(j)
		case <-tick:
		case <-ctx.Done():
			return
		}
	}
}

// endGone makes the scheduled entries of hooks that were deleted or disabled due now, so
// they are dead-lettered (hook_deleted) at once rather than at their due time; their
// queues follow, head by head.
func (s *retryScheduler) endGone() {
	byID := s.w.c.p.hs.Load().byID
	now, moved := time.Now(), false
	for _, j := range s.due {
		if byID[j.e.HookID] == nil && j.due.After(now) {
			j.due, moved = now, true
			delete(s.suspended, j.e.HookID)
		}
	}
	if moved {
		heap.Init(&s.due)
	}
}

// dispatchDue hands due jobs to idle delivery goroutines.
func (s *retryScheduler) dispatchDue() {
	now := time.Now()
	for s.idle > 0 && len(s.due) > 0 && !s.due[0].due.After(now) {
		j := heap.Pop(&s.due).(*retryJob)
		if until, ok := s.suspended[j.e.HookID]; ok {
			if until.After(now) {
				j.due = until
				heap.Push(&s.due, j)
				continue
			}
			delete(s.suspended, j.e.HookID)
		}
		s.idle--
		s.jobs <- j // buffered for every delivery goroutine: never blocks
	}
}

// add takes a record of the retry partition: a blocking entry joins its (hook, key)'s
// queue (scheduled when it is the head), any other is scheduled at its due time. An
// entry for several hooks becomes a job per hook, sharing the record's completion.
func (s *retryScheduler) add(r *kgo.Record) {
	size := len(r.Key) + len(r.Value) + jobOverhead
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value)
	}
	ack := &recordAck{wm: s.w.wm, offset: r.Offset}
	var e parkedEntry
	if err := parseParkedEntry(r, &e); err != nil {
		p := s.w.c.p
		p.logs.Warn(p.log, "retry:unreadable", "unreadable retry entry sent to the DLQ", "offset", r.Offset, "err", err)
		j := &retryJob{rec: r, ack: ack}
		ack.pending.Store(1)
		ok := p.deadLetter(delivery{ctx: s.w.ctx, acks: j}, newEntry(r, "", p.cfg.Now()).fail(0, err, "unreadable retry entry"))
		ack.finish(ok)
		return
	}
	if e.Cursor != markerNone {
		s.marker(&e, ack)
		return
	}
	var jobs []*retryJob
	e.each(func(one *parkedEntry) { jobs = append(jobs, &retryJob{rec: r, e: *one, ack: ack}) })
	ack.pending.Store(int32(len(jobs))) // each job's own hold, released when it is settled
	for _, j := range jobs {
		j.size = size / len(jobs)
		s.schedule(j)
	}
}

// marker takes a deferral's marker: a start is held until its end is read.
func (s *retryScheduler) marker(e *parkedEntry, ack *recordAck) {
	ack.pending.Store(1)
	k := markerKey{e.Topic, e.HookID, e.Offset}
	switch e.Cursor {
	case markerStart:
		s.starts[k] = ack
		return
	case markerEnd:
		if start := s.starts[k]; start != nil {
			delete(s.starts, k)
			start.finish(true)
		}
	}
	ack.finish(true)
}

// schedule holds j: in its (hook, key)'s queue when it blocks, else by due time.
func (s *retryScheduler) schedule(j *retryJob) {
	s.held += j.size
	j.mark = j.e.Blocking
	j.due = time.UnixMilli(j.e.DueMs)
	if j.mark == blockNone {
		heap.Push(&s.due, j)
		return
	}
	j.key = newBlockKey(j.e.HookID, j.e.Key)
	q := append(s.queues[j.key], j)
	s.queues[j.key] = q
	if len(q) == 1 {
		heap.Push(&s.due, j)
	}
}

// finished applies what a delivery goroutine reported of j.
func (s *retryScheduler) finished(j *retryJob) {
	switch j.next {
	case jobLater:
		if j.turnedAway && j.due.After(s.suspended[j.e.HookID]) {
			s.suspended[j.e.HookID] = j.due
		}
		heap.Push(&s.due, j)
	case jobSettled:
		s.held -= j.size
		if j.mark == blockNone {
			return
		}
		q := s.queues[j.key][1:]
		if len(q) == 0 {
			delete(s.queues, j.key)
			return
		}
		s.queues[j.key] = q
		heap.Push(&s.due, q[0])
	}
}

// deliverJobs is a delivery goroutine: one attempt per job handed to it.
func (s *retryScheduler) deliverJobs() {
	p := s.w.c.p
	var (
		dec hooks.Decoder
		ev  hooks.Event
		sl  sinks.Lane
	)
	dec.MaxBytes = p.cfg.MaxEventBytes
	var ab attemptBatch
	for j := range s.jobs {
		j.next = s.attemptSafely(j, &dec, &ev, &sl, &ab)
		p.attempts.flush(&ab)
		s.results <- j // buffered for every delivery goroutine: never blocks
	}
}

// attemptSafely is attemptJob with a panic turned into a dead letter (internal_error).
func (s *retryScheduler) attemptSafely(j *retryJob, dec *hooks.Decoder, ev *hooks.Event, sl *sinks.Lane, ab *attemptBatch) (next jobNext) {
	p := s.w.c.p
	defer func() {
		if v := recover(); v != nil {
			internalErrors.Inc()
			p.log.Error("panic while retrying a delivery; dead-lettered", "hook_id", j.e.HookID, "offset", j.rec.Offset, "panic", v)
			j.e.Reason = reasonInternal
			next = s.settle(j, p.deadLetterFor(delivery{ctx: s.w.ctx, acks: j}, nil, &j.e))
		}
	}()
	return s.attemptJob(j, dec, ev, sl, ab)
}

// attemptJob makes one attempt of j's delivery and settles it, or says when to try again.
func (s *retryScheduler) attemptJob(j *retryJob, dec *hooks.Decoder, ev *hooks.Event, sl *sinks.Lane, ab *attemptBatch) jobNext {
	p := s.w.c.p
	d := delivery{ctx: s.w.ctx, ev: ev, sinks: sl, acks: j, attempts: ab}
	ch := p.hs.Load().byID[j.e.HookID]
	if ch == nil || !ch.hook.IsEnabled() {
		j.e.Reason = reasonHookDeleted
		return s.settle(j, p.deadLetterFor(d, nil, &j.e))
	}
	if err := dec.Decode(j.e.original(), ev); err != nil {
		j.e.Reason = "malformed: " + err.Error()
		return s.settle(j, p.deadLetterFor(d, ch, &j.e))
	}
	retriesDue.Inc()
	j.turnedAway = false
	sl.AvoidProbes = false // the scheduler is who probes a failing destination or hook
	e := &j.e
	n := p.attempt(d, ch, &e)
	now, wait := p.cfg.Now(), n.wait
	switch n.st {
	case stepDelivered:
		return s.settle(j, delivered)
	case stepDeadLetter:
		return s.settle(j, p.deadLetterFor(d, ch, e))
	case stepCircuit:
		if n.probeDone != nil { // a probe is out: look again soon, not in a loop
			wait = max(wait, min(maxBackoff(ch.policy), time.Second))
		}
		j.due, j.turnedAway = now.Add(max(wait, breakerPollInterval)), true
		return jobLater
	case stepRetry:
		if j.mark == blockNone { // parked again: the commit point moves past it
			return s.settle(j, p.park(d, ch, e, now.Add(wait)))
		}
		j.due = now.Add(wait)
		return jobLater
	}
	return s.settle(j, abandoned)
}

// settle finishes j with out: its count in the blockSet is released (the next event of
// its (hook, key) may go live once none is left) and its record is done once its writes
// are acknowledged. An abandoned job stays uncommitted.
func (s *retryScheduler) settle(j *retryJob, out outcome) jobNext {
	if !out.settled() {
		j.ack.finish(false)
		return jobAbandoned
	}
	s.w.blocks.release(j.e.HookID, j.e.Key, j.mark)
	if out != parked { // its hook answered, or an entry gave up: a deferral may go on
		s.w.blocks.signalCursors(j.e.HookID)
	}
	j.ack.finish(true)
	return jobSettled
}

// jobHeap orders jobs by due time.
type jobHeap []*retryJob

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(a, b int) bool { return h[a].due.Before(h[b].due) }
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].idx, h[b].idx = a, b
}

// Push implements heap.Interface.
func (h *jobHeap) Push(x any) {
	j := x.(*retryJob)
	j.idx = len(*h)
	*h = append(*h, j)
}

// Pop implements heap.Interface.
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
