package console

import (
	"strconv"
	"strings"

	"github.com/eventhooks/eventhooks/deliveries"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 720.0, 140.0
	chartGap       = 2.0
)

// chart is a hook's last Buckets minutes as bars (attempts, failures on top in red)
// and a line (mean latency), drawn by the template as inline SVG.
type chart struct {
	W, H     float64
	Bars     []bar
	Latency  string // polyline points
	Points   []point
	MaxCount int
	MaxMs    string
	Empty    bool
}

type point struct{ X, Y float64 }

type bar struct {
	X, W, OkY, OkH, FailY, FailH float64
	Title                        string
}

func newChart(st deliveries.Stats) chart {
	ch := chart{W: chartW, H: chartH, Empty: st.Attempts == 0}
	maxMs := 0.0
	for _, b := range st.Series {
		ch.MaxCount = max(ch.MaxCount, b.Attempts)
		maxMs = max(maxMs, b.MeanMs)
	}
	if ch.Empty {
		return ch
	}
	slot := chartW / float64(len(st.Series))
	var pts []string
	for i, b := range st.Series {
		x := float64(i) * slot
		okH := chartH * float64(b.Attempts-b.Failures) / float64(ch.MaxCount)
		failH := chartH * float64(b.Failures) / float64(ch.MaxCount)
		ch.Bars = append(ch.Bars, bar{X: x + chartGap/2, W: slot - chartGap, OkY: chartH - okH, OkH: okH,
			FailY: chartH - okH - failH, FailH: failH,
			Title: strconv.Itoa(b.Attempts) + " attempts, " + strconv.Itoa(b.Failures) + " failed, mean " +
				strconv.FormatFloat(b.MeanMs, 'f', 1, 64) + " ms"})
		if b.Attempts > 0 && maxMs > 0 {
			y := chartH - chartH*0.9*b.MeanMs/maxMs
			pts = append(pts, strconv.FormatFloat(x+slot/2, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
			ch.Points = append(ch.Points, point{X: x + slot/2, Y: y})
		}
	}
	ch.Latency = strings.Join(pts, " ")
	ch.MaxMs = strconv.FormatFloat(maxMs, 'f', 1, 64)
	return ch
}
