package testkit

import "testing"

func TestGrepLines(t *testing.T) {
	const text = "a_total 1\nb_total 2\n# HELP a_total x\n\nc 3"
	for _, tc := range []struct{ substr, want string }{
		{"a_total", "a_total 1\n# HELP a_total x"},
		{"b_", "b_total 2"},
		{"missing", ""},
		{"3", "c 3"},
	} {
		if got := GrepLines(text, tc.substr); got != tc.want {
			t.Errorf("GrepLines(%q) = %q, want %q", tc.substr, got, tc.want)
		}
	}
}
