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

// decodeErrorKinds names each decode error for metrics and logs.
var decodeErrorKinds = []struct {
	err  error
	kind string
}{
	{ErrOversize, "oversize"}, {ErrNotJSON, "not_json"}, {ErrNotObject, "not_object"},
	{ErrMissingSource, "missing_source"}, {ErrMissingEvent, "missing_event"},
	{ErrMissingData, "missing_data"}, {ErrHeaderMismatch, "header_mismatch"}, {ErrBadTime, "bad_time"},
}

// DecodeErrorKinds returns every name DecodeErrorKind gives, "other" last, so a counter
// per kind can exist (at zero) before the first malformed record.
func DecodeErrorKinds() []string {
	out := make([]string, 0, len(decodeErrorKinds)+1)
	for _, k := range decodeErrorKinds {
		out = append(out, k.kind)
	}
	return append(out, "other")
}

// DecodeErrorKind names a decode error for metrics and logs ("not_json", "oversize", …).
func DecodeErrorKind(err error) string {
	for _, k := range decodeErrorKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "other"
}

// Event is one decoded event. Its data and byte slices point into the Decoder and the
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

	data    *fastjson.Value  // parsed data, nil until Data parses rawData
	rawData []byte           // the data object's JSON text, validated
	flat    bool             // rawData's members can be copied as they are
	parser  *fastjson.Parser // the decoder's, which parses rawData
}

// emptyObject stands in for data that does not parse, which the decoder's validation
// (fastjson's nesting limit included) rules out.
var emptyObject = fastjson.MustParse(`{}`)

// Data returns the event's data object. A decoded event's data is parsed on the first
// call: a webhook that copies the data as it arrived (DataMembers) never parses it.
func (e *Event) Data() *fastjson.Value {
	if e.data == nil && e.rawData != nil {
		v, err := e.parser.ParseBytes(e.rawData)
		if err != nil {
			v = emptyObject
		}
		e.data = v
	}
	return e.data
}

// SetData sets the data of an event built by hand (Admin API tests, tools).
func (e *Event) SetData(v *fastjson.Value) {
	e.data, e.rawData, e.flat = v, nil, false
}

// DataMembers returns the data object's members as the record holds them, the text
// between its braces, when a body can take them as they are: the object has no
// whitespace between tokens, is valid UTF-8 and has no "source" or "event" member (which
// Kong's body replaces). ok is false otherwise; the caller then writes Data.
func (e *Event) DataMembers() (members []byte, ok bool) {
	if !e.flat {
		return nil, false
	}
	return e.rawData[1 : len(e.rawData)-1], true
}

