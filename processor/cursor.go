package processor

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
)

// Deferred hooks: a hook that fails wholesale costs a partition nothing per event.
//
// When an open breaker turns a live first delivery of hook H away (H, or its destination,
// fails as a whole), the events partition worker defers H from the first offset it has
// not dispatched yet: every later record of the partition skips H, settled as parked
// without a write, and a cursor re-reads those records from the events topic once H
// answers again, handing each to its key's lane as an item for H alone. A record parked
// per event would cost a retry record, its storage and its read back, for every event of
// the outage.
//
// Durability: one start marker in the retry topic (at the partition number) records the
// deferral; the record whose delivery opened it holds its commit until the marker is
// acknowledged, so no skipped record is committed before the deferral is durable.
// Progress markers say below which offset the cursor's items are settled (a restart
// resumes there: items above it may be sent twice, none is lost); an end marker closes
// it. The retry scheduler holds the start marker, and with it the retry partition's
// commit point, until it reads the end marker; a restore rebuilds the open deferrals
// from the markers before the partition's first record.
//
// Order: the dispatcher enqueues both the live records and the cursor's items, so the
// hand-over needs no wait. It closes the cursor at the first offset it has not
// dispatched live once the cursor reached it: every live record below that offset skips
// H, and every item below it was queued in its key's lane before any live record above
// it. An item follows the live path (blocked keys, inline attempts, parks); one turned
// away by a breaker again stalls the cursor until the retry scheduler settles one of
// H's entries (the sign H may answer), or a minute has passed.
//
// Gates: a deferred record meets H's gates (snooze, on_change) when its item is handled,
// at that time, not when it was consumed.

// markerKind is the kind of a deferral marker (parkedEntry.Cursor).
type markerKind uint8

const (
	markerNone     markerKind = iota
	markerStart               // a deferral opened; Offset is its first offset
	markerProgress            // every item below CursorAt is settled
	markerEnd                 // closed at CursorAt: records from there on are live for the hook
)

const (
	// cursorOpen is a cursor's end while it is open.
	cursorOpen = math.MaxInt64
	// cursorWindowMin and cursorWindowMax bound the items a cursor has in its lanes: the
	// first batch after a stall is small, as a hook that still fails parks each of them.
	cursorWindowMin = 16
	cursorWindowMax = 4096
	// cursorRetry is how long a stalled cursor waits at most before it tries again
	// without a sign from the retry scheduler.
	cursorRetry = time.Minute
	// cursorPoll is how often a cursor looks at what it waits for (its items settling,
	// the live records below its end).
	cursorPoll = 20 * time.Millisecond
)

var (
	deferredDeliveries = metrics.NewCounter(describe(`eventhooks_deferred_total`,
		"Live deliveries of a hook failing as a whole deferred to its cursor: no attempt and no write until the hook answers."))
	cursorsOpen atomic.Int64
	_           = metrics.NewGauge(describe(`eventhooks_deferred_hooks`,
		"Open deferrals: (hook, events partition)s whose deliveries a cursor re-reads from the events topic."),
		func() float64 { return float64(cursorsOpen.Load()) })
)

// cursor is the deferral of one hook on one events partition.
type cursor struct {
	hook      string
	topic     string
	partition int32
	from      int64        // the first offset deferred
	end       atomic.Int64 // cursorOpen until the dispatcher closes it
	next      int64        // the first offset not read; owned by the reader
	wm        *watermark   // the items handed to lanes, and which are settled
	stalled   atomic.Bool  // an item was turned away: read on after a sign only
	kick      chan struct{}
	closed    chan struct{} // closed with end
	owned     bool          // a reader runs; guarded by blockSet.mu
	// seen matches by a version of the hook the cursor saw, for items after its deletion.
	seen atomic.Pointer[hooks.Index[*compiledHook]]
}

func newCursor(topic string, partition int32, hook string, from int64) *cursor {
	c := &cursor{hook: hook, topic: topic, partition: partition, from: from, next: from, wm: newWatermark(),
		kick: make(chan struct{}, 1), closed: make(chan struct{})}
	c.end.Store(cursorOpen)
	return c
}

