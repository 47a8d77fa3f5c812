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
