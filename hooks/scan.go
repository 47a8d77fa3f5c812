package hooks

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"github.com/eventhooks/eventhooks/internal/jsonx"
	"github.com/valyala/fastjson"
)

// jsonScanner validates JSON in one pass, as strictly as encoding/json.Valid (RFC 8259)
// and with fastjson's nesting limit, so that whatever it accepts fastjson parses. While
// it scans it notes where an envelope's members are and whether the data object can be
// copied into a request body as it arrived: that lets a webhook skip parsing the event.
type jsonScanner struct {
	b []byte
	i int

	// env receives the members of the top-level object, when readEnv is set.
	env     envelope
	readEnv bool
	// keysAt is the depth whose object keys are checked for a clash (0: none).
	keysAt int

	// Since the caller last cleared them: whitespace between tokens, a string byte past
	// ASCII, and an object at keysAt with a "source" or "event" key or an escaped key.
	spaced, high, clash bool
}

// envMember is one envelope member: a string's contents between its quotes (escapes as
// they are), or another value's JSON text.
type envMember struct {
	text    []byte
	kind    byte // the value's first byte: '"', '{', '[', 't', 'n', a digit…
	escaped bool // a string with an escape: its text is not its value
	set     bool
	tree    *fastjson.Value // data, when the envelope was read through fastjson
}

// str returns the member's string value (nil when it is not a string).
func (m *envMember) str() []byte {
	if m.kind != '"' {
		return nil
	}
	return m.text
}

// envelope is what Decode reads of a record value. Keys are matched as they are: an
// escaped top-level key, or an escaped string where a name is read, sets slow, and the
// value is then read through fastjson, which unescapes.
type envelope struct {
	source, event, id, time, data envMember
	// flat: data's members can be copied into a body as they are (see Event.DataMembers).
	flat bool
	slow bool
}

// member returns the member named key, nil for a name the decoder does not read.
func (e *envelope) member(key []byte) *envMember {
	switch string(key) {
	case "source":
		return &e.source
	case "event":
		return &e.event
	case "id":
		return &e.id
	case "time":
		return &e.time
	case "data":
		return &e.data
	}
	return nil
}

// note records a member of the top-level object; the first of a name counts, as with
// fastjson's Get.
func (e *envelope) note(key []byte, keyEscaped bool, val []byte, s *jsonScanner) {
	if keyEscaped {
		e.slow = true
		return
	}
	m := e.member(key)
	if m == nil || m.set {
		return
	}
	m.set, m.kind, m.text = true, val[0], val
	if m.kind == '"' {
		m.text = val[1 : len(val)-1]
		m.escaped = bytes.IndexByte(m.text, '\\') >= 0
		e.slow = e.slow || m.escaped && m != &e.data
	}
	if m == &e.data {
		e.flat = m.kind == '{' && s.flat(val)
	}
}

// scanValue validates b as one JSON value, surrounded by optional whitespace, and returns
// it without that whitespace; ok is false when b is not JSON.
func (s *jsonScanner) scanValue(b []byte) (v []byte, ok bool) {
	s.b, s.i = b, 0
	s.ws()
	start := s.i
	s.spaced, s.high, s.clash = false, false, false
	if !s.value(1) {
		return nil, false
	}
	end, spaced := s.i, s.spaced
	s.ws()
	s.spaced = spaced // the flags are the value's
	return b[start:end], s.i == len(b)
}

// flat reports whether val, the object scanned since the flags were cleared, can be
// copied into a body as it is (see Event.DataMembers).
func (s *jsonScanner) flat(val []byte) bool {
	return !s.spaced && !s.clash && (!s.high || utf8.Valid(val))
}

// ws skips whitespace.
func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.spaced = true
			s.i++
		default:
			return
		}
	}
}

// value scans the value at s.i. depth counts every value, scalars too, as fastjson's
// parser does.
func (s *jsonScanner) value(depth int) bool {
	if depth > fastjson.MaxDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *jsonScanner) object(depth int) bool {
	if s.open('}') {
		return true
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		keyStart := s.i + 1
		keyEscaped, ok := s.str()
		if !ok {
			return false
		}
		key := s.b[keyStart : s.i-1]
		if depth == s.keysAt && (keyEscaped || string(key) == "source" || string(key) == "event") {
			s.clash = true
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		top := depth == 1 && s.readEnv
		if top {
			s.spaced, s.high, s.clash = false, false, false
		}
		valStart := s.i
		if !s.value(depth + 1) {
			return false
		}
		if top {
			s.env.note(key, keyEscaped, s.b[valStart:s.i], s)
		}
		if more, ok := s.next('}'); !more {
			return ok
		}
	}
}

func (s *jsonScanner) array(depth int) bool {
	if s.open(']') {
		return true
	}
	for {
		if !s.value(depth + 1) {
			return false
		}
		if more, ok := s.next(']'); !more {
			return ok
		}
	}
}

// open steps into an object or array, reporting whether it ends at once (with end).
func (s *jsonScanner) open(end byte) bool {
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == end {
		s.i++
		return true
	}
	return false
}

// next steps over what follows a member or an element: a comma (more) or end (ok).
func (s *jsonScanner) next(end byte) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.ws()
		return true, true
	case end:
		s.i++
		return false, true
	}
	return false, false
}

// str scans the string literal at s.i, reporting whether it holds an escape.
func (s *jsonScanner) str() (escaped, ok bool) {
	b, i := s.b, s.i+1
	for {
		for i+8 <= len(b) && jsonx.PlainWord(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			return false, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return escaped, true
		case c == '\\':
			n := escapeLen(b[i:])
			if n == 0 {
				return false, false
			}
			escaped = true
			i += n
		case c < 0x20:
			return false, false
		case c >= utf8.RuneSelf:
			s.high = true
			i++
		default:
			i++
		}
	}
}

// escapeLen returns the length of the escape sequence b starts with, 0 if it is not one.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 {
			return 0
		}
		for _, c := range b[2:6] {
			if !isHex(c) {
				return 0
			}
		}
		return 6
	}
	return 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// number scans the number at s.i; what may follow is the caller's to check.
func (s *jsonScanner) number() bool {
	n := jsonx.NumberLen(s.b[s.i:])
	s.i += n
	return n > 0
}

func (s *jsonScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}