// covers reports whether the live record at offset of topic skips hook for this cursor.
func (c *cursor) covers(topic, hook string, offset int64) bool {
	return offset >= c.from && offset < c.end.Load() && c.hook == hook && c.topic == topic
}

// stall stops the reader until a sign that the hook may answer.
func (c *cursor) stall() { c.stalled.Store(true) }

// signal wakes a stalled reader.
func (c *cursor) signal() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// closeAt closes the cursor at end; the dispatcher's only.
func (c *cursor) closeAt(end int64) {
	c.end.Store(end)
	close(c.closed)
}

// deferred reports whether the live record at offset of topic skips hook: a cursor
// delivers it. Without deferrals it is one atomic load.
func (b *blockSet) deferred(topic, hook string, offset int64) bool {
	if b == nil {
		return false
	}
	cs := b.cursors.Load()
	if cs == nil {
		return false
	}
	for _, c := range *cs {
		if c.covers(topic, hook, offset) {
			return true
		}
	}
	return false
}

// openCursor opens a deferral of hook on topic from offset from, unless one is open.
func (b *blockSet) openCursor(topic string, partition int32, hook string, from int64) (*cursor, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forgotten {
		return nil, false
	}
	for _, c := range b.cursorList() {
		if c.hook == hook && c.topic == topic && c.end.Load() == cursorOpen {
			return nil, false
		}
	}
	c := newCursor(topic, partition, hook, from)
	c.owned = true
	c.stall() // its hook was just turned away
	b.setCursorsLocked(append(slices.Clone(b.cursorList()), c))
	return c, true
}

// removeCursor forgets a closed cursor whose live records below its end were handled.
func (b *blockSet) removeCursor(c *cursor) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := slices.DeleteFunc(slices.Clone(b.cursorList()), func(o *cursor) bool { return o == c })
	b.setCursorsLocked(cs)
}

// setCursorsLocked publishes cs as the set's cursors. b.mu must be held.
func (b *blockSet) setCursorsLocked(cs []*cursor) {
	cursorsOpen.Add(int64(len(cs) - len(b.cursorList())))
	if len(cs) == 0 {
		b.cursors.Store(nil)
		return
	}
	b.cursors.Store(&cs)
}

// cursorList is the published cursors (never modified in place).
func (b *blockSet) cursorList() []*cursor {
	if cs := b.cursors.Load(); cs != nil {
		return *cs
	}
	return nil
}

// adoptCursors returns the restored cursors of topic no reader runs for yet, marked owned.
func (b *blockSet) adoptCursors(topic string) []*cursor {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*cursor
	for _, c := range b.cursorList() {
		if c.topic == topic && !c.owned {
			c.owned = true
			out = append(out, c)
		}
	}
	return out
}

// signalCursors wakes the stalled cursors of hook ("" for all): the retry scheduler
// settled an entry of it, or the hooks changed.
func (b *blockSet) signalCursors(hook string) {
	if b == nil {
		return
	}
	for _, c := range b.cursorList() {
		if hook == "" || c.hook == hook {
			c.signal()
		}
	}
}

// restoredCursors rebuilds open deferrals from the markers a restore read, in order.
type restoredCursors map[markerKey]*cursor

// markerKey identifies a deferral: its topic, hook and first offset.
type markerKey struct {
	topic string
	hook  string
	from  int64
}

// note applies one marker.
func (rc restoredCursors) note(e *parkedEntry) {
	k := markerKey{e.Topic, e.HookID, e.Offset}
	switch e.Cursor {
	case markerStart:
		rc[k] = newCursor(e.Topic, e.Partition, e.HookID, e.Offset)
	case markerProgress:
		if c := rc[k]; c != nil {
			c.next = max(c.next, e.CursorAt)
		}
	case markerEnd:
		delete(rc, k)
	}
}

