package gates

import (
	"bytes"
	"cmp"
	"slices"
	"sync"

	"github.com/valyala/fastjson"
)

// The on_change fingerprint is persisted in the state topic and compared by the next
// process that owns the partition, so it must not depend on the process: it is FNV-1a 64
// over a canonical byte stream, never maphash.
//
// The canonical stream (version 1; any change to it re-fires every on_change hook once):
//
//	whole data:    'D' value              ('D' 'm' when data is nil)
//	unique fields: 'U' uv(n) { str(field) member }   fields in the catalogue's order;
//	                                      a missing field is 'm' (not the same as null)
//	null 'n'   true 't'   false 'f'
//	string         's' str(bytes)         (the unescaped bytes)
//	number         'z'                    zero, whatever its spelling or sign
//	               'd' sign uv(n) digits zz(exp)
//	                                      value = sign digits × 10^exp, with no leading or
//	                                      trailing zero in digits: 1, 1.0, 1e0, 10e-1 and
//	                                      0.1e1 are equal, and exact beyond 2^53
//	               'x' str(lower(text))   what fastjson accepts but is not a decimal (NaN, Inf)
//	array          '[' uv(n) values       in order
//	object         '{' uv(n) { str(key) member }   n distinct keys in ascending byte order
//	member         value                  when the key occurs once
//	               'M' uv(k) { u64(fp) }  when it occurs k > 1 times (legal JSON, if odd):
//	                                      the FNV-1a of each value's canonical form, ascending
//
// where uv is an unsigned LEB128 varint (binary.AppendUvarint), zz the zigzag varint of a
// signed number (binary.AppendVarint), u64 8 bytes little endian, and str(b) is
// uv(len(b)) followed by b. Every value is tagged and every sequence counted, so the
// stream is prefix-free: two different canonical values never produce the same stream.
// Member order never counts.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211

	fpTagData    = 'D'
	fpTagUnique  = 'U'
	fpTagMissing = 'm'
	fpTagMulti   = 'M'
	fpTagNull    = 'n'
	fpTagTrue    = 't'
	fpTagFalse   = 'f'
	fpTagString  = 's'
	fpTagZero    = 'z'
	fpTagNumber  = 'd'
	fpTagRawNum  = 'x'
	fpTagArray   = '['
	fpTagObject  = '{'
)

// fingerprint returns the on_change fingerprint of an event's data: of the fields named by
// unique, in that order, when unique is non-empty (a missing field differs from a null
// one), else of all of data. It allocates nothing in the steady state, and its cost is
// linear in the size of data.
func fingerprint(data *fastjson.Value, unique []string) uint64 {
	f := getFPHasher()
	h := f.sum(data, unique)
	putFPHasher(f)
	return h
}

// Fingerprint returns the on_change fingerprint of an event's data under the spec's
// fingerprint fields (see fingerprint); it is worth computing only when NeedsFingerprint.
func (s *Spec) Fingerprint(data *fastjson.Value) uint64 { return fingerprint(data, s.unique) }

// fpHasher is the scratch of one fingerprint computation: the running FNV-1a state and a
// stack of object members being ordered (each object orders the tail it appended).
type fpHasher struct {
	h    uint64
	kvs  []fpKV
	high int    // high-water mark of kvs, cleared before pooling
	num  []byte // text of the number being hashed
}

// fpKV is one object member awaiting its turn in key order.
type fpKV struct {
	k   []byte
	v   *fastjson.Value
	sub uint64 // fingerprint of v alone, for members sharing a key
}

// Scratch bigger than this is not pooled: an event with a huge object does not pin its
// buffer for ever.
const (
	maxPooledKVs = 4096
	maxPooledNum = 256
)

// fpHashers pools fingerprint scratch (fingerprint is called from every lane).
var fpHashers = sync.Pool{New: func() any { return new(fpHasher) }}

// getFPHasher takes a reset hasher from the pool.
func getFPHasher() *fpHasher { return fpHashers.Get().(*fpHasher) }

// putFPHasher returns f to the pool, dropping references into parsed values.
func putFPHasher(f *fpHasher) {
	if cap(f.kvs) > maxPooledKVs || cap(f.num) > maxPooledNum {
		return
	}
	clear(f.kvs[:f.high])
	f.kvs, f.high = f.kvs[:0], 0
	fpHashers.Put(f)
}

