package scripting

// JSON as JSON.stringify writes JavaScript's reading of it: from a parse tree
// (appendExact) or straight from compact JSON text (appendExactMembers), with the checks
// that say when the result is exact (keys JavaScript keeps in order, numbers it writes as
// they are).

import (
	"bytes"
	"math"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// plainKeys reports whether a JavaScript object keeps o's keys as they are, in order:
// none is an array index (objects list those first, in numeric order) or repeated, and
// all are valid UTF-8.
func plainKeys(o *fastjson.Object) bool {
	var ks jsonx.Keys
	ok := true
	o.Visit(func(k []byte, _ *fastjson.Value) {
		ok = ok && jsonx.PlainKey(k) && ks.First(k)
	})
	return ok
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
	x := jsonx.ValueWriter{Buf: dst, Number: appendJSNumber, Exact: true}
	x.Value(v, 0)
	return x.Buf, x.Depth, x.Exact
}

// appendExactMembers appends what appendExact appends for the object whose members'
// JSON text is members (the text between its braces: valid JSON and UTF-8, with no
// whitespace between tokens), reading the text rather than a parsed tree: strings and
// keys are copied as they are, numbers rewritten only when JavaScript writes them
// differently. ok is false when the text holds what only parsing reads (an escape in a
// string or key) or is not such JSON; the caller then parses it and calls appendExact.
// num parses the numbers to rewrite.
func appendExactMembers(dst, members []byte, num *fastjson.Parser) (out []byte, depth int, exact, ok bool) {
	t := textWriter{src: members, num: num, w: jsonx.ValueWriter{Buf: dst, Exact: true}}
	ok = t.object(0, len(members)) && t.i == len(members)
	return t.w.Buf, t.w.Depth, t.w.Exact, ok
}

// textWriter is appendExactMembers' state: src is read from i on.
type textWriter struct {
	w   jsonx.ValueWriter // what is written: Buf, Depth, Exact
	src []byte
	i   int
	num *fastjson.Parser
}

// value copies the value at t.i, nested depth levels deep, as appendExact writes its
// parsed form.
func (t *textWriter) value(depth int) bool {
	t.w.Depth = max(t.w.Depth, depth)
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
		t.w.Buf = append(append(append(t.w.Buf, '"'), s...), '"')
		return ok
	case 't', 'f', 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if lit[0] == c && bytes.HasPrefix(t.src[t.i:], []byte(lit)) {
				t.i += len(lit)
				t.w.Buf = append(t.w.Buf, lit...)
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
	var keys jsonx.Keys
	t.w.Buf = append(t.w.Buf, '{')
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
		t.w.Exact = t.w.Exact && !jsonx.IsIndexKey(k) && keys.First(k) // UTF-8 already
		t.w.Buf = append(t.w.Buf, '"')
		t.w.Buf = append(t.w.Buf, k...)
		t.w.Buf = append(t.w.Buf, '"', ':')
		if !t.value(depth + 1) {
			return false
		}
	}
	t.w.Buf = append(t.w.Buf, '}')
	return true
}

func (t *textWriter) array(depth int) bool {
	t.w.Buf = append(t.w.Buf, '[')
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
	t.w.Buf = append(t.w.Buf, ']')
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
	t.w.Buf = append(t.w.Buf, ',')
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
		t.w.Buf = append(t.w.Buf, text...)
		return true
	}
	if i, ok := longInt(text); ok {
		t.w.Buf = appendLongInt(t.w.Buf, i)
		return true
	}
	v, err := t.num.ParseBytes(text)
	if err != nil || v.Type() != fastjson.TypeNumber {
		return false
	}
	t.w.Buf = appendJSNumber(t.w.Buf, v)
	return true
}
