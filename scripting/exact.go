package scripting

// JSON as JSON.stringify writes JavaScript's reading of it: from a parse tree
// (appendExact) or straight from compact JSON text (appendExactMembers), with the checks
// that say when the result is exact (keys JavaScript keeps in order, numbers it writes as
// they are).

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// smallObject is the size up to which plainKeys looks for duplicates by scanning.
const smallObject = 16

// plainKeys reports whether a JavaScript object keeps o's keys as they are, in order:
// none is an array index (objects list those first, in numeric order) or repeated, and
// all are valid UTF-8.
func plainKeys(o *fastjson.Object) bool {
	var ks keySet
	ok := true
	o.Visit(func(k []byte, _ *fastjson.Value) {
		ok = ok && plainKey(k) && ks.first(k)
	})
	return ok
}

// plainKey reports whether a JavaScript object keeps the key k as it is, wherever it
// is: not an array index, valid UTF-8.
func plainKey(k []byte) bool { return !isIndexKey(k) && utf8.Valid(k) }

// keySet tells whether each key of a JSON object is the first with its text, as the
// members are met in order. A small object's keys are kept and scanned, on a collision
// of keyBit only; past smallObject keys they go into a map. (Comparing the member with
// the one Object.Get finds would not do: true, false and null are shared values.)
type keySet struct {
	n      int
	small  [smallObject][]byte
	hashes uint64
	seen   map[string]struct{}
}

func (ks *keySet) first(k []byte) bool {
	if ks.seen == nil && ks.n < smallObject {
		bit := keyBit(k)
		first := true
		if ks.hashes&bit != 0 {
			for _, p := range ks.small[:ks.n] {
				first = first && !bytes.Equal(p, k)
			}
		}
		ks.hashes |= bit
		ks.small[ks.n] = k
		ks.n++
		return first
	}
	if ks.seen == nil {
		ks.seen = make(map[string]struct{}, 2*smallObject)
		for _, p := range ks.small[:ks.n] {
			ks.seen[string(p)] = struct{}{}
		}
	}
	_, dup := ks.seen[string(k)]
	ks.seen[string(k)] = struct{}{}
	return !dup
}

// keyBit hashes a key to one bit of 64 from its length and its first and last bytes.
func keyBit(k []byte) uint64 {
	h := uint(len(k))
	if len(k) > 0 {
		h = h*31 + uint(k[0])*7 + uint(k[len(k)-1])
	}
	return 1 << (h & 63)
}

// appendJSNumber appends the number v as JSON.stringify writes its conversion.
func appendJSNumber(dst []byte, v *fastjson.Value) []byte {
	start := len(dst)
	if dst = v.MarshalTo(dst); plainInt(dst[start:]) { // the number's text, as JavaScript writes it
		return dst
	}
	if i, ok := longInt(dst[start:]); ok {
		return appendLongInt(dst[:start], i)
	}
	dst = dst[:start]
	switch i, f, kind := jsNumber(v); kind {
	case numberInt:
		return strconv.AppendInt(dst, i, 10)
	case numberFloat:
		return appendJSONFloat(dst, f)
	}
	return append(dst, "null"...)
}

// plainInt reports whether b is an integer JavaScript writes as it is: up to 15 digits
// (below 2^53), no leading zero, not -0.
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
		if len(b) == 1 && b[0] == '0' {
			return false
		}
	}
	if len(b) == 0 || len(b) > 15 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// longInt reads b when it is an integer that plainInt rejects for its length only: 16 to
// 19 digits without a leading zero, within the int64 range (a nanosecond timestamp).
func longInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) < 16 || len(b) > 19 || b[0] == '0' {
		return 0, false
	}
	var u uint64 // 19 digits cannot overflow it
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// appendLongInt appends an integer longInt read as appendJSNumber writes it: what jsNumber
// makes of it, without parsing the text as a float first.
func appendLongInt(dst []byte, i int64) []byte {
	f := float64(i) // rounded as JavaScript rounds it: 2^53+1 is 2^53
	if math.Abs(f) <= maxExactInt {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return appendJSONFloat(dst, f)
}

// appendExact appends v as JSON.stringify writes its JavaScript conversion (as tree
// does) when that keeps v's structure, and reports exact. Otherwise — an object whose
// keys JavaScript would reorder or merge, text that is not valid UTF-8 — it still writes
// valid JSON of the same structure (members in order, duplicates kept, invalid UTF-8 as
// U+FFFD, which goja makes of it too), and exact is false. depth is how deep v nests.
func appendExact(dst []byte, v *fastjson.Value) (out []byte, depth int, exact bool) {
	x := exactWriter{buf: dst, exact: true}
	x.value(v, 0)
	return x.buf, x.depth, x.exact
}

// exactWriter is appendExact's state.
type exactWriter struct {
	buf   []byte
	depth int
	exact bool
}

func (x *exactWriter) value(v *fastjson.Value, depth int) {
	x.depth = max(x.depth, depth)
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		// The keys are checked as they are written (plainKeys in the same pass).
		var ks keySet
		x.buf = append(x.buf, '{')
		o.Visit(func(k []byte, e *fastjson.Value) {
			x.exact = x.exact && plainKey(k) && ks.first(k)
			if x.buf[len(x.buf)-1] != '{' {
				x.buf = append(x.buf, ',')
			}
			x.buf = append(appendJSONString(x.buf, k), ':')
			x.value(e, depth+1)
		})
		x.buf = append(x.buf, '}')
	case fastjson.TypeArray:
		items, _ := v.Array()
		x.buf = append(x.buf, '[')
		for i, e := range items {
			if i > 0 {
				x.buf = append(x.buf, ',')
			}
			x.value(e, depth+1)
		}
		x.buf = append(x.buf, ']')
	case fastjson.TypeString:
		s := v.GetStringBytes()
		x.exact = x.exact && utf8.Valid(s)
		x.buf = appendJSONString(x.buf, s)
	case fastjson.TypeNumber:
		x.buf = appendJSNumber(x.buf, v)
	default:
		x.buf = v.MarshalTo(x.buf) // true, false, null
	}
}

