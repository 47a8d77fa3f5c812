package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/processor/gates"
	"github.com/eventhooks/eventhooks/sinks"
)

// Bound is one end of a replay range: a time, or explicit offsets per partition. The zero
// Bound is the start of the topic (for From) or its current end (for To).
type Bound struct {
	Time    time.Time
	Offsets map[int32]int64
}

// ParseBound reads an RFC 3339 time or "partition:offset[,partition:offset…]"; "" is the
// zero Bound.
func ParseBound(s string) (Bound, error) {
	if s == "" {
		return Bound{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Bound{Time: t}, nil
	}
	b := Bound{Offsets: map[int32]int64{}}
	for part := range strings.SplitSeq(s, ",") {
		p, o, ok := strings.Cut(strings.TrimSpace(part), ":")
		pn, err1 := strconv.ParseInt(p, 10, 32)
		on, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil || pn < 0 || on < 0 {
			return Bound{}, fmt.Errorf("%q: want an RFC 3339 time or partition:offset[,partition:offset…]", s)
		}
		b.Offsets[int32(pn)] = on
	}
	return b, nil
}

// String renders offsets bounds in ParseBound's form.
func (b Bound) String() string {
	if b.Offsets == nil {
		if b.Time.IsZero() {
			return ""
		}
		return b.Time.Format(time.RFC3339Nano)
	}
	parts := make([]string, 0, len(b.Offsets))
	for _, p := range slices.Sorted(mapsKeys(b.Offsets)) {
		parts = append(parts, fmt.Sprintf("%d:%d", p, b.Offsets[p]))
	}
	return strings.Join(parts, ",")
}

func mapsKeys(m map[int32]int64) func(func(int32) bool) {
	return func(yield func(int32) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ReplayConfig selects what a replay reads and which hooks it runs.
type ReplayConfig struct {
	// Topic to read (default: the first input topic, or the DLQ topic with DLQ).
	Topic string
	// From and To bound the range; To is exclusive.
	From, To Bound
	// HookIDs restricts the hooks run (default: every hook that matches).
	HookIDs []string
	// Source and Event, when set, only replay events of that source/event.
	Source, Event string
	// Rate caps the events per second (0: unlimited).
	Rate float64
	// DryRun counts what would be delivered, per hook, without delivering.
	DryRun bool
	// DLQ re-drives dead letters instead of replaying events.
	DLQ bool
	// Reason, with DLQ, re-drives only the dead letters whose eh-reason is exactly this
	// ("permanent", "max_attempts", …); "" re-drives every reason.
	Reason string
	// HonourGates applies the hooks' snooze/on_change within the replay (from a fresh
	// state: the live state is not consulted or changed). Default: gates are bypassed.
	HonourGates bool
	// Progress, if set, is called about once a second and at the end.
	Progress func(ReplayProgress)
}

// ReplayProgress is how far a replay got.
type ReplayProgress struct {
	Read, Total int64
	// Served counts the deliveries settled (or, in a dry run, that would be attempted) per
	// hook id: the sum of that hook's Outcomes.
	Served map[string]int64
	// Outcomes says how each hook's deliveries ended, per hook id. A dry run counts every
	// delivery it would attempt as Delivered.
	Outcomes map[string]ReplayOutcomes
	// Skipped counts records that matched no chosen hook, or dead letters of no hook.
	Skipped int64
	// Gated counts deliveries dropped by a gate (with HonourGates).
	Gated int64
	// Next is where to resume: the next offset of each partition.
	Next Bound
	Done bool
}

// ReplayOutcomes counts how a replay's deliveries of one hook ended.
type ReplayOutcomes struct {
	// Delivered: the sink succeeded (a webhook's 2xx; a lambda's requests sent, or its
	// result dropped or logged).
	Delivered int64
	// Parked: written to the retry topic after its inline attempts, for the running
	// processor's retry scheduler.
	Parked int64
	// DeadLettered: failed for good (a refused destination, a 4xx, attempts spent) and
	// written to the DLQ topic.
	DeadLettered int64
	// Failed: failed for good with no DLQ topic to keep it: dropped.
	Failed int64
}

// Total is the number of deliveries counted.
func (o ReplayOutcomes) Total() int64 { return o.Delivered + o.Parked + o.DeadLettered + o.Failed }

// add counts one settled delivery; without a DLQ topic a dead letter is dropped, Failed.
func (o *ReplayOutcomes) add(out outcome, haveDLQ bool) {
	switch {
	case out == parked:
		o.Parked++
	case out == deadLettered && haveDLQ:
		o.DeadLettered++
	case out == deadLettered:
		o.Failed++
	default:
		o.Delivered++
	}
}

// Replay reads a range of a topic outside the consumer group and runs the chosen hooks on
// it through the same delivery path as live events (retries, parking, dead letters). The
// processor's hook set must be loaded (ApplyHooks) first; Run need not be running.
func (p *Processor) Replay(ctx context.Context, rc ReplayConfig) (ReplayProgress, error) {
	if rc.Topic == "" {
		rc.Topic = p.cfg.Topics[0]
		if rc.DLQ {
			rc.Topic = p.cfg.DLQTopic
		}
	}
	if rc.Topic == "" {
		return ReplayProgress{}, errors.New("replay: no topic (is the DLQ topic configured?)")
	}
	start, end, err := p.resolveRange(ctx, rc)
	if err != nil {
		return ReplayProgress{}, err
	}
	fromDLQPosition := rc.DLQ && rc.From.Time.IsZero() && len(rc.From.Offsets) == 0
	if fromDLQPosition {
		if err := p.dlqPosition(ctx, start, end); err != nil {
			return ReplayProgress{}, err
		}
	}
	r := newReplayRun(p, rc, start, end)
	res, err := r.run(ctx)
	if err == nil && rc.DLQ && !rc.DryRun {
		err = p.saveDLQPosition(ctx, rc.Topic, r.savedPosition(res.Next.Offsets))
	}
	return res, err
}

// dlqReplayGroup is the consumer group whose committed offsets are where `replay --dlq`
// got to: a later run without --from re-sends only what was dead-lettered since.
func (p *Processor) dlqReplayGroup() string { return p.cfg.Group + "-dlq-replay" }

// dlqPosition moves start to where the last DLQ replay got to, within [start, end].
func (p *Processor) dlqPosition(ctx context.Context, start, end map[int32]int64) error {
	cl, err := kgo.NewClient(p.cfg.ClientOpts...)
	if err != nil {
		return fmt.Errorf("replay: cannot create client: %w", err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, p.dlqReplayGroup())
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil // the first DLQ replay
	}
	if err != nil {
		return fmt.Errorf("replay: cannot read the DLQ replay position (group %s): %w", p.dlqReplayGroup(), err)
	}
	topic := p.cfg.DLQTopic
	for part := range start {
		if o, ok := offs.Lookup(topic, part); ok && o.Err == nil && o.At > start[part] {
			start[part] = min(o.At, end[part])
		}
	}
	return nil
}

// saveDLQPosition records where a DLQ replay got to (see dlqReplayGroup).
func (p *Processor) saveDLQPosition(ctx context.Context, topic string, next map[int32]int64) error {
	if len(next) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(p.cfg.ClientOpts...)
	if err != nil {
		return fmt.Errorf("replay: cannot create client: %w", err)
	}
	defer cl.Close()
	var offs kadm.Offsets
	for part, at := range next {
		offs.AddOffset(topic, part, at, -1)
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, p.dlqReplayGroup(), offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: cannot save the DLQ replay position (group %s): %w", p.dlqReplayGroup(), err)
	}
	return nil
}

func (p *Processor) resolveRange(ctx context.Context, rc ReplayConfig) (start, end map[int32]int64, err error) {
	cl, err := kgo.NewClient(p.cfg.ClientOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: cannot create client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if start, err = p.boundOffsets(ctx, adm, rc.Topic, rc.From, false); err != nil {
		return nil, nil, err
	}
	if end, err = p.boundOffsets(ctx, adm, rc.Topic, rc.To, true); err != nil {
		return nil, nil, err
	}
	return start, end, nil
}

// boundOffsets resolves a Bound to an offset per partition of topic.
func (p *Processor) boundOffsets(ctx context.Context, adm *kadm.Client, topic string, b Bound, isEnd bool) (map[int32]int64, error) {
	var listed kadm.ListedOffsets
	var err error
	switch {
	case !b.Time.IsZero():
		listed, err = adm.ListOffsetsAfterMilli(ctx, b.Time.UnixMilli(), topic)
	case isEnd:
		listed, err = adm.ListEndOffsets(ctx, topic)
	default:
		listed, err = adm.ListStartOffsets(ctx, topic)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("replay: cannot list offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, fmt.Errorf("replay: topic %s does not exist", topic)
	}
	ends := out
	if len(b.Offsets) > 0 && !isEnd {
		if ends, err = p.boundOffsets(ctx, adm, topic, Bound{}, true); err != nil {
			return nil, err
		}
	}
	for part, off := range b.Offsets {
		if _, ok := out[part]; !ok {
			return nil, fmt.Errorf("replay: topic %s has no partition %d", topic, part)
		}
		// An offset past a partition's end means its end: a range never waits for
		// records that are not there.
		out[part] = min(off, ends[part])
	}
	return out, nil
}

// replayRun is one replay: a partition goroutine per partition with records to read, each
// with its own decoder, fed by one poll loop.
type replayRun struct {
	p          *Processor
	rc         ReplayConfig
	start, end map[int32]int64
	hookFilter map[string]bool
	pace       pacer

	read, skipped, gated atomic.Int64
	mu                   sync.Mutex
	outcomes             map[string]ReplayOutcomes
	next                 map[int32]int64
	// leftOut is, per partition, the first dead letter the hook or reason filter passed
	// over: the saved DLQ position stops there, so a later re-drive still finds it.
	leftOut map[int32]int64
}

func newReplayRun(p *Processor, rc ReplayConfig, start, end map[int32]int64) *replayRun {
	r := &replayRun{p: p, rc: rc, start: start, end: end, outcomes: map[string]ReplayOutcomes{}, next: map[int32]int64{},
		leftOut: map[int32]int64{}}
	if len(rc.HookIDs) > 0 {
		r.hookFilter = map[string]bool{}
		for _, id := range rc.HookIDs {
			r.hookFilter[id] = true
		}
	}
	if rc.Rate > 0 {
		r.pace.every = time.Duration(float64(time.Second) / rc.Rate)
	}
	for part, off := range start {
		r.next[part] = off
	}
	return r
}

func (r *replayRun) total() int64 {
	var n int64
	for part, s := range r.start {
		if e := r.end[part]; e > s {
			n += e - s
		}
	}
	return n
}

func (r *replayRun) progress(done bool) ReplayProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	served := make(map[string]int64, len(r.outcomes))
	outcomes := make(map[string]ReplayOutcomes, len(r.outcomes))
	for k, v := range r.outcomes {
		served[k], outcomes[k] = v.Total(), v
	}
	next := make(map[int32]int64, len(r.next))
	for k, v := range r.next {
		next[k] = v
	}
	return ReplayProgress{Read: r.read.Load(), Total: r.total(), Served: served, Outcomes: outcomes, Skipped: r.skipped.Load(), Gated: r.gated.Load(), Next: Bound{Offsets: next}, Done: done}
}

func (r *replayRun) run(ctx context.Context) (ReplayProgress, error) {
	offsets := map[int32]kgo.Offset{}
	chans := map[int32]chan *kgo.Record{}
	for part, s := range r.start {
		if r.end[part] > s {
			offsets[part] = kgo.NewOffset().At(s)
			chans[part] = make(chan *kgo.Record, 1024)
		}
	}
	if len(offsets) == 0 {
		return r.report(true), nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.rc.Topic: offsets}),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, r.p.cfg.ClientOpts...)...)
	if err != nil {
		return ReplayProgress{}, fmt.Errorf("replay: cannot create consumer: %w", err)
	}
	defer cl.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Bool
	for part, ch := range chans {
		wg.Go(func() {
			if !r.partition(ctx, part, ch) {
				failed.Store(true)
			}
		})
	}
	tickCtx, stopTick := context.WithCancel(ctx)
	tickDone := make(chan struct{})
	go func() { defer close(tickDone); r.tick(tickCtx) }()
	r.poll(ctx, cl, chans)
	for _, ch := range chans {
		close(ch) // interrupted: the partitions not finished
	}
	wg.Wait()
	stopTick()
	<-tickDone
	interrupted := failed.Load() || ctx.Err() != nil
	return r.report(!interrupted), nil
}

func (r *replayRun) report(done bool) ReplayProgress {
	pr := r.progress(done)
	if r.rc.Progress != nil {
		r.rc.Progress(pr)
	}
	return pr
}

func (r *replayRun) tick(ctx context.Context) {
	if r.rc.Progress == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.rc.Progress(r.progress(false))
		}
	}
}

