package gates

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

// fp parses s and fingerprints it; the test fails on invalid JSON.
func fp(t testing.TB, s string, unique ...string) uint64 {
	t.Helper()
	var p fastjson.Parser
	v, err := p.Parse(s)
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return fingerprint(v, unique)
}

func TestFingerprint(t *testing.T) {
	cases := []struct {
		name   string
		a, b   string
		unique []string
		same   bool
	}{
		{"identical", `{"a":1}`, `{"a":1}`, nil, true},
		{"reordered keys", `{"a":1,"b":"x","c":null}`, `{"c":null,"b":"x","a":1}`, nil, true},
		{"reordered nested keys", `{"o":{"x":1,"y":[{"p":1,"q":2}]}}`, `{"o":{"y":[{"q":2,"p":1}],"x":1}}`, nil, true},
		{"whitespace", `{"a" : [1, 2]}`, `{"a":[1,2]}`, nil, true},
		{"escaped string equals raw", `{"a":"\u00e9\n"}`, "{\"a\":\"\u00e9\\n\"}", nil, true},
		{"escaped key equals raw", `{"\u0061":1}`, `{"a":1}`, nil, true},
		{"number changes", `{"port":8000}`, `{"port":8001}`, nil, false},
		{"boolean changes", `{"ok":true}`, `{"ok":false}`, nil, false},
		{"1 1.0 1e0", `{"n":1}`, `{"n":1.0}`, nil, true},
		{"1 and 1e0", `{"n":1}`, `{"n":1e0}`, nil, true},
		{"10e-1 and 0.1e1", `{"n":10e-1}`, `{"n":0.1e1}`, nil, true},
		{"100 and 1e2", `{"n":100}`, `{"n":1E+2}`, nil, true},
		{"0 and -0.0", `{"n":0}`, `{"n":-0.0}`, nil, true},
		{"1 and -1", `{"n":1}`, `{"n":-1}`, nil, false},
		{"1 and 10", `{"n":1}`, `{"n":10}`, nil, false},
		{"0.1 and 0.01", `{"n":0.1}`, `{"n":0.01}`, nil, false},
		{"integers beyond 2^53", `{"n":9007199254740993}`, `{"n":9007199254740992}`, nil, false},
		{"number and string", `{"n":1}`, `{"n":"1"}`, nil, false},
		{"true and string", `{"n":true}`, `{"n":"true"}`, nil, false},
		{"null and missing", `{"a":1,"n":null}`, `{"a":1}`, nil, false},
		{"null and false", `{"n":null}`, `{"n":false}`, nil, false},
		{"empty array and object", `{"n":[]}`, `{"n":{}}`, nil, false},
		{"array order counts", `{"n":[1,2]}`, `{"n":[2,1]}`, nil, false},
		{"array nesting counts", `{"n":[[1],2]}`, `{"n":[1,[2]]}`, nil, false},
		{"nested number", `{"o":{"p":{"q":1}}}`, `{"o":{"p":{"q":2}}}`, nil, false},
		{"nested boolean", `{"o":[{"q":true}]}`, `{"o":[{"q":false}]}`, nil, false},
		{"key and value boundary", `{"ab":"c"}`, `{"a":"bc"}`, nil, false},
		{"string split", `{"a":["ab","c"]}`, `{"a":["a","bc"]}`, nil, false},
		{"duplicate keys in any order", `{"a":1,"a":2}`, `{"a":2,"a":1}`, nil, true},
		{"nested duplicate keys in any order", `{"a":{"b":1,"b":[2]},"c":0,"a":3}`, `{"a":3,"c":0,"a":{"b":[2],"b":1}}`, nil, true},
		{"duplicate keys count", `{"a":1,"a":1}`, `{"a":1}`, nil, false},
		{"duplicate values count", `{"a":1,"a":2}`, `{"a":1,"a":3}`, nil, false},
		{"unique field duplicated", `{"a":1,"x":0,"a":2}`, `{"a":2,"a":1}`, []string{"a"}, true},
		{"unique ignores other fields", `{"consumer":"c","ip":"1.2.3.4","service":"s","rate":10}`,
			`{"service":"s","rate":99,"consumer":"c","ip":"1.2.3.4","window":"minute"}`,
			[]string{"consumer", "ip", "service"}, true},
		{"unique sees its fields", `{"consumer":"c","ip":"1.2.3.4"}`, `{"consumer":"c","ip":"1.2.3.5"}`,
			[]string{"consumer", "ip"}, false},
		{"unique sees numbers", `{"service":1}`, `{"service":2}`, []string{"service"}, false},
		{"unique missing vs null", `{"service":null}`, `{}`, []string{"service"}, false},
		{"unique order is the catalogue's", `{"a":1,"b":2}`, `{"b":2,"a":1}`, []string{"a", "b"}, true},
		{"unique nested canonical", `{"s":{"x":1,"y":2}}`, `{"s":{"y":2,"x":1.0}}`, []string{"s"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ha, hb := fp(t, c.a, c.unique...), fp(t, c.b, c.unique...)
			if (ha == hb) != c.same {
				t.Fatalf("fingerprint(%s)=%x, fingerprint(%s)=%x; want same=%v", c.a, ha, c.b, hb, c.same)
			}
		})
	}
}