// publish adds the open deferrals to b (a restore, before the partition's first record).
func (rc restoredCursors) publish(b *blockSet) {
	if len(rc) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forgotten {
		return
	}
	cs := slices.Clone(b.cursorList())
	for _, c := range rc {
		cs = append(cs, c)
	}
	b.setCursorsLocked(cs)
}

// laneItem is what a lane handles: a live record, or a cursor's item for its hook alone.
type laneItem struct {
	r *kgo.Record
	c *cursor // nil for a live record
}

// cursorBatch is what a cursor's reader hands the dispatcher: records read, and the
// offset it read up to (past them, or the end of the partition).
type cursorBatch struct {
	c    *cursor
	recs []*kgo.Record
	pos  int64
}

// deferHook follows a live first delivery an open breaker turned away: it opens a
// deferral of the hook on the record's partition (a cursor's item stalls its cursor).
func (d delivery) deferHook(hook string) {
	switch {
	case d.cur != nil:
		d.cur.stall()
	case d.w != nil && d.w.blocks != nil:
		d.w.openCursor(d, hook)
	}
}

// openCursor opens a deferral of hook from the first offset not dispatched yet (records
// already queued are served as before), durable with the start marker, held by d's
// record.
func (w *partitionWorker) openCursor(d delivery, hook string) {
	w.dmu.Lock()
	c, ok := w.blocks.openCursor(w.topic, w.partition, hook, w.liveNext.Load())
	w.dmu.Unlock()
	if !ok {
		return
	}
	p := w.c.p
	p.log.Info("hook failing as a whole: its deliveries on the partition wait in the events topic",
		"hook_id", hook, "topic", w.topic, "partition", w.partition, "from", c.from)
	p.write(d, c.marker(markerStart, c.from, p.cfg.Now()).record(p.cfg.RetryTopic), hook, nil)
	w.wg.Go(func() { w.readCursor(c) })
}

// marker is the cursor's marker of kind, saying at.
func (c *cursor) marker(kind markerKind, at int64, now time.Time) *parkedEntry {
	return &parkedEntry{HookID: c.hook, Topic: c.topic, Partition: c.partition, Offset: c.from,
		FirstAttemptMs: now.UnixMilli(), LastAttemptMs: now.UnixMilli(), Cursor: kind, CursorAt: at}
}

// dispatchCursor queues a cursor's batch in the lanes, below the first offset not
// dispatched live, and closes the cursor there once the batch reaches it. Dispatcher
// only. It reports false when the worker was stopped.
func (w *partitionWorker) dispatchCursor(b cursorBatch) bool {
	c, live := b.c, w.liveNext.Load()
	if c.end.Load() != cursorOpen || live < 0 {
		return true
	}
	for _, r := range b.recs {
		if r.Offset >= live {
			break
		}
		c.wm.add(r.Offset)
		w.buffered.Add(recordBytes(r))
		select {
		case w.laneFor(r).in <- laneItem{r: r, c: c}:
		case <-w.feed.Done():
			return false
		}
	}
	if b.pos >= live {
		c.closeAt(live)
	}
	return true
}

// readCursor is a cursor's reader: it reads the deferred records from the events topic
// while the hook answers, hands them to the dispatcher, writes progress markers, and,
// once the dispatcher closed the cursor, the end marker.
func (w *partitionWorker) readCursor(c *cursor) {
	if w.liveNext.Load() < 0 { // restored before any record was dispatched
		w.learnLiveNext()
	}
	r := cursorReader{w: w, c: c, window: cursorWindowMin, progress: c.next}
	defer r.closeClient()
	for r.step() {
	}
	if c.end.Load() != cursorOpen {
		r.finish()
	}
}

// cursorReader is readCursor's state.
type cursorReader struct {
	w        *partitionWorker
	c        *cursor
	cl       *kgo.Client // reading from c.next; nil while stalled
	window   int
	progress int64 // the last progress written (or restored)
	lastMark time.Time
}

