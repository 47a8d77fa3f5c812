package testkit

import "strings"

// GrepLines returns the lines of text that contain substr, joined by newlines: what a
// failing test prints of a long output (a /metrics scrape, a log) instead of all of it.
func GrepLines(text, substr string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