// poll feeds each partition's channel until every partition reached its end.
func (r *replayRun) poll(ctx context.Context, cl *kgo.Client, chans map[int32]chan *kgo.Record) {
	remaining := len(chans)
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(t string, part int32, err error) {
			r.p.logs.Warn(r.p.log, "replay-fetch", "replay fetch error", "topic", t, "partition", part, "err", err)
		})
		fs.EachRecord(func(rec *kgo.Record) {
			ch := chans[rec.Partition]
			if ch == nil {
				return
			}
			if rec.Offset < r.end[rec.Partition] {
				select {
				case ch <- rec:
				case <-ctx.Done():
				}
			}
			if rec.Offset >= r.end[rec.Partition]-1 {
				// Past the end: this partition is finished.
				delete(chans, rec.Partition)
				close(ch)
				remaining--
			}
		})
	}
}

// partition replays one partition's records in offset order. It reports false when it
// stopped before the end.
func (r *replayRun) partition(ctx context.Context, part int32, in <-chan *kgo.Record) bool {
	var dec hooks.Decoder
	dec.MaxBytes = r.p.cfg.MaxEventBytes
	var ev hooks.Event
	var lane sinks.Lane // one per partition goroutine
	var gs *gates.Set
	if r.rc.HonourGates {
		gs = gates.NewSet(r.p.cfg.GateEntriesPerPartition)
	}
	for rec := range in {
		if !r.pace.wait(ctx) {
			return false
		}
		var ok bool
		if r.rc.DLQ {
			ok = r.deadLetter(ctx, &dec, &ev, rec, &lane)
		} else {
			ok = r.event(ctx, &dec, &ev, rec, gs, &lane)
		}
		if !ok {
			return false
		}
		r.read.Add(1)
		r.mu.Lock()
		r.next[part] = rec.Offset + 1
		r.mu.Unlock()
	}
	return ctx.Err() == nil
}

