package processor

import (
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"
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
// Order: while a hook has deliveries held in a lane, its later deliveries there are held
// behind them, and a lane holds all of a key's records. A held delivery keeps a hold on
// its record (recordAck): the record is not committed before it is settled. Gates count
// it as fired when it is held, as a parked one.

var heldDeliveries = metrics.NewCounter(describe(`eventhooks_held_deliveries_total`,
	"Live deliveries set aside in their lane, without holding it up, until a hook or destination that had not answered yet gave its first answer."))

// heldPoll is how often an idle lane looks at its held deliveries: they wait on probes
// of several hooks, and a lane selects on the first one's only.
const heldPoll = 5 * time.Millisecond

// heldDelivery is one live delivery set aside: record r for hook ch.
type heldDelivery struct {
	r         *kgo.Record
	ch        *compiledHook
	ack       *recordAck      // a hold on r, released when it is settled
	probeDone <-chan struct{} // closed when the probe it waits for has its answer
	until     time.Time       // when the breaker stops waiting for that answer
}

// ready reports whether h may be served now.
func (h *heldDelivery) ready(now time.Time) bool {
	if !now.Before(h.until) {
		return true
	}
	select {
	case <-h.probeDone:
		return true
	default:
		return false
	}
}

// heldList is a lane's held deliveries, in the order they were held. Owned by the lane.
type heldList struct{ list []heldDelivery }

// last returns the last delivery held for hook, nil if none.
func (h *heldList) last(hook string) *heldDelivery {
	for i := len(h.list) - 1; i >= 0; i-- {
		if h.list[i].ch.hook.ID == hook {
			return &h.list[i]
		}
	}
	return nil
}

// hold sets d's delivery to ch aside until probeDone closes or wait has passed; behind
// the hook's deliveries held already, it waits for them.
func (d delivery) hold(ch *compiledHook, probeDone <-chan struct{}, wait time.Duration) outcome {
	ack := d.acks.pendingAck()
	ack.hold()
	h := heldDelivery{r: d.ev.Record, ch: ch, ack: ack, probeDone: probeDone, until: time.Now().Add(wait)}
	if prev := d.held.last(ch.hook.ID); prev != nil {
		h.probeDone, h.until = prev.probeDone, prev.until
	}
	d.held.list = append(d.held.list, h)
	heldDeliveries.Inc()
	return held
}

// serveHeld serves the lane's held deliveries that are ready, in order, a hook's after
// its earlier ones. With wait, it waits for every one of hook's ("" for all) to be
// ready first (a cursor item of the hook is next, or the lane is ending).
func (l *lane) serveHeld(wait bool, hook string) {
	if len(l.held.list) == 0 {
		return
	}
	var waiting []string // hooks with a delivery not ready: their later ones wait too
	kept := l.held.list[:0]
	for _, h := range l.held.list {
		id := h.ch.hook.ID
		mustWait := wait && (hook == "" || hook == id)
		if slices.Contains(waiting, id) || (!mustWait && !h.ready(time.Now())) {
			waiting = append(waiting, id)
			kept = append(kept, h)
			continue
		}
		if mustWait {
			waitBreaker(l.w.ctx, time.Until(h.until), h.probeDone)
		}
		l.serveOneHeld(h)
	}
	clear(l.held.list[len(kept):])
	l.held.list = kept
}

// serveOneHeld serves h as the lane's current record, never holding it again, and
// releases its hold on the record.
func (l *lane) serveOneHeld(h heldDelivery) {
	l.offset, l.cur, l.wm, l.ack = h.r.Offset, nil, l.w.wm, h.ack
	ok := false
	if l.w.ctx.Err() == nil && l.dec.Decode(h.r, &l.ev) == nil {
		d := l.delivery()
		d.held = nil
		ok = l.w.c.p.serve(d, h.ch).settled()
		ok = l.flushBehind(ok) && ok
	}
	l.ack = nil
	h.ack.finish(ok)
}

// heldWake is what an idle lane with held deliveries waits on besides its queue: the
// first one's probe, and a poll for the others.
func (l *lane) heldWake() (<-chan struct{}, time.Duration) {
	if len(l.held.list) == 0 {
		return nil, 0
	}
	return l.held.list[0].probeDone, heldPoll
}
