package jsonx

import (
	"encoding/json"
	"testing"
)

func TestAppendString(t *testing.T) {
	tests := []struct {
		in     string
		jsSafe bool
		want   string
	}{
		{"plain", false, `"plain"`},
		{"q\"b\\", false, `"q\"b\\"`},
		{"\n\r\t\b\f\x01", false, `"\n\r\t\b\f\u0001"`},
		{"<&>", false, `"<&>"`},
		{"bad\xffutf8", false, `"bad\ufffdutf8"`},
		{"ls\u2028ps\u2029", false, "\"ls\u2028ps\u2029\""},
		{"ls\u2028ps\u2029", true, `"ls\u2028ps\u2029"`},
		{"héllo", true, `"héllo"`},
		// Long enough for eight bytes at a time, with a byte to escape at various places.
		{"0123456789abcdefgh", false, `"0123456789abcdefgh"`},
		{"01234567\"9abcdefgh", false, `"01234567\"9abcdefgh"`},
		{"0123456\\89abcdefgh", false, `"0123456\\89abcdefgh"`},
		{"012345678\x1fabcdefgh", false, `"012345678\u001fabcdefgh"`},
		{"0123456789abcdé", false, `"0123456789abcdé"`},
		{" !#$%&'()*+,-./[]^_`{|}~\x7f", false, "\" !#$%&'()*+,-./[]^_`{|}~\x7f\""},
	}
	for _, tt := range tests {
		got := string(AppendString(nil, tt.in, tt.jsSafe))
		if got != tt.want {
			t.Errorf("AppendString(%q, %v) = %s, want %s", tt.in, tt.jsSafe, got, tt.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not a JSON string: %v", got, err)
		}
	}
}

// BenchmarkAppendString writes the strings of a typical event: short ASCII values.
func BenchmarkAppendString(b *testing.B) {
	strs := []string{"upstream-7", "healthy", "2026-11-27T10:00:00Z", "Ada Lovelace", "ada@example.com", "a longer description of the upstream target"}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for _, s := range strs {
			buf = AppendString(buf, []byte(s), false)
		}
	}
}

// FuzzAppendString: the output is one JSON string that decodes to s, each invalid UTF-8
// byte replaced by U+FFFD.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text, long", "01234567\"9abcdefgh", "a\x00b\x1fc\x7fd\x80e", "ls\u2028ps\u2029héllo wörld"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, jsSafe := range []bool{false, true} {
			out := AppendString(nil, s, jsSafe)
			var back string
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatalf("AppendString(%q) = %s: %v", s, out, err)
			}
			if want := string([]rune(s)); back != want {
				t.Fatalf("AppendString(%q) = %s decodes to %q, want %q", s, out, back, want)
			}
		}
	})
}

func TestNumberLen(t *testing.T) {
	for _, in := range []string{
		"0", "-0", "7", "-12", "1.5", "0.0e0", "1E+5", "2e-3", "123456789012345678901234567890",
		"-", "", "01", "1.", ".5", "1e", "1e+", "+1", "--1", "0x1", "NaN", "1.5.", "1ee2",
	} {
		n := NumberLen([]byte(in))
		if valid := json.Valid([]byte(in)) && in != ""; (n == len(in) && n > 0) != valid {
			t.Errorf("NumberLen(%q) = %d, JSON number: %v", in, n, valid)
		}
	}
	if n := NumberLen([]byte("12,3")); n != 2 {
		t.Errorf("NumberLen stops before what follows: %d", n)
	}
}