func (r *replayRun) event(ctx context.Context, dec *hooks.Decoder, ev *hooks.Event, rec *kgo.Record, gs *gates.Set, lane *sinks.Lane) bool {
	if err := dec.Decode(rec, ev); err != nil ||
		(r.rc.Source != "" && ev.Source != r.rc.Source) || (r.rc.Event != "" && ev.Event != r.rc.Event) {
		r.skipped.Add(1)
		return true
	}
	matched := false
	for _, ch := range r.p.hs.Load().index.Match(ev.Source, ev.Event) {
		if r.hookFilter != nil && !r.hookFilter[ch.hook.ID] {
			continue
		}
		matched = true
		key, fp, gated := replayGate(gs, ch, ev)
		if gated {
			if ok, _ := gs.Check(&ch.gate, ch.hook.ID, key, fp, ev.Time); !ok {
				r.gated.Add(1)
				continue
			}
		}
		out := delivered
		if !r.rc.DryRun {
			out = r.p.serve(delivery{ctx: ctx, ev: ev, sinks: lane}, ch)
		}
		if !out.settled() {
			return false
		}
		if gated && out == delivered {
			gs.Fired(&ch.gate, ch.hook.ID, key, fp, ev.Time)
		}
		r.count(ch.hook.ID, out)
	}
	if !matched {
		r.skipped.Add(1)
	}
	return true
}