// step does one round of the reader; false once the cursor is closed or the worker stopped.
func (r *cursorReader) step() bool {
	w, c := r.w, r.c
	select {
	case <-c.closed:
		return false
	case <-w.feed.Done():
		return false
	default:
	}
	r.markProgress()
	if c.stalled.Load() {
		r.closeClient()
		r.window = cursorWindowMin
		if !r.waitForSign() {
			return false
		}
		c.stalled.Store(false)
	}
	if !r.waitForRoom() {
		return false
	}
	b, ok := r.read()
	if !ok {
		return w.feed.Err() == nil
	}
	select {
	case w.cursorIn <- b:
	case <-c.closed:
		return false
	case <-w.feed.Done():
		return false
	}
	c.next = b.pos
	r.window = min(r.window*2, cursorWindowMax)
	return true
}

// waitForSign waits, while the cursor is stalled, for a sign that its hook may answer.
func (r *cursorReader) waitForSign() bool {
	t := time.NewTimer(cursorRetry)
	defer t.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.c.kick:
			return true
		case <-t.C:
			return true
		case <-tick.C:
			r.markProgress()
		case <-r.w.feed.Done():
			return false
		}
	}
}

// waitForRoom waits until fewer than window items are unsettled and the dispatcher
// knows where the live records are.
func (r *cursorReader) waitForRoom() bool {
	return pollUntil(r.w.feed, func() bool { return r.c.wm.pending() < r.window && r.w.liveNext.Load() >= 0 })
}

// pollUntil waits until cond holds, looking every cursorPoll; false if ctx ended first.
func pollUntil(ctx context.Context, cond func() bool) bool {
	for !cond() {
		if !sleepCtx(ctx, cursorPoll) {
			return false
		}
	}
	return true
}

// read reads the next records from c.next, up to the window; at the end of the
// partition it returns an empty batch at the end offset.
func (r *cursorReader) read() (cursorBatch, bool) {
	w, c := r.w, r.c
	p := w.c.p
	if r.cl == nil {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: {c.partition: kgo.NewOffset().At(c.next)}}),
			kgo.FetchMaxWait(100 * time.Millisecond),
			kgo.FetchMaxPartitionBytes(1 << 20),
			kgo.MaxBufferedRecords(cursorWindowMax),
		}, p.cfg.ClientOpts...)...)
		if err != nil {
			p.logs.Warn(p.log, "cursor:"+c.topic, "cannot read a deferred hook's records", "hook_id", c.hook, "err", err)
			sleepCtx(w.feed, time.Second)
			return cursorBatch{}, false
		}
		r.cl = cl
	}
	ctx, cancel := context.WithTimeout(w.feed, 200*time.Millisecond)
	fs := r.cl.PollRecords(ctx, r.window-c.wm.pending())
	cancel()
	b := cursorBatch{c: c, pos: c.next}
	fs.EachRecord(func(rec *kgo.Record) {
		if rec.Offset >= b.pos {
			b.recs = append(b.recs, rec)
			b.pos = rec.Offset + 1
		}
	})
	if len(b.recs) > 0 {
		return b, true
	}
	end, err := r.endOffset()
	if err != nil || end > b.pos {
		return cursorBatch{}, false // more to read, or ask again
	}
	b.pos = end
	return b, true
}

// endOffset lists the end offset of the cursor's partition.
func (r *cursorReader) endOffset() (int64, error) {
	ends, err := kadm.NewClient(r.cl).ListEndOffsets(r.w.feed, r.c.topic)
	if err != nil {
		return 0, err
	}
	o, ok := ends.Lookup(r.c.topic, r.c.partition)
	if !ok || o.Err != nil {
		return 0, o.Err
	}
	return o.Offset, nil
}

func (r *cursorReader) closeClient() {
	if r.cl != nil {
		r.cl.Close()
		r.cl = nil
	}
}

// markProgress writes a progress marker, at most once a second, when the settled items
// moved on.
func (r *cursorReader) markProgress() {
	at := r.c.wm.commitPoint()
	if at <= r.progress || time.Since(r.lastMark) < time.Second {
		return
	}
	r.progress, r.lastMark = at, time.Now()
	r.w.writeMarker(r.c, markerProgress, at)
}

