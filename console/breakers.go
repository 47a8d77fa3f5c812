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

// The breaker gauges (0 closed, 1 half-open, 2 open): each destination's, shared by the
// hooks sending there, and each hook's own.
const (
	destBreakerSeries = `eventhooks_breaker_state{destination="`
	hookBreakerSeries = `eventhooks_hook_breaker_state{hook_id="`
)

// breakerNames are the gauges' values as the console says them.
var breakerNames = map[string]string{"0": "closed", "1": "half-open", "2": "open"}

// breakers are the states of this process's breakers, by destination and by hook id.
type breakers struct{ dest, hook map[string]string }

// breakerStates reads the breaker gauges of this process.
func breakerStates() breakers {
	b := breakers{dest: map[string]string{}, hook: map[string]string{}}
	var buf bytes.Buffer
	if err := promhelp.WritePrometheus(&buf, false); err != nil {
		return b
	}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		readBreaker(line, destBreakerSeries, b.dest)
		readBreaker(line, hookBreakerSeries, b.hook)
	}
	return b
}

// readBreaker notes the state of line in into when it is a series of prefix.
func readBreaker(line, prefix string, into map[string]string) {
	if rest, ok := strings.CutPrefix(line, prefix); ok {
		if label, value, ok := strings.Cut(rest, `"} `); ok {
			into[label] = breakerNames[value]
		}
	}
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
