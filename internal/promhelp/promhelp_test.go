package promhelp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestWritePrometheusFillsHelp: each described family's HELP line carries its text
// (escaped), whatever its labels; an undescribed family keeps the package's bare line.
func TestWritePrometheusFillsHelp(t *testing.T) {
	// GetOrCreate: the test may run several times in one process (-count).
	metrics.GetOrCreateCounter(Describe(`promhelp_test_plain_total`, "Things counted."))
	metrics.GetOrCreateCounter(Describe(`promhelp_test_labelled_total{kind="a"}`, `Things by kind, a \ and`+"\nline.")).Set(1)
	metrics.GetOrCreateCounter(`promhelp_test_labelled_total{kind="b"}`)
	metrics.GetOrCreateGauge(`promhelp_test_undescribed`, nil)
	var buf bytes.Buffer
	if err := WritePrometheus(&buf, false); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, tc := range []struct{ want, why string }{
		{"# HELP promhelp_test_plain_total Things counted.\n# TYPE promhelp_test_plain_total counter\n", "plain"},
		{`# HELP promhelp_test_labelled_total Things by kind, a \\ and\nline.` + "\n", "labelled, escaped"},
		{"# HELP promhelp_test_undescribed\n# TYPE promhelp_test_undescribed gauge\n", "undescribed"},
		{`promhelp_test_labelled_total{kind="a"} 1` + "\n", "samples kept"},
	} {
		if !strings.Contains(text, tc.want) {
			t.Errorf("%s: output lacks %q:\n%s", tc.why, tc.want, text)
		}
	}
	if n := strings.Count(text, "# HELP promhelp_test_labelled_total"); n != 1 {
		t.Errorf("%d HELP lines for one labelled family", n)
	}
}
