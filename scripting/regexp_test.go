package scripting

import (
	"errors"
	"testing"
	"time"
)

// TestRegexpCatastrophicBacktracking: a pattern goja runs on regexp2 (the backreference
// or the lookahead keeps it off Go's regexp), with catastrophic backtracking on its
// input, cannot be interrupted by the deadline; RegexpMatchTimeout bounds it, and the
// call fails with ErrTimeout rather than hanging for minutes. The bound is generous:
// the test must pass on a busy machine under -race.
func TestRegexpCatastrophicBacktracking(t *testing.T) {
	rt := NewRuntime(RuntimeConfig{})
	for _, tc := range []struct{ name, src string }{
		{"backreference", `(d) => /(a+)+\1b/.test('a'.repeat(40))`},
		{"lookahead", `(d) => /^(?=a)(a+)+b/.test('a'.repeat(40))`},
		{"loop of matches", `(d) => { let n = 0; for (let i = 0; i < 1e6; i++) if (/(a+)+\1b/.test('a'.repeat(30))) n++; return n }`},
		{"replace", `(d) => 'a'.repeat(40).replace(/(a+)+\1b/, 'x')`},
		{"new RegExp", `(d) => new RegExp('(a+)+\\1b').exec('a'.repeat(40))`},
		{"thrown after the match", `(d) => { if (!/(a+)+\1b/.test('a'.repeat(40))) throw new Error('no match'); return 1 }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := mustLambda(t, tc.src)
			for _, timeout := range []time.Duration{10 * time.Millisecond, DefaultTimeout} {
				start := time.Now()
				out, err := rt.Call(l, "h", []byte(`{}`), "e", "s", timeout)
				elapsed := time.Since(start)
				if err == nil {
					t.Fatalf("timeout %v: returned %s after %v, want an error", timeout, out, elapsed)
				}
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("timeout %v: %v, want ErrTimeout", timeout, err)
				}
				if elapsed > 10*time.Second {
					t.Errorf("timeout %v: returned after %v", timeout, elapsed)
				}
				t.Logf("timeout %v: %v after %v", timeout, err, elapsed)
			}
		})
	}
	// The Runtime stays usable, and a pattern that matches quickly still does.
	l := mustLambda(t, `(d) => /(a+)\1b/.test('aab')`)
	if out, err := rt.Call(l, "h", []byte(`{}`), "e", "s", time.Second); err != nil || string(out) != "true" {
		t.Errorf("after the timeouts: %s, %v", out, err)
	}
}
