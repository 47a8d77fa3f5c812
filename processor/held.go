package processor

import (
	"context"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/sinks"
)

// Held deliveries: a live delivery turned away only because a hook or destination that
// has not answered yet has its first request (the probe) out is set aside in its lane
// rather than waited for. The lane goes on with the record's other hooks and its next
// records, and serves the held delivery once the probe has its answer, or once the
// breaker's wait for it (sinks.PoolConfig.FirstAnswerWait) is over: then it is turned
// away for good, deferred or parked as any other. Waiting in the lane held up every
// other hook of the lane's records for that wait: with a hook whose endpoint never
// answers beside a healthy one, the healthy hook's p99 was the wait, at every start.
//
// The first request to a hook version or destination that has not answered yet (the
// probe) waits for its answer up to the hook's timeout: a live delivery that would be it
// is sent from a goroutine of its own (probeAside) and held in its lane until that is
// done, so the lane that sends it is not held up either (with a 10 s timeout and an
// endpoint that never answers, its queue filled and stalled the partition).
//
// Order: while a hook has deliveries held in a lane, its later deliveries there are held
// behind them, and a lane holds all of a key's records. A held delivery keeps a hold on
// its record (recordAck): the record is not committed before it is settled. A hook with
// gates is never held (serve): a held delivery would have fired them, and one abandoned
// later would be dropped by them when its record is redelivered.

var heldDeliveries = metrics.NewCounter(describe(`eventhooks_held_deliveries_total`,
	"Live deliveries set aside in their lane, without holding it up, until a hook or destination that had not answered yet gave its first answer."))

// heldPoll is how often an idle lane looks at its held deliveries: they wait on probes
// of several hooks, and a lane selects on the first one's only.
const heldPoll = 5 * time.Millisecond

// heldDelivery is one live delivery set aside: record r for hook ch.
type heldDelivery struct {
	r         *kgo.Record
	ch        *compiledHook
	ack       *recordAck      // a hold on r, released when it is settled; nil aside
	probeDone <-chan struct{} // closed when the probe it waits for has its answer
	until     time.Time       // when the breaker stops waiting for that answer; zero: none
	aside     bool            // sent by probeAside, whose goroutine settles it
	// accounts: r's bytes stay counted in the partition's buffer until h is settled (the
	// first hold on r; see heldList.recordHeld).
	accounts bool
}

// ready reports whether h may be served now.
func (h *heldDelivery) ready(now time.Time) bool {
	if !h.until.IsZero() && !now.Before(h.until) {
		return true
	}
	select {
	case <-h.probeDone:
		return true
	default:
		return false
	}
}

// wait waits until h is ready, or ctx ends.
func (h *heldDelivery) wait(ctx context.Context) {
	for !h.ready(time.Now()) && waitBreaker(ctx, time.Until(h.until), h.probeDone) {
	}
}

// heldList is a lane's held deliveries, in the order they were held. Owned by the lane.
// Their records stay counted in the partition's buffer (PartitionBufferBytes) until they
// are settled, so a hook whose first answer takes its whole timeout pauses fetching
// rather than growing the lane's memory. A lane holding a quarter of LaneBuffer takes no
// record until one of them is served (waitBelowHeldBound; 64 by default, plus one per
// further hook of the last record; by arithmetic, a dead hook beside a healthy one at
// 15k events/s holds about 30 a lane in its 250 ms first-answer wait). Unbounded, a lane
// took in the whole buffer (thousands of records) while a first answer was out, and a
// revoke then waited for all of them past its stop grace, so the next owner sent them
// again.
type heldList struct {
	list []heldDelivery
	// recordHeld: the lane's current record has a hold that accounts for its bytes.
	recordHeld bool
}

// add appends h, the first hold on its record accounting for the record's bytes.
func (l *heldList) add(h heldDelivery) {
	h.accounts = !l.recordHeld
	l.recordHeld = true
	l.list = append(l.list, h)
	heldDeliveries.Inc()
}

// last returns the last delivery held for hook, nil if none.
func (h *heldList) last(hook string) *heldDelivery {
	for i := len(h.list) - 1; i >= 0; i-- {
		if h.list[i].ch.hook.ID == hook {
			return &h.list[i]
		}
	}
	return nil
}

// hold sets d's delivery to ch aside until probeDone closes or until has passed (zero:
// never).
func (d delivery) hold(ch *compiledHook, probeDone <-chan struct{}, until time.Time) outcome {
	ack := d.acks.pendingAck()
	ack.hold()
	d.held.add(heldDelivery{r: d.ev.Record, ch: ch, ack: ack, probeDone: probeDone, until: until})
	return held
}