// Decoder turns records into Events. One Decoder belongs to one goroutine (a lane): it
// reuses its parser and interns source and event names so the steady state allocates
// nothing.
type Decoder struct {
	// MaxBytes bounds the record value; 0 means DefaultMaxEventBytes.
	MaxBytes int
	// OnNewName is called the first time this decoder sees a source/event pair.
	OnNewName func(source, event string)

	parser   fastjson.Parser
	names    map[string]string
	pairs    map[[2]string]struct{}
	lastPair [2]string // the pair noted last: consecutive events mostly share it
	lastRead [2]string // the pair internPair returned last

	// The headers of the record Route scanned last, so Decode of the same record does not
	// scan them again.
	hdrRec *kgo.Record
	hdr    recordHeaders
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

// internPair interns a source and event name pair, comparing with the last pair first:
// consecutive records mostly share it, and two comparisons cost less than two lookups.
func (d *Decoder) internPair(source, event []byte) (string, string) {
	if string(source) != d.lastRead[0] || string(event) != d.lastRead[1] {
		d.lastRead = [2]string{d.intern(source), d.intern(event)}
	}
	return d.lastRead[0], d.lastRead[1]
}

func (d *Decoder) notePair(source, event string) {
	if d.OnNewName == nil || (source == d.lastPair[0] && event == d.lastPair[1]) {
		return
	}
	d.lastPair = [2]string{source, event}
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

// recordHeaders are the headers the decoder reads, scanned once per record.
type recordHeaders struct {
	src, ev                     []byte // eh-source, eh-event
	ceSource, ceType, ceID, ceT []byte // CloudEvents binary mode
}

func scanHeaders(r *kgo.Record) recordHeaders {
	var h recordHeaders
	for i := range r.Headers {
		kv := &r.Headers[i]
		switch kv.Key {
		case HeaderSource:
			h.src = kv.Value
		case HeaderEvent:
			h.ev = kv.Value
		case HeaderCESource:
			h.ceSource = kv.Value
		case HeaderCEType:
			h.ceType = kv.Value
		case HeaderCEID:
			h.ceID = kv.Value
		case HeaderCETime:
			h.ceT = kv.Value
		}
	}
	return h
}

// headers scans r's headers, or returns the scan Route just made of it.
func (d *Decoder) headers(r *kgo.Record) recordHeaders {
	if d.hdrRec != r {
		d.hdr, d.hdrRec = scanHeaders(r), r
	}
	return d.hdr
}

// cloudEvent reports whether the record is in CloudEvents binary mode.
func (h *recordHeaders) cloudEvent() bool { return len(h.ceSource) > 0 || len(h.ceType) > 0 }

// Route returns the source and event named by the record's headers (eh-* or CloudEvents),
// without parsing the value; ok is false when the headers do not name both.
func (d *Decoder) Route(r *kgo.Record) (source, event string, ok bool) {
	h := d.headers(r)
	switch {
	case len(h.src) > 0 && len(h.ev) > 0:
		source, event = d.internPair(h.src, h.ev)
	case len(h.ceSource) > 0 && len(h.ceType) > 0:
		source, event = d.internPair(h.ceSource, h.ceType)
	default:
		return "", "", false
	}
	// A record routed by its headers may never be decoded (no hook wants it): its names
	// are learned here, so its source shows in the catalogue and can be subscribed to.
	d.notePair(source, event)
	return source, event, true
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
	h := d.headers(r)
	d.hdrRec = nil // the record may be reused by its owner after this call
	if h.cloudEvent() {
		return d.decodeCloudEvent(r, &h, ev)
	}
	scan := jsonScanner{readEnv: true, keysAt: 2}
	top, ok := scan.scanValue(r.Value)
	if !ok {
		return ErrNotJSON
	}
	if top[0] != '{' {
		return ErrNotObject
	}
	env := &scan.env
	if env.slow {
		if err := d.readThroughTree(top, env); err != nil {
			return err
		}
	}
	src, evName := env.source.str(), env.event.str()
	if len(src) == 0 {
		return ErrMissingSource
	}
	if len(evName) == 0 {
		return ErrMissingEvent
	}
	if env.data.kind != '{' {
		return ErrMissingData
	}
	ev.Source, ev.Event = d.internPair(src, evName)
	if env.data.tree != nil {
		ev.data = env.data.tree
	} else {
		ev.rawData, ev.flat, ev.parser = env.data.text, env.flat, &d.parser
	}
	if id := env.id.str(); len(id) > 0 {
		ev.ID = id
	}
	if err := setTime(ev, env.time.str()); err != nil {
		return err
	}
	// Headers name both source and event or neither: one alone is a mismatch too (a
	// producer that sets only eh-source has a bug the docs promise to report).
	if (len(h.src) > 0 || len(h.ev) > 0) && (string(h.src) != ev.Source || string(h.ev) != ev.Event) {
		return ErrHeaderMismatch
	}
	d.notePair(ev.Source, ev.Event)
	return nil
}

// readThroughTree reads the envelope's members through fastjson, which unescapes keys
// and strings: for the rare envelope with escapes where names are read. The first member
// of a name counts however its key is spelled ("sourc\u0065" is "source"). Object.Get
// would not do: it matches keys as they are until one lookup misses, and only then
// unescapes them, so what it finds of duplicates depends on the lookups made before.
func (d *Decoder) readThroughTree(top []byte, env *envelope) error {
	v, err := d.parser.ParseBytes(top)
	if err != nil {
		return ErrNotJSON
	}
	env.source, env.event, env.id, env.time, env.data = envMember{}, envMember{}, envMember{}, envMember{}, envMember{}
	v.GetObject().Visit(func(k []byte, e *fastjson.Value) { // Visit unescapes the keys first
		m := env.member(k)
		if m == nil || m.set {
			return
		}
		m.set = true
		switch t := e.Type(); {
		case m == &env.data:
			if t == fastjson.TypeObject {
				m.kind, m.tree = '{', e
			}
		case t == fastjson.TypeString:
			m.kind, m.text = '"', e.GetStringBytes()
		}
	})
	return nil
}

// setTime sets ev.Time from an RFC 3339 time, when there is one.
func setTime(ev *Event, t []byte) error {
	if len(t) == 0 {
		return nil
	}
	parsed, err := time.Parse(time.RFC3339Nano, string(t))
	if err != nil {
		return ErrBadTime
	}
	ev.Time = parsed
	return nil
}

// decodeCloudEvent handles CloudEvents binary mode: attributes in ce_* headers, the value
// is the data.
func (d *Decoder) decodeCloudEvent(r *kgo.Record, ce *recordHeaders, ev *Event) error {
	if len(ce.ceSource) == 0 {
		return ErrMissingSource
	}
	if len(ce.ceType) == 0 {
		return ErrMissingEvent
	}
	scan := jsonScanner{keysAt: 1}
	data, ok := scan.scanValue(r.Value)
	if !ok {
		return ErrNotJSON
	}
	if data[0] != '{' {
		return ErrMissingData
	}
	ev.Source, ev.Event = d.internPair(ce.ceSource, ce.ceType)
	ev.rawData, ev.parser = data, &d.parser
	ev.flat = scan.flat(data)
	if len(ce.ceID) > 0 {
		ev.ID = ce.ceID
	}
	if err := setTime(ev, ce.ceT); err != nil {
		return err
	}
	d.notePair(ev.Source, ev.Event)
	return nil
}
