package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/internal/testkit"
)

// readyz returns /readyz's status and reason.
func (p *proc) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(p.admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body struct{ Reason string }
	_ = json.Unmarshal(raw, &body)
	return resp.StatusCode, body.Reason
}

// TestReadyzFollowsTheBroker: with every broker gone, `run`'s /readyz turns 503 within
// seconds (the consumer group alone would say "joined" until its session timed out), and
// 200 again once the broker is back.
func TestReadyzFollowsTheBroker(t *testing.T) {
	dir, addr := t.TempDir(), testkit.FreeAddr(t)
	cfg := broker.EmbeddedConfig{DataDir: dir, Addr: addr, Partitions: 2}
	emb, err := broker.StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, "run", "--brokers", addr) // waits for /readyz 200
	emb.Close()
	down := time.Now()
	var reason string
	testkit.Eventually(t, 20*time.Second, "/readyz 503 with the broker down", func() bool {
		var code int
		code, reason = p.readyz(t)
		return code == http.StatusServiceUnavailable
	})
	t.Logf("503 after %v: %s", time.Since(down).Round(100*time.Millisecond), reason)
	if !strings.Contains(reason, "no Kafka broker answered") {
		t.Errorf("reason %q", reason)
	}
	if took := time.Since(down); took > 12*time.Second {
		t.Errorf("/readyz took %v to notice", took)
	}

	emb, err = broker.StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	testkit.Eventually(t, 90*time.Second, "/readyz 200 with the broker back", func() bool {
		code, _ := p.readyz(t)
		return code == http.StatusOK
	})
}