func TestFingerprintUniqueDiffersFromWholeData(t *testing.T) {
	if fp(t, `{"a":1}`) == fp(t, `{"a":1}`, "a") {
		t.Fatal("unique-field and whole-data fingerprints coincide")
	}
	if fingerprint(nil, nil) == fp(t, `{}`) {
		t.Fatal("nil data and {} coincide")
	}
}

// TestFingerprintStable pins the canonical stream: a persisted fingerprint must mean the
// same in the next release. If this fails, the format changed: every on_change hook
// fires once more after the upgrade; say so in the release notes.
func TestFingerprintStable(t *testing.T) {
	// Canonical stream of {"b":true,"a":[1.50,null]}, built by hand from the spec.
	var stream []byte
	str := func(s string) { stream = append(binary.AppendUvarint(stream, uint64(len(s))), s...) }
	stream = append(stream, 'D', '{')
	stream = binary.AppendUvarint(stream, 2)
	str("a")
	stream = append(stream, '[')
	stream = binary.AppendUvarint(stream, 2)
	stream = append(stream, 'd', '+')
	stream = binary.AppendUvarint(stream, 2)
	stream = append(stream, "15"...)
	stream = binary.AppendVarint(stream, -1) // exponent
	stream = append(stream, 'n')
	str("b")
	stream = append(stream, 't')
	h := fnv.New64a()
	h.Write(stream)
	if got, want := fp(t, `{"b":true,"a":[1.50,null]}`), h.Sum64(); got != want {
		t.Fatalf("fingerprint = %x, want %x (canonical form changed)", got, want)
	}
}

// TestFingerprintNestedDuplicatesLinear guards against hashing duplicate-key members more
// than once: ordering them by hashing at every level costs 4^depth, a lane-killer from a
// few hundred kilobytes of event.
func TestFingerprintNestedDuplicatesLinear(t *testing.T) {
	doc := []byte("1")
	for range 14 { // 2^14 leaves, ~200 KB
		doc = append(append(append(append([]byte(`{"a":`), doc...), `,"a":`...), doc...), '}')
	}
	start := time.Now()
	fp(t, string(doc))
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("fingerprint of %d bytes took %v", len(doc), d)
	}
}

func TestParseDecimal(t *testing.T) {
	cases := []struct {
		in     string
		ok     bool
		digits string
		exp    int64
	}{
		{"0", true, "", 0},
		{"-0.000e5", true, "", 0},
		{"1", true, "1", 0},
		{"1.0", true, "1", 0},
		{"100", true, "1", 2},
		{"0.0012", true, "12", -4},
		{"12.34e3", true, "1234", 1},
		{"+5", true, "5", 0},
		{".5", true, "5", -1},
		{"5.", true, "5", 0},
		{"1e", false, "", 0},
		{"1e+", false, "", 0},
		{"--1", false, "", 0},
		{"1.2.3", false, "", 0},
		{"-", false, "", 0},
		{".", false, "", 0},
		{"inf", false, "", 0},
	}
	for _, c := range cases {
		d, ok := parseDecimal([]byte(c.in))
		if ok != c.ok {
			t.Errorf("parseDecimal(%q) ok=%v, want %v", c.in, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		var digits []byte
		for i := d.first; i <= d.last; i++ {
			digits = append(digits, d.digit(i))
		}
		if string(digits) != c.digits || (len(digits) > 0 && d.exp != c.exp) {
			t.Errorf("parseDecimal(%q) = %s e%d, want %s e%d", c.in, digits, d.exp, c.digits, c.exp)
		}
	}
}

func TestFingerprintNonFiniteNumbers(t *testing.T) {
	// fastjson accepts NaN and Inf; they must not panic and must differ from numbers.
	a, b := fp(t, `{"n":NaN}`), fp(t, `{"n":nan}`)
	if a != b {
		t.Fatal("NaN spellings differ")
	}
	if a == fp(t, `{"n":Inf}`) || a == fp(t, `{"n":0}`) {
		t.Fatal("NaN collides")
	}
}

// raceEnabled reports whether the test binary was built with -race, under which
// sync.Pool drops items at random and allocation counts mean nothing.
var raceEnabled = sync.OnceValue(func() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
})

func TestFingerprintAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are meaningless under -race")
	}
	var p fastjson.Parser
	v, err := p.Parse(`{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"hostname":"api.internal",` +
		`"health":"unhealthy","meta":{"z":1,"a":[true,false,null,{"k":"v","b":2}]}}`)
	if err != nil {
		t.Fatal(err)
	}
	unique := []string{"upstream_id", "ip", "port"}
	fingerprint(v, nil) // warm the pool
	if n := testing.AllocsPerRun(100, func() { fingerprint(v, nil); fingerprint(v, unique) }); n != 0 {
		t.Fatalf("fingerprint allocates %v times per run", n)
	}
}

