package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
)

// ErrBadEnvelope marks an envelope that EnvelopeRecord refuses although the Decoder has
// no sentinel for it: a duplicated member, or an "id" or "key" that is not a string.
var ErrBadEnvelope = errors.New("invalid envelope")

// EnvelopeOptions configures EnvelopeRecord.
type EnvelopeOptions struct {
	// Topic is the record's topic; "" leaves it to the producing client's default topic.
	Topic string
	// KeyField names the data field holding the entity key of an event without a "key":
	// a dotted path into data such as "entity.id" or "upstream_id" (array elements by
	// index: "targets.0.id"). Several paths separated by commas are tried in order
	// ("consumer.id,ip"). A non-empty string or a number (as written) is used; "" = none.
	KeyField string
	// MaxBytes bounds the record value, as Decoder.MaxBytes does; 0 = DefaultMaxEventBytes.
	MaxBytes int
	// NewID returns the id given to an event that has none; nil = a random UUID.
	NewID func() string
}

// EnvelopeRecord turns one event as a producer writes it into the record the processor
// reads (see The event envelope in the README), or explains why the processor would reject it. It accepts:
//
//   - an envelope {"id","source","event","time","data","key"}: source and event non-empty
//     strings, data an object, the rest optional; "key" (the entity key) is not written
//     to the value;
//   - the body of Kong's own `webhook` event hook: the event's data object with "source"
//     and "event" added and no "data" member. It becomes an envelope whose data is the
//     body without source and event (any "id", "time" or "key" there stay in data).
//
// A missing (or null or empty) id becomes opt.NewID() and a missing time the current
// time in RFC 3339. The record key is, in order: the envelope's "key", the first
// opt.KeyField path found in data, the id. Headers eh-source and eh-event are set. The
// value is checked with a Decoder before it is returned, so what is accepted here is
// accepted by the processor. Errors wrap the Decoder's sentinels (ErrNotJSON,
// ErrNotObject, ErrMissingSource, ErrMissingEvent, ErrMissingData, ErrBadTime,
// ErrOversize) or ErrBadEnvelope. line is not retained.
func EnvelopeRecord(line []byte, opt EnvelopeOptions) (*kgo.Record, error) {
	limit := opt.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxEventBytes
	}
	if err := fastjson.ValidateBytes(line); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	// fastjson's validator lets a raw control character through in an object key that
	// also holds an escape (a raw 0x10 followed by \b); encoding/json does not.
	if !json.Valid(line) {
		var raw json.RawMessage
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, json.Unmarshal(line, &raw))
	}
	members, ok := objectMembers(line)
	if !ok {
		return nil, ErrNotObject
	}
	var idx envelopeIndex
	if err := idx.build(members); err != nil {
		return nil, err
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(line)
	if err != nil { // validated above; kept for safety
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}

	source, err := requiredString(v, "source", ErrMissingSource)
	if err != nil {
		return nil, err
	}
	event, err := requiredString(v, "event", ErrMissingEvent)
	if err != nil {
		return nil, err
	}
	kong := idx.at[fieldData] < 0
	data := v
	var id, at, key string
	if !kong {
		if data = v.Get("data"); data.Type() != fastjson.TypeObject {
			return nil, fmt.Errorf(`%w: "data" is %s`, ErrMissingData, typeName(data))
		}
		if id, err = optionalString(v, "id", ErrBadEnvelope); err != nil {
			return nil, err
		}
		if key, err = optionalString(v, "key", ErrBadEnvelope); err != nil {
			return nil, err
		}
		if at, err = optionalString(v, "time", ErrBadTime); err != nil {
			return nil, err
		}
		if at != "" {
			if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
				return nil, fmt.Errorf("%w: %q", ErrBadTime, shorten(at))
			}
		}
	}
	genID, genTime := id == "", at == ""
	if genID {
		if opt.NewID != nil {
			id = opt.NewID()
		}
		if id == "" {
			id = uuid.NewString()
		}
	}
	if genTime {
		at = time.Now().UTC().Format(time.RFC3339Nano)
	}
	if key == "" {
		key = keyFromData(data, opt.KeyField, kong)
	}
	if key == "" {
		key = id
	}

	value := make([]byte, 0, len(line)+len(id)+len(at)+48)
	if kong {
		value = append(value, `{"id":`...)
		value = appendString(value, id)
		value = append(value, `,"source":`...)
		value = append(value, members[idx.at[fieldSource]].value...)
		value = append(value, `,"event":`...)
		value = append(value, members[idx.at[fieldEvent]].value...)
		value = append(value, `,"time":`...)
		value = appendString(value, at)
		value = append(value, `,"data":{`...)
		value = appendMembers(value, false, members, idx.at[fieldSource], idx.at[fieldEvent], -1)
		value = append(value, "}}"...)
	} else {
		// A generated id or time replaces a null or empty one; "key" is never written.
		value = append(value, '{')
		skipID, skipTime := -1, -1
		if genID {
			value = append(value, `"id":`...)
			value = appendString(value, id)
			skipID = idx.at[fieldID]
		}
		if genTime {
			if genID {
				value = append(value, ',')
			}
			value = append(value, `"time":`...)
			value = appendString(value, at)
			skipTime = idx.at[fieldTime]
		}
		value = appendMembers(value, genID || genTime, members, idx.at[fieldKey], skipID, skipTime)
		value = append(value, '}')
	}
	if len(value) > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrOversize, len(value), limit)
	}
	rec := &kgo.Record{
		Topic: opt.Topic,
		Key:   []byte(key),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderSource, Value: []byte(source)},
			{Key: HeaderEvent, Value: []byte(event)},
		},
	}
	// The processor's own check: a fresh Decoder (a pooled one would intern arbitrary
	// names without bound across requests).
	d := Decoder{MaxBytes: limit}
	var ev Event
	if err := d.Decode(rec, &ev); err != nil {
		return nil, fmt.Errorf("cannot build an envelope the processor accepts: %w", err)
	}
	return rec, nil
}