// appendExactMembers appends what appendExact appends for the object whose members'
// JSON text is members (the text between its braces: valid JSON and UTF-8, with no
// whitespace between tokens), reading the text rather than a parsed tree: strings and
// keys are copied as they are, numbers rewritten only when JavaScript writes them
// differently. ok is false when the text holds what only parsing reads (an escape in a
// string or key) or is not such JSON; the caller then parses it and calls appendExact.
// num parses the numbers to rewrite.
func appendExactMembers(dst, members []byte, num *fastjson.Parser) (out []byte, depth int, exact, ok bool) {
	t := textWriter{src: members, num: num, exactWriter: exactWriter{buf: dst, exact: true}}
	ok = t.object(0, len(members)) && t.i == len(members)
	return t.buf, t.depth, t.exact, ok
}

// textWriter is appendExactMembers' state: src is read from i on.
type textWriter struct {
	exactWriter
	src []byte
	i   int
	num *fastjson.Parser
}

// value copies the value at t.i, nested depth levels deep, as exactWriter.value writes
// its parsed form.
func (t *textWriter) value(depth int) bool {
	t.depth = max(t.depth, depth)
	if depth > maxJSONDepth || t.i >= len(t.src) {
		return false
	}
	switch c := t.src[t.i]; c {
	case '{':
		t.i++
		return t.object(depth, -1)
	case '[':
		t.i++
		return t.array(depth)
	case '"':
		s, ok := t.str()
		t.buf = append(append(append(t.buf, '"'), s...), '"')
		return ok
	case 't', 'f', 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if lit[0] == c && bytes.HasPrefix(t.src[t.i:], []byte(lit)) {
				t.i += len(lit)
				t.buf = append(t.buf, lit...)
				return true
			}
		}
		return false
	}
	return t.number()
}

// object copies the members at t.i, up to its closing brace (the end of src for the
// outermost object, end being len(src) then, -1 otherwise).
func (t *textWriter) object(depth, end int) bool {
	var keys keySet
	t.buf = append(t.buf, '{')
	for n := 0; ; n++ {
		if t.i == end {
			break
		}
		if end < 0 && t.i < len(t.src) && t.src[t.i] == '}' {
			t.i++
			break
		}
		if !t.comma(n) {
			return false
		}
		k, ok := t.str()
		if !ok || t.i >= len(t.src) || t.src[t.i] != ':' {
			return false
		}
		t.i++
		t.exact = t.exact && !isIndexKey(k) && keys.first(k) // UTF-8 already
		t.buf = append(t.buf, '"')
		t.buf = append(t.buf, k...)
		t.buf = append(t.buf, '"', ':')
		if !t.value(depth + 1) {
			return false
		}
	}
	t.buf = append(t.buf, '}')
	return true
}

func (t *textWriter) array(depth int) bool {
	t.buf = append(t.buf, '[')
	for n := 0; ; n++ {
		if t.i < len(t.src) && t.src[t.i] == ']' {
			t.i++
			break
		}
		if !t.comma(n) {
			return false
		}
		if !t.value(depth + 1) {
			return false
		}
	}
	t.buf = append(t.buf, ']')
	return true
}

// comma copies the comma before the n-th member or element (none before the first).
func (t *textWriter) comma(n int) bool {
	if n == 0 {
		return true
	}
	if t.i >= len(t.src) || t.src[t.i] != ',' {
		return false
	}
	t.i++
	t.buf = append(t.buf, ',')
	return true
}

// str reads the string literal at t.i and returns its text, which JSON.stringify writes
// as it is when it holds no escape (ok is false otherwise): the text is valid JSON and
// UTF-8, so it holds no control character and no invalid byte either.
func (t *textWriter) str() (s []byte, ok bool) {
	if t.i >= len(t.src) || t.src[t.i] != '"' {
		return nil, false
	}
	rest := t.src[t.i+1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	t.i += end + 2
	return rest[:end], true
}

// number copies the number at t.i, rewritten as appendJSNumber writes its parsed form
// when it is not an integer JavaScript writes as it is.
func (t *textWriter) number() bool {
	n := jsonx.NumberLen(t.src[t.i:])
	text := t.src[t.i : t.i+n]
	t.i += n
	if n == 0 {
		return false
	}
	if plainInt(text) {
		t.buf = append(t.buf, text...)
		return true
	}
	if i, ok := longInt(text); ok {
		t.buf = appendLongInt(t.buf, i)
		return true
	}
	v, err := t.num.ParseBytes(text)
	if err != nil || v.Type() != fastjson.TypeNumber {
		return false
	}
	t.buf = appendJSNumber(t.buf, v)
	return true
}

// isIndexKey reports whether k is an array index ("0" to "4294967294", no leading zero).
func isIndexKey(k []byte) bool {
	if len(k) == 0 || k[0] < '0' || k[0] > '9' || len(k) > 10 {
		return false
	}
	if k[0] == '0' {
		return len(k) == 1
	}
	n, err := strconv.ParseUint(string(k), 10, 32)
	return err == nil && n < math.MaxUint32
}