// replayGate returns the gate key and fingerprint of ev for ch, and whether the replay
// gates it at all. A replay's windows run on event time, from a fresh state.
func replayGate(gs *gates.Set, ch *compiledHook, ev *hooks.Event) (key []byte, fp uint64, gated bool) {
	if gs == nil || !ch.gate.Active() {
		return nil, 0, false
	}
	if !ch.gate.HookScoped() {
		key = ev.Key
	}
	if ch.gate.NeedsFingerprint() {
		fp = ch.gate.Fingerprint(ev.Data())
	}
	return key, fp, true
}

// deadLetter re-drives one DLQ entry through its hook with a fresh attempt budget.
func (r *replayRun) deadLetter(ctx context.Context, dec *hooks.Decoder, ev *hooks.Event, rec *kgo.Record, lane *sinks.Lane) bool {
	var e parkedEntry
	if err := parseParkedEntry(rec, &e); err != nil || e.HookID == "" {
		r.skipped.Add(1) // malformed input records have no hook to re-drive them through
		return true
	}
	if (r.hookFilter != nil && !r.hookFilter[e.HookID]) || (r.rc.Reason != "" && e.Reason != r.rc.Reason) {
		r.skipped.Add(1)
		r.leaveOut(rec)
		return true
	}
	out := delivered
	if !r.rc.DryRun {
		e.Attempts, e.Reason, e.LastError, e.LastStatus = 0, "", "", 0
		if out = r.p.redeliver(delivery{ctx: ctx, ev: ev, sinks: lane}, dec, &e); !out.settled() {
			return false
		}
	}
	r.count(e.HookID, out)
	return true
}

