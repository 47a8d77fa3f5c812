package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/url"
	"strings"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/promhelp"
)

// breakerSeries is the gauge of each destination's breaker (0 closed, 1 half-open, 2 open).
const breakerSeries = `eventhooks_breaker_state{destination="`

// breakerStates reads the breaker gauges of this process: destination → state name.
func breakerStates() map[string]string {
	var buf bytes.Buffer
	if err := promhelp.WritePrometheus(&buf, false); err != nil {
		return nil
	}
	out := map[string]string{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), breakerSeries)
		if !ok {
			continue
		}
		dest, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		out[dest] = map[string]string{"0": "closed", "1": "half-open", "2": "open"}[value]
	}
	return out
}

// destination is the host:port a hook's config.url names, as the breaker gauge labels it.
func destination(h *hooks.Hook) string {
	var cfg struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(h.Config, &cfg) != nil || cfg.URL == "" {
		return ""
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "443"
	if u.Scheme == "http" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