// sum computes the fingerprint; see fingerprint.
func (f *fpHasher) sum(data *fastjson.Value, unique []string) uint64 {
	f.h = fnvOffset64
	if len(unique) == 0 {
		f.byte(fpTagData)
		if data == nil {
			f.byte(fpTagMissing)
		} else {
			f.value(data)
		}
		return f.h
	}
	f.byte(fpTagUnique)
	f.uv(uint64(len(unique)))
	var obj *fastjson.Object
	if data != nil && data.Type() == fastjson.TypeObject {
		obj, _ = data.Object()
	}
	for _, field := range unique {
		f.str(field)
		f.field(obj, field)
	}
	return f.h
}

// field feeds the member of a unique field: 'm' when o lacks it, else as object does. The
// field is looked for among all members, not with Object.Get (where the first one wins),
// so that member order never counts.
func (f *fpHasher) field(o *fastjson.Object, name string) {
	base := len(f.kvs)
	if o != nil {
		o.Visit(func(k []byte, v *fastjson.Value) {
			if string(k) == name {
				f.kvs = append(f.kvs, fpKV{k: k, v: v})
			}
		})
	}
	end := len(f.kvs)
	f.high = max(f.high, end)
	switch end - base {
	case 0:
		f.byte(fpTagMissing)
	case 1:
		f.value(f.kvs[base].v)
	default:
		f.multi(base, end)
	}
	f.kvs = f.kvs[:base]
}

// byte feeds one byte to FNV-1a.
func (f *fpHasher) byte(b byte) {
	f.h ^= uint64(b)
	f.h *= fnvPrime64
}

// uv feeds x as an unsigned LEB128 varint (binary.AppendUvarint).
func (f *fpHasher) uv(x uint64) {
	for x >= 0x80 {
		f.byte(byte(x) | 0x80)
		x >>= 7
	}
	f.byte(byte(x))
}

// u64 feeds x as 8 bytes, little endian.
func (f *fpHasher) u64(x uint64) {
	for range 8 {
		f.byte(byte(x))
		x >>= 8
	}
}

// bytes feeds str(b): the length, then the bytes.
func (f *fpHasher) bytes(b []byte) {
	f.uv(uint64(len(b)))
	for _, c := range b {
		f.byte(c)
	}
}

// str feeds str(s): the length, then the bytes.
func (f *fpHasher) str(s string) {
	f.uv(uint64(len(s)))
	for i := range len(s) {
		f.byte(s[i])
	}
}

// value feeds the canonical form of v.
func (f *fpHasher) value(v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeNull:
		f.byte(fpTagNull)
	case fastjson.TypeTrue:
		f.byte(fpTagTrue)
	case fastjson.TypeFalse:
		f.byte(fpTagFalse)
	case fastjson.TypeString:
		f.byte(fpTagString)
		b, _ := v.StringBytes()
		f.bytes(b)
	case fastjson.TypeNumber:
		f.num = v.MarshalTo(f.num[:0]) // a number marshals as its text
		f.number(f.num)
	case fastjson.TypeArray:
		a, _ := v.Array()
		f.byte(fpTagArray)
		f.uv(uint64(len(a)))
		for _, e := range a {
			f.value(e)
		}
	case fastjson.TypeObject:
		o, _ := v.Object()
		f.object(o)
	}
}

// object feeds o's members in canonical order. Members are appended to f.kvs past those of
// the enclosing objects; nested objects may grow (and move) f.kvs, so the loops index
// f.kvs afresh after every call that may recurse.
func (f *fpHasher) object(o *fastjson.Object) {
	base := len(f.kvs)
	o.Visit(func(k []byte, v *fastjson.Value) {
		f.kvs = append(f.kvs, fpKV{k: k, v: v})
	})
	end := len(f.kvs)
	f.high = max(f.high, end)
	slices.SortFunc(f.kvs[base:end], compareFPKey)
	distinct := 0
	for i := base; i < end; i++ {
		if i == base || !bytes.Equal(f.kvs[i].k, f.kvs[i-1].k) {
			distinct++
		}
	}
	f.byte(fpTagObject)
	f.uv(uint64(distinct))
	for i := base; i < end; {
		j := i + 1
		for j < end && bytes.Equal(f.kvs[j].k, f.kvs[i].k) {
			j++
		}
		f.bytes(f.kvs[i].k)
		if j-i == 1 {
			f.value(f.kvs[i].v)
		} else {
			f.multi(i, j)
		}
		i = j
	}
	f.kvs = f.kvs[:base]
}

