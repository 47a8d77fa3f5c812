package hooks

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
)

// Record headers understood by the decoder.
const (
	HeaderSource   = "eh-source"
	HeaderEvent    = "eh-event"
	HeaderCESource = "ce_source"
	HeaderCEType   = "ce_type"
	HeaderCEID     = "ce_id"
	HeaderCETime   = "ce_time"
)

// DefaultMaxEventBytes bounds a record value the decoder accepts.
const DefaultMaxEventBytes = 1 << 20

// Decode errors. The processor counts them by Kind and moves on.
var (
	ErrOversize       = errors.New("record value exceeds the size limit")
	ErrNotJSON        = errors.New("record value is not valid JSON")
	ErrNotObject      = errors.New("record value is not a JSON object")
	ErrMissingSource  = errors.New(`envelope has no "source"`)
	ErrMissingEvent   = errors.New(`envelope has no "event"`)
	ErrMissingData    = errors.New(`envelope has no "data" object`)
	ErrHeaderMismatch = errors.New("eh-source/eh-event headers disagree with the envelope")
	ErrBadTime        = errors.New(`envelope "time" is not RFC 3339`)
)

// DecodeErrorKind names a decode error for metrics and logs ("not_json", "oversize", …).
func DecodeErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrOversize):
		return "oversize"
	case errors.Is(err, ErrNotJSON):
		return "not_json"
	case errors.Is(err, ErrNotObject):
		return "not_object"
	case errors.Is(err, ErrMissingSource):
		return "missing_source"
	case errors.Is(err, ErrMissingEvent):
		return "missing_event"
	case errors.Is(err, ErrMissingData):
		return "missing_data"
	case errors.Is(err, ErrHeaderMismatch):
		return "header_mismatch"
	case errors.Is(err, ErrBadTime):
		return "bad_time"
	}
	return "other"
}

// Event is one decoded event. Data and the byte slices point into the Decoder and the
// record: they are valid until the Decoder decodes the next record.
type Event struct {
	Record *kgo.Record
	// Key is the entity key (the record key).
	Key []byte
	// ID is the envelope's id (may be empty).
	ID     []byte
	Source string
	Event  string
	// Time is the envelope's time, or the record timestamp when the envelope has none.
	Time time.Time
	Data *fastjson.Value
}

// Decoder turns records into Events. One Decoder belongs to one goroutine (a lane): it
// reuses its parser and interns source and event names so the steady state allocates
// nothing.
type Decoder struct {
	// MaxBytes bounds the record value; 0 means DefaultMaxEventBytes.
	MaxBytes int
	// OnNewName is called the first time this decoder sees a source/event pair.
	OnNewName func(source, event string)

	parser fastjson.Parser
	names  map[string]string
	pairs  map[[2]string]struct{}
}

const maxInterned = 4096

// intern returns a string equal to b, allocating only the first time (up to a bound).
func (d *Decoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxInterned {
		d.names[s] = s
	}
	return s
}

func (d *Decoder) notePair(source, event string) {
	if d.OnNewName == nil {
		return
	}
	k := [2]string{source, event}
	if _, ok := d.pairs[k]; ok {
		return
	}
	if d.pairs == nil {
		d.pairs = make(map[[2]string]struct{})
	}
	if len(d.pairs) < maxInterned {
		d.pairs[k] = struct{}{}
	}
	d.OnNewName(source, event)
}

// Route returns the source and event named by the record's headers (eh-* or CloudEvents),
// without parsing the value; ok is false when the headers do not name both.
func (d *Decoder) Route(r *kgo.Record) (source, event string, ok bool) {
	var src, ev, ceSrc, ceType []byte
	for i := range r.Headers {
		h := &r.Headers[i]
		switch h.Key {
		case HeaderSource:
			src = h.Value
		case HeaderEvent:
			ev = h.Value
		case HeaderCESource:
			ceSrc = h.Value
		case HeaderCEType:
			ceType = h.Value
		}
	}
	if len(src) > 0 && len(ev) > 0 {
		return d.intern(src), d.intern(ev), true
	}
	if len(ceSrc) > 0 && len(ceType) > 0 {
		return d.intern(ceSrc), d.intern(ceType), true
	}
	return "", "", false
}

// Decode parses r into ev.
func (d *Decoder) Decode(r *kgo.Record, ev *Event) error {
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxEventBytes
	}
	if len(r.Value) > limit {
		return ErrOversize
	}
	*ev = Event{Record: r, Key: r.Key, Time: r.Timestamp}
	if ce, ok := cloudEventHeaders(r); ok {
		return d.decodeCloudEvent(r, ce, ev)
	}
	// fastjson's parser is lenient (NaN, 01, raw control characters): validate first so
	// that what a hook receives is JSON.
	if fastjson.ValidateBytes(r.Value) != nil {
		return ErrNotJSON
	}
	v, err := d.parser.ParseBytes(r.Value)
	if err != nil {
		return ErrNotJSON
	}
	if v.Type() != fastjson.TypeObject {
		return ErrNotObject
	}
	src := v.GetStringBytes("source")
	if len(src) == 0 {
		return ErrMissingSource
	}
	evName := v.GetStringBytes("event")
	if len(evName) == 0 {
		return ErrMissingEvent
	}
	data := v.Get("data")
	if data == nil || data.Type() != fastjson.TypeObject {
		return ErrMissingData
	}
	ev.Source, ev.Event, ev.Data = d.intern(src), d.intern(evName), data
	if id := v.GetStringBytes("id"); len(id) > 0 {
		ev.ID = id
	}
	if t := v.GetStringBytes("time"); len(t) > 0 {
		parsed, err := time.Parse(time.RFC3339Nano, string(t))
		if err != nil {
			return ErrBadTime
		}
		ev.Time = parsed
	}
	if hs, he, ok := d.Route(r); ok && (hs != ev.Source || he != ev.Event) {
		return ErrHeaderMismatch
	}
	d.notePair(ev.Source, ev.Event)
	return nil
}

type ceHeaders struct{ source, typ, id, time []byte }

func cloudEventHeaders(r *kgo.Record) (ceHeaders, bool) {
	var ce ceHeaders
	for i := range r.Headers {
		h := &r.Headers[i]
		switch h.Key {
		case HeaderCESource:
			ce.source = h.Value
		case HeaderCEType:
			ce.typ = h.Value
		case HeaderCEID:
			ce.id = h.Value
		case HeaderCETime:
			ce.time = h.Value
		}
	}
	return ce, len(ce.source) > 0 || len(ce.typ) > 0
}

// decodeCloudEvent handles CloudEvents binary mode: attributes in ce_* headers, the value
// is the data.
func (d *Decoder) decodeCloudEvent(r *kgo.Record, ce ceHeaders, ev *Event) error {
	if len(ce.source) == 0 {
		return ErrMissingSource
	}
	if len(ce.typ) == 0 {
		return ErrMissingEvent
	}
	if fastjson.ValidateBytes(r.Value) != nil {
		return ErrNotJSON
	}
	v, err := d.parser.ParseBytes(r.Value)
	if err != nil {
		return ErrNotJSON
	}
	if v.Type() != fastjson.TypeObject {
		return ErrMissingData
	}
	ev.Source, ev.Event, ev.Data = d.intern(ce.source), d.intern(ce.typ), v
	if len(ce.id) > 0 {
		ev.ID = ce.id
	}
	if len(ce.time) > 0 {
		parsed, err := time.Parse(time.RFC3339Nano, string(ce.time))
		if err != nil {
			return ErrBadTime
		}
		ev.Time = parsed
	}
	d.notePair(ev.Source, ev.Event)
	return nil
}