// holdBehind sets d's delivery to ch aside behind the hook's deliveries held already in
// the lane: it is ready when the last of them is.
func (d delivery) holdBehind(ch *compiledHook) outcome {
	prev := d.held.last(ch.hook.ID)
	return d.hold(ch, prev.probeDone, prev.until)
}

// serveHeld serves the lane's held deliveries that are ready, in order, a hook's after
// its earlier ones. With wait, it waits for every one of hook's ("" for all) to be
// ready first (a cursor item of the hook is next, or the lane is ending).
func (l *lane) serveHeld(wait bool, hook string) {
	if len(l.held.list) == 0 {
		return
	}
	// Hooks with a delivery not ready: their later ones wait too. Called for every record
	// while the lane holds any: one clock read unless it serves, no allocation for a few
	// hooks.
	var waitingBuf [4]string
	waiting, now := waitingBuf[:0], time.Now()
	kept := l.held.list[:0]
	for _, h := range l.held.list {
		id := h.ch.hook.ID
		mustWait := wait && (hook == "" || hook == id)
		if slices.Contains(waiting, id) {
			kept = append(kept, h)
			continue
		}
		if !mustWait && !h.ready(now) {
			waiting = append(waiting, id)
			kept = append(kept, h)
			continue
		}
		if mustWait {
			h.wait(l.w.ctx)
		}
		l.serveOneHeld(h)
		now = time.Now() // serving took time: what is ready after it is judged now
	}
	clear(l.held.list[len(kept):])
	l.held.list = kept
}

// serveOneHeld serves h as the lane's current record, never holding it again, and
// releases its hold on the record.
func (l *lane) serveOneHeld(h heldDelivery) {
	if h.accounts {
		defer l.w.handled(h.r)
	}
	if h.aside {
		return
	}
	l.offset, l.cur, l.wm, l.ack = h.r.Offset, nil, l.w.wm, h.ack
	ok := false
	if l.w.ctx.Err() == nil && l.dec.Decode(h.r, &l.ev) == nil {
		d := l.delivery()
		d.held = nil
		ok = l.w.c.p.settleBehind(d, l.w.c.p.serveSafely(d, h.ch).settled())
	}
	l.ack = nil
	h.ack.finish(ok)
}

// probeAside sends d's delivery to ch, which would be the probe of a hook version or
// destination that has not answered yet, from a goroutine of its own (owned by the
// partition worker), and holds it in the lane until that is done. The goroutine settles
// it as a lane would, but may wait for another probe's answer (several lanes may have
// sent theirs aside at once): what is turned away unsent defers the hook.
func (p *Processor) probeAside(d delivery, ch *compiledHook) outcome {
	ack := d.acks.pendingAck()
	ack.hold()
	done := make(chan struct{})
	d.held.add(heldDelivery{r: d.ev.Record, ch: ch, probeDone: done, aside: true})
	w, r := d.w, d.ev.Record
	w.wg.Go(func() {
		defer close(done)
		ack.finish(p.serveAside(w, r, ch, ack))
	})
	return held
}

// serveAside is probeAside's delivery, with a decoder, event and sinks lane of its own.
func (p *Processor) serveAside(w *partitionWorker, r *kgo.Record, ch *compiledHook, ack *recordAck) bool {
	var (
		dec hooks.Decoder
		ev  hooks.Event
		sl  sinks.Lane
	)
	dec.MaxBytes = p.cfg.MaxEventBytes
	if err := dec.Decode(r, &ev); err != nil {
		return false // unreachable: its lane decoded it
	}
	var behind behindList // turned away unsent, it defers the hook as a lane's would
	d := delivery{ctx: w.ctx, ev: &ev, sinks: &sl, acks: asideAck{ack}, blocks: w.blocks, behind: &behind, w: w}
	return p.settleBehind(d, p.serveSafely(d, ch).settled())
}

// serveSafely is serve, for a delivery served outside its lane's handleSafely, with a
// panic turned into a dead letter of this hook's delivery (internal_error).
func (p *Processor) serveSafely(d delivery, ch *compiledHook) (out outcome) {
	defer func() {
		if v := recover(); v != nil {
			e := p.internalEntry(v, "panic while serving a held delivery; dead-lettered", d.ev.Record, ch.hook.ID)
			out = p.deadLetterFor(d, ch, e)
		}
	}()
	return p.serve(d, ch)
}

// asideAck is the acker of probeAside's delivery: the hold it took on the record.
type asideAck struct{ a *recordAck }

func (a asideAck) pendingAck() *recordAck { return a.a }

// firstProbe is what an idle lane with held deliveries waits on besides its queue and a
// heldPoll: the first one's probe (nil when none is held).
func (l *heldList) firstProbe() <-chan struct{} {
	if len(l.list) == 0 {
		return nil
	}
	return l.list[0].probeDone
}