// marshalShuffled writes v as JSON with the members of every object in random order and
// strings escaped minimally (so any byte string round-trips through fastjson).
func marshalShuffled(dst []byte, v *fastjson.Value, rnd *rand.Rand) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		type member struct {
			k []byte
			v *fastjson.Value
		}
		var ms []member
		v.GetObject().Visit(func(k []byte, v *fastjson.Value) { ms = append(ms, member{k, v}) })
		rnd.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		dst = append(dst, '{')
		for i, m := range ms {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, m.k)
			dst = append(dst, ':')
			dst = marshalShuffled(dst, m.v, rnd)
		}
		return append(dst, '}')
	case fastjson.TypeArray:
		dst = append(dst, '[')
		for i, e := range v.GetArray() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = marshalShuffled(dst, e, rnd)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		return appendJSONString(dst, v.GetStringBytes())
	}
	return v.MarshalTo(dst)
}

func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, `\u00`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func FuzzFingerprint(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"a":1,"b":[true,false,null],"c":{"d":"e","f":1.5e3}}`,
		`{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"health":"unhealthy"}`,
		`{"a":1,"a":{"x":[1,{"y":2,"z":"\u0000"}]},"":""}`,
		`{"n":-0.0e-0,"m":NaN,"k":"\"\\\/\b\f\n\r\t"}`,
		`{"a":0,"a":""}`,
	} {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, s string, seed uint64) {
		var p fastjson.Parser
		v, err := p.Parse(s)
		if err != nil || v.Type() != fastjson.TypeObject {
			return
		}
		unique := []string{"a", "b"}
		h1, u1 := fingerprint(v, nil), fingerprint(v, unique)
		re := marshalShuffled(nil, v, rand.New(rand.NewPCG(seed, 7)))
		var p2 fastjson.Parser
		v2, err := p2.ParseBytes(re)
		if err != nil {
			t.Fatalf("re-serialised %q does not parse: %v", re, err)
		}
		if h2 := fingerprint(v2, nil); h2 != h1 {
			t.Fatalf("shuffled %q → %x, original %q → %x", re, h2, s, h1)
		}
		if u2 := fingerprint(v2, unique); u2 != u1 {
			t.Fatalf("unique fields: shuffled %q → %x, original %q → %x", re, u2, s, u1)
		}
	})
}

func BenchmarkFingerprint(b *testing.B) {
	body := `{"upstream_id":"u-1","ip":"10.0.0.7","port":8000,"hostname":"api.internal","health":"unhealthy"}`
	var big []byte
	big = append(big, `{"items":[`...)
	for i := range 100 {
		if i > 0 {
			big = append(big, ',')
		}
		big = append(big, `{"id":`...)
		big = strconv.AppendInt(big, int64(i), 10)
		big = append(big, `,"name":"item","price":12.5,"tags":["a","b"],"ok":true}`...)
	}
	big = append(big, `]}`...)
	for _, c := range []struct {
		name   string
		body   string
		unique []string
	}{
		{"health-event", body, nil},
		{"unique-3", `{"consumer":"c-1","ip":"10.0.0.1","service":"s-1","rate":10,"limit":5,"window":"second"}`,
			[]string{"consumer", "ip", "service"}},
		{"100-objects", string(big), nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			var p fastjson.Parser
			v, err := p.Parse(c.body)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				fingerprint(v, c.unique)
			}
		})
	}
}
