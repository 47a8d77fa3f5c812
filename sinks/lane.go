package sinks

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/scripting"
)

// Lane is the state a Sink needs per delivering goroutine: the template context of the
// event being delivered, the lambda handler's request scratch, and scratch space.
//
// A Lane is owned by one goroutine — a processor lane, a replay partition goroutine, or
// one Admin API /test call — and passed to every Deliver that goroutine makes. It is not
// safe for concurrent use. The zero value is ready to use; Deliver with a nil *Lane uses a
// throwaway one.
//
// JavaScript runtimes are not per lane: lambda calls borrow one from the Pool for the
// length of the call (see runtimePool).
type Lane struct {
	// The template data of the last event, shared by all the webhook-custom hooks of
	// that event. ctxRec is held (not just compared) so that its address cannot be
	// reused by another record while the cache refers to it.
	ctxRec *kgo.Record
	ctxOff int64
	ctx    scripting.EventData

	parser  fastjson.Parser // lambda results
	scratch []byte          // rendered template parts, lambda request bodies
	marks   []int           // offsets into scratch
	reqs    []lambdaRequest // parsed lambda requests
	hdrs    []header        // their headers

	// Request objects the runtime reads directly (scripting.Runtime.CallRequest).
	jsReq   scripting.Request
	takeReq func(*scripting.Request) bool

	// AvoidProbes is set by a caller that parks a delivery rather than wait: an attempt
	// on this lane is then never the probe of a destination or hook breaker that failed
	// last time (it fails with ErrCircuitOpen instead), so a dead endpoint or a broken
	// script does not hold the lane for its timeout. Read by every Deliver on the lane.
	AvoidProbes bool

	// KeepExcerpts asks every HTTP request sent on the lane to keep the first
	// ExcerptBytes of its body and of the response's (see Excerpts), for the attempt
	// log.
	KeepExcerpts bool
	reqExcerpt   []byte
	respExcerpt  []byte

	// capture, when set (by Tester), records every request sent and its response.
	capture *capture
}

// ExcerptBytes is how much of a request and a response body a lane keeps with
// KeepExcerpts.
const ExcerptBytes = 256

// Excerpts returns the first bytes of the last request body sent on the lane and of its
// response's, with KeepExcerpts; valid until the lane's next delivery. ResetExcerpts
// empties them.
func (l *Lane) Excerpts() (request, response []byte) { return l.reqExcerpt, l.respExcerpt }

// ResetExcerpts empties what Excerpts returns, before a delivery that may send nothing.
func (l *Lane) ResetExcerpts() { l.reqExcerpt, l.respExcerpt = l.reqExcerpt[:0], l.respExcerpt[:0] }

// keepExcerpts keeps the first ExcerptBytes of req's and resp's bodies.
func (l *Lane) keepExcerpts(req, resp []byte) {
	l.reqExcerpt = append(l.reqExcerpt[:0], req[:min(len(req), ExcerptBytes)]...)
	l.respExcerpt = append(l.respExcerpt[:0], resp[:min(len(resp), ExcerptBytes)]...)
}

// maxLaneScratch is the largest scratch buffer a Lane keeps between events.
const maxLaneScratch = 1 << 20

// eventData returns the template data of ev (see scripting.EventData), reset once per
// event: the hooks of one event share it, and the context map a template may need.
// Events without a record (Admin API tests, hand-built events) are not cached.
func (l *Lane) eventData(ev *hooks.Event) *scripting.EventData {
	if ev.Record == nil || l.ctxRec != ev.Record || l.ctxOff != ev.Record.Offset {
		l.ctx.Reset(ev.Source, ev.Event, ev.Data())
		l.ctxRec = ev.Record
		if ev.Record != nil {
			l.ctxOff = ev.Record.Offset
		}
	}
	return &l.ctx
}

// trim drops scratch buffers grown past maxLaneScratch by one huge event.
func (l *Lane) trim() {
	if cap(l.scratch) > maxLaneScratch {
		l.scratch = nil
	}
}