// Known envelope members.
const (
	fieldSource = iota
	fieldEvent
	fieldData
	fieldID
	fieldTime
	fieldKey
	numFields
)

var fieldNames = [numFields]string{"source", "event", "data", "id", "time", "key"}

// envelopeIndex locates the known members of a top-level object.
type envelopeIndex struct{ at [numFields]int }

// build fills the index, refusing a known member given twice (fastjson reads the first
// of duplicates, encoding/json the last: the value would mean different things).
func (x *envelopeIndex) build(members []member) error {
	for i := range x.at {
		x.at[i] = -1
	}
	for i, m := range members {
		name := memberName(m.name)
		for f, fn := range fieldNames {
			if name != fn {
				continue
			}
			if x.at[f] >= 0 {
				return fmt.Errorf("%w: %q appears more than once", ErrBadEnvelope, fn)
			}
			x.at[f] = i
		}
	}
	return nil
}

// requiredString returns the non-empty string member name of v, or sentinel.
func requiredString(v *fastjson.Value, name string, sentinel error) (string, error) {
	f := v.Get(name)
	if f == nil {
		return "", sentinel
	}
	if f.Type() != fastjson.TypeString {
		return "", fmt.Errorf("%w: %q is %s, want a non-empty string", sentinel, name, typeName(f))
	}
	b, _ := f.StringBytes()
	if len(b) == 0 {
		return "", fmt.Errorf("%w: %q is empty", sentinel, name)
	}
	return string(b), nil
}

// optionalString returns the string member name of v; absent and null are "".
func optionalString(v *fastjson.Value, name string, sentinel error) (string, error) {
	f := v.Get(name)
	if f == nil || f.Type() == fastjson.TypeNull {
		return "", nil
	}
	if f.Type() != fastjson.TypeString {
		return "", fmt.Errorf("%w: %q is %s, want a string", sentinel, name, typeName(f))
	}
	b, _ := f.StringBytes()
	return string(b), nil
}

// keyFromData returns the first of the comma-separated dotted paths that names a
// non-empty string or a number in data. In Kong's body shape the top-level source and
// event are not data.
func keyFromData(data *fastjson.Value, paths string, kong bool) string {
	for path := range strings.SplitSeq(paths, ",") {
		path = strings.TrimSpace(path)
		if path == "" {
			continue
		}
		keys := strings.Split(path, ".")
		if kong && (keys[0] == "source" || keys[0] == "event") {
			continue
		}
		f := data.Get(keys...)
		switch {
		case f == nil:
		case f.Type() == fastjson.TypeString:
			if b, _ := f.StringBytes(); len(b) > 0 {
				return string(b)
			}
		case f.Type() == fastjson.TypeNumber:
			return f.String() // the number as written
		}
	}
	return ""
}

func typeName(v *fastjson.Value) string {
	if v == nil {
		return "missing"
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return "null"
	case fastjson.TypeObject:
		return "an object"
	case fastjson.TypeArray:
		return "an array"
	case fastjson.TypeString:
		return "a string"
	case fastjson.TypeNumber:
		return "a number"
	}
	return "a boolean"
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // cannot fail for a string
	return append(dst, b...)
}

// member is one member of a JSON object: the raw quoted name and the raw value, both
// slices of the input.
type member struct{ name, value []byte }

// appendMembers appends the members except those at the skip indexes, comma separated
// (sep: a comma precedes the first one too), copied byte for byte: never re-encoded, so
// valid input stays valid output.
func appendMembers(dst []byte, sep bool, ms []member, skip ...int) []byte {
	first := !sep
next:
	for i, m := range ms {
		for _, s := range skip {
			if i == s {
				continue next
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, m.name...)
		dst = append(dst, ':')
		dst = append(dst, m.value...)
	}
	return dst
}

// memberName returns the unescaped name of a raw quoted member name.
func memberName(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return string(inner)
			}
			return s
		}
	}
	return string(inner)
}
