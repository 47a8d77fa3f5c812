package scripting

import (
	"testing"

	"github.com/valyala/fastjson"
)

// A template prints a number field without converting it to a Go value first; what it
// prints must be what the value it converts to prints.
func TestAppendJSONFieldNumbers(t *testing.T) {
	for _, n := range []string{
		"0", "-0", "1", "-1", "42", "1.5", "-2.25", "1e3", "1E-7", "1.0", "9007199254740992",
		"9007199254740993", "-9007199254740993", "1733270400123456789", "9223372036854775807",
		"9223372036854775808", "12345678901234567890", "1e300", "1e400", "-1e400", "0.1",
		"123456789.123456789",
	} {
		v := fastjson.MustParse(n)
		if got, want := string(appendJSONField(nil, v)), string(appendValue(nil, fromFastJSON(v))); got != want {
			t.Errorf("%s: printed %q, its Go value prints %q", n, got, want)
		}
	}
}