// leaveOut notes a dead letter the filters passed over (see leftOut).
func (r *replayRun) leaveOut(rec *kgo.Record) {
	r.mu.Lock()
	if _, ok := r.leftOut[rec.Partition]; !ok {
		r.leftOut[rec.Partition] = rec.Offset
	}
	r.mu.Unlock()
}

// savedPosition is where a DLQ re-drive that read up to next leaves the position: not
// past a dead letter it left out. A later re-drive then sends again the ones this run
// sent after that letter (same webhook-id: receivers see a retry) rather than never
// sending the letter left out.
func (r *replayRun) savedPosition(next map[int32]int64) map[int32]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int32]int64, len(next))
	for part, at := range next {
		if first, ok := r.leftOut[part]; ok {
			at = min(at, first)
		}
		out[part] = at
	}
	return out
}

// count records how one delivery of hookID was settled.
func (r *replayRun) count(hookID string, out outcome) {
	r.mu.Lock()
	o := r.outcomes[hookID]
	o.add(out, r.p.cfg.DLQTopic != "")
	r.outcomes[hookID] = o
	r.mu.Unlock()
}

// pacer spaces events at least every apart, across goroutines.
type pacer struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

func (p *pacer) wait(ctx context.Context) bool {
	if p.every <= 0 {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	return sleepCtx(ctx, time.Until(at))
}