// finish waits for the closed cursor's items to settle, writes its end marker, and,
// once every live record below its end was handled, forgets it.
func (r *cursorReader) finish() {
	w, c := r.w, r.c
	if !pollUntil(w.feed, func() bool { return c.wm.pending() == 0 }) {
		return
	}
	end := c.end.Load()
	p := w.c.p
	pr := c.marker(markerEnd, end, p.cfg.Now()).record(p.cfg.RetryTopic)
	_, ok := p.produceDurably(w.feed, &pr.rec)
	pr.release()
	if !ok {
		return
	}
	p.log.Info("deferred hook caught up: its deliveries on the partition are live again",
		"hook_id", c.hook, "topic", c.topic, "partition", c.partition, "from", c.from, "end", end)
	if pollUntil(w.feed, func() bool { return w.wm.commitPoint() >= end }) {
		w.blocks.removeCursor(c)
	}
}

// writeMarker produces a marker without holding anything: a lost progress marker only
// makes a restart send more twice.
func (w *partitionWorker) writeMarker(c *cursor, kind markerKind, at int64) {
	p := w.c.p
	pr := c.marker(kind, at, p.cfg.Now()).record(p.cfg.RetryTopic)
	p.produceAsync(w.feed, p.parker, &pr.rec, c.hook, func(*kgo.Record, error) { pr.release() }, 1)
}

// learnLiveNext sets where live records start, for a cursor restored before any was
// dispatched: the group's committed offset of the partition.
func (w *partitionWorker) learnLiveNext() {
	p := w.c.p
	cl, err := kgo.NewClient(p.cfg.ClientOpts...)
	if err != nil {
		return
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(w.feed, w.c.group)
	if err != nil {
		return
	}
	if o, ok := offs.Lookup(w.topic, w.partition); ok && o.Err == nil && o.At >= 0 {
		w.dmu.Lock()
		if w.liveNext.Load() < 0 {
			w.liveNext.Store(o.At)
		}
		w.dmu.Unlock()
	}
}

// startRestoredCursors starts a reader for each deferral of the worker's topic a restore
// found open.
func (w *partitionWorker) startRestoredCursors() {
	if w.blocks == nil || w.lanes == nil {
		return
	}
	for _, c := range w.blocks.adoptCursors(w.topic) { // each reads at once: the hook may answer by now
		w.wg.Go(func() { w.readCursor(c) })
	}
}

// handleDeferred runs a cursor's item through the cursor's hook alone, as handleEvent
// would have. A record its hook no longer exists for is dead-lettered (hook_deleted)
// when the hook's last version matched it.
func (p *Processor) handleDeferred(l *lane, r *kgo.Record) bool {
	c := l.cur
	if err := l.dec.Decode(r, &l.ev); err != nil {
		return true // the live pass dead-lettered it
	}
	hs := p.hs.Load()
	ch := hs.byID[c.hook]
	if ch == nil {
		if !c.matchedLast(l.ev.Source, l.ev.Event) {
			return true
		}
		e := newEntry(r, c.hook, p.cfg.Now())
		e.Reason = reasonHookDeleted
		return p.deadLetterFor(l.delivery(), nil, e).settled()
	}
	c.remember(ch)
	if !slices.Contains(hs.index.Match(l.ev.Source, l.ev.Event), ch) {
		return true
	}
	if !p.serveGated(l, ch).settled() {
		l.flushBehind(false)
		return false
	}
	return l.flushBehind(true)
}

// remember keeps the version of the hook the cursor first saw, to match its items by
// after the hook is deleted.
func (c *cursor) remember(ch *compiledHook) {
	if c.seen.Load() == nil {
		c.seen.Store(hooks.BuildIndex([]hooks.IndexEntry[*compiledHook]{{Source: ch.hook.Source, Event: ch.hook.EventName(), Value: ch}}))
	}
}

// matchedLast reports whether the remembered version of the hook matched source/event
// (nothing remembered: nothing matched).
func (c *cursor) matchedLast(source, event string) bool {
	ix := c.seen.Load()
	return ix != nil && len(ix.Match(source, event)) > 0
}
