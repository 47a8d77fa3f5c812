// Package promhelp gives each series family of the default VictoriaMetrics set its
// Prometheus HELP text. The metrics package writes "# HELP <family>" with no text (it
// has nowhere to keep one), so a definition names its text with Describe and /metrics
// is written by WritePrometheus, which fills each HELP line in.
package promhelp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

var texts sync.Map // family → escaped HELP text

// Describe records text as the HELP of name's family (name without its {labels}) and
// returns name, so that a definition reads
//
//	metrics.NewCounter(promhelp.Describe(`eventhooks_x_total`, "What one x is."))
//
// Describing a family again replaces its text.
func Describe(name, text string) string {
	fam, _, _ := strings.Cut(name, "{")
	texts.Store(fam, escaper.Replace(text))
	return name
}

// escaper makes a text what the exposition format wants of HELP: one line, with
// backslashes and line feeds escaped.
var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// WritePrometheus writes every series of the default set (and the process metrics with
// exposeProcessMetrics) like metrics.WritePrometheus with metadata exposed, each HELP
// line carrying its family's text where one was described.
func WritePrometheus(w io.Writer, exposeProcessMetrics bool) error {
	var buf bytes.Buffer
	metrics.ExposeMetadata(true)
	metrics.WritePrometheus(&buf, exposeProcessMetrics)
	bw := bufio.NewWriter(w)
	for line := range bytes.Lines(buf.Bytes()) {
		if fam, ok := bareHelp(line); ok {
			if text, ok := texts.Load(fam); ok {
				fmt.Fprintf(bw, "# HELP %s %s\n", fam, text)
				continue
			}
		}
		_, _ = bw.Write(line) // a bufio.Writer keeps its first error for Flush
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}

// bareHelp returns the family of a "# HELP <family>" line that has no text.
func bareHelp(line []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(line, []byte("# HELP "))
	rest = bytes.TrimSuffix(rest, []byte("\n"))
	if !ok || len(rest) == 0 || bytes.ContainsAny(rest, " \t") {
		return "", false
	}
	return string(rest), true
}
