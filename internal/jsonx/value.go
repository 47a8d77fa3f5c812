package jsonx

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// AppendValue appends v as compact JSON (see ValueWriter: numbers as their source text,
// strings escaped by AppendString with jsSafe).
func AppendValue(dst []byte, v *fastjson.Value, jsSafe bool) []byte {
	w := ValueWriter{Buf: dst, JSSafe: jsSafe}
	w.Value(v, 0)
	return w.Buf
}

// ValueWriter appends a parsed value (a fastjson tree) as compact JSON, the one tree
// writer of the module: sinks writes webhook bodies with it, scripting the JSON that
// JSON.stringify writes for event data. Members are written in order, duplicates kept;
// strings go through AppendString (invalid UTF-8 as U+FFFD). Recursion is bounded by
// fastjson.MaxDepth.
type ValueWriter struct {
	// Buf is what has been written; Value appends to it.
	Buf []byte
	// JSSafe escapes U+2028 and U+2029 in strings (see AppendString).
	JSSafe bool
	// Number appends a number. When nil, a number is written as its source text, or as
	// a string holding that text when it is not an RFC 8259 number (fastjson's parser
	// accepts NaN, Inf and "1-2").
	Number func(dst []byte, v *fastjson.Value) []byte
	// Depth is the deepest nesting Value met (the depth it was called with, at least).
	Depth int
	// Exact, when set before writing, is cleared when JavaScript would not read the
	// value with the same structure: an object key it would reorder or merge (an array
	// index, a repeat) or text that is not valid UTF-8. Left false, nothing is checked.
	Exact bool
}

// Value appends v, nested depth levels deep.
func (w *ValueWriter) Value(v *fastjson.Value, depth int) {
	w.Depth = max(w.Depth, depth)
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		// The keys are checked as they are written (PlainKey and Keys in the same pass).
		var ks Keys
		w.Buf = append(w.Buf, '{')
		o.Visit(func(k []byte, e *fastjson.Value) {
			w.Exact = w.Exact && PlainKey(k) && ks.First(k)
			if w.Buf[len(w.Buf)-1] != '{' {
				w.Buf = append(w.Buf, ',')
			}
			w.Buf = append(AppendString(w.Buf, k, w.JSSafe), ':')
			w.Value(e, depth+1)
		})
		w.Buf = append(w.Buf, '}')
	case fastjson.TypeArray:
		items, _ := v.Array()
		w.Buf = append(w.Buf, '[')
		for i, e := range items {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.Value(e, depth+1)
		}
		w.Buf = append(w.Buf, ']')
	case fastjson.TypeString:
		s := v.GetStringBytes()
		w.Exact = w.Exact && utf8.Valid(s)
		w.Buf = AppendString(w.Buf, s, w.JSSafe)
	case fastjson.TypeNumber:
		if w.Number != nil {
			w.Buf = w.Number(w.Buf, v)
			return
		}
		start := len(w.Buf)
		w.Buf = v.MarshalTo(w.Buf) // the number's source text
		if n := NumberLen(w.Buf[start:]); n == 0 || n != len(w.Buf)-start {
			// NaN, Inf, "1-2"…: keep the text, as a string, rather than emit invalid JSON.
			text := string(w.Buf[start:])
			w.Buf = AppendString(w.Buf[:start], text, w.JSSafe)
		}
	default:
		w.Buf = v.MarshalTo(w.Buf) // true, false, null
	}
}

// PlainKey reports whether a JavaScript object keeps the key k as it is, wherever it
// is: not an array index (objects list those first, in numeric order), valid UTF-8.
func PlainKey(k []byte) bool { return !IsIndexKey(k) && utf8.Valid(k) }

// IsIndexKey reports whether k is an array index ("0" to "4294967294", no leading zero).
func IsIndexKey(k []byte) bool {
	if len(k) == 0 || k[0] < '0' || k[0] > '9' || len(k) > 10 {
		return false
	}
	if k[0] == '0' {
		return len(k) == 1
	}
	n, err := strconv.ParseUint(string(k), 10, 32)
	return err == nil && n < math.MaxUint32
}

// SmallObject is the number of keys up to which Keys finds repeats by scanning.
const SmallObject = 16

// Keys tells whether each key of a JSON object is the first with its text, as the
// members are met in order. A small object's keys are kept and scanned, on a collision
// of keyBit only; past SmallObject keys they go into a map. (Comparing the member with
// the one Object.Get finds would not do: true, false and null are shared values.) The
// zero value is an empty set; the keys are not copied.
type Keys struct {
	n      int
	small  [SmallObject][]byte
	hashes uint64
	seen   map[string]struct{}
}

// First reports whether k is the first key with its text, and adds it.
func (ks *Keys) First(k []byte) bool {
	if ks.seen == nil && ks.n < SmallObject {
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
		ks.seen = make(map[string]struct{}, 2*SmallObject)
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