// multi feeds f.kvs[i:j], members sharing one key: 'M', their number, and the
// fingerprints of their values alone, ascending, so that member order never counts. Each
// value is hashed once: hashing values to order them and then feeding them would hash
// nested duplicates again at every level, exponentially in the depth.
func (f *fpHasher) multi(i, j int) {
	h := f.h
	for n := i; n < j; n++ {
		f.h = fnvOffset64
		f.value(f.kvs[n].v)
		f.kvs[n].sub = f.h
	}
	f.h = h
	slices.SortFunc(f.kvs[i:j], compareFPSub)
	f.byte(fpTagMulti)
	f.uv(uint64(j - i))
	for n := i; n < j; n++ {
		f.u64(f.kvs[n].sub)
	}
}

// compareFPKey orders members by key bytes.
func compareFPKey(a, b fpKV) int { return bytes.Compare(a.k, b.k) }

// compareFPSub orders members sharing a key by the fingerprints of their values.
func compareFPSub(a, b fpKV) int { return cmp.Compare(a.sub, b.sub) }

// number feeds the canonical form of a number's text: exact decimal normalisation, so that
// equal values spelled differently hash alike and integers beyond 2^53 stay distinct.
func (f *fpHasher) number(s []byte) {
	n, ok := parseDecimal(s)
	if !ok {
		f.byte(fpTagRawNum)
		f.uv(uint64(len(s)))
		for _, c := range s {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			f.byte(c)
		}
		return
	}
	if n.zero() {
		f.byte(fpTagZero)
		return
	}
	f.byte(fpTagNumber)
	if n.neg {
		f.byte('-')
	} else {
		f.byte('+')
	}
	f.uv(uint64(n.len()))
	for i := n.first; i <= n.last; i++ {
		f.byte(n.digit(i))
	}
	f.uv(uint64(n.exp<<1) ^ uint64(n.exp>>63)) // zigzag
}

// decimal is a parsed number: the digits of intPart followed by fracPart, of which
// first..last (indexes into that concatenation) are significant, times 10^exp.
type decimal struct {
	neg               bool
	intPart, fracPart []byte
	first, last       int
	exp               int64
}

// zero reports whether the number is zero (no significant digit).
func (d *decimal) zero() bool { return d.first > d.last }

// len returns the number of significant digits.
func (d *decimal) len() int { return d.last - d.first + 1 }

// digit returns digit i of intPart followed by fracPart.
func (d *decimal) digit(i int) byte {
	if i < len(d.intPart) {
		return d.intPart[i]
	}
	return d.fracPart[i-len(d.intPart)]
}

// maxExp saturates absurd exponents; values that far apart never meet in real events.
const maxExp = 1 << 40

// parseDecimal parses [+-]digits[.digits][(e|E)[+-]digits] (fastjson accepts a leading
// '+', and ".5" or "5." have an obvious value). ok is false for anything else.
func parseDecimal(s []byte) (d decimal, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	d.intPart = s[start:i]
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		d.fracPart = s[start:i]
	}
	if len(d.intPart)+len(d.fracPart) == 0 {
		return d, false
	}
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		negExp := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			negExp = s[i] == '-'
			i++
		}
		if i == len(s) {
			return d, false
		}
		for i < len(s) && isDigit(s[i]) {
			if exp < maxExp {
				exp = exp*10 + int64(s[i]-'0')
			}
			i++
		}
		if negExp {
			exp = -exp
		}
	}
	if i != len(s) {
		return d, false
	}
	total := len(d.intPart) + len(d.fracPart)
	d.first, d.last = 0, total-1
	for d.first <= d.last && d.digit(d.first) == '0' {
		d.first++
	}
	for d.last >= d.first && d.digit(d.last) == '0' {
		d.last--
	}
	// digits[first..last] × 10^exp: every digit after last is a dropped trailing zero.
	d.exp = exp - int64(len(d.fracPart)) + int64(total-1-d.last)
	return d, true
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
