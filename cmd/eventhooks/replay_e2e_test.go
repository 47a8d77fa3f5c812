package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestReplayReportsOutcomes replays the same events to a loopback receiver twice: with
// the SSRF guard refusing loopback, the command reports every delivery dead-lettered,
// says why, and exits non-zero; allowed, it reports them delivered and exits 0. The
// receiver's own count backs each report.
func TestReplayReportsOutcomes(t *testing.T) {
	emb := testkit.Broker(t, 2)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	p := start(t, "run", "--brokers", brokers) // no allow-list: its live deliveries are refused too
	id := p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)["id"].(string)
	const n = 20
	produceHealth(t, brokers, n)
	testkit.Eventually(t, 30*time.Second, "live deliveries refused and dead-lettered", func() bool {
		return endOffsets(t, brokers, "eventhooks-dlq") == n
	})
	p.kill(t) // only the replays deliver from here

	for _, tc := range []struct {
		name     string
		allow    []string
		wantLine string
		wantMore string // also in the output
		wantExit int
		received int // by the receiver, in total, after the replay
	}{
		{"refused", nil, fmt.Sprintf("hook %s: delivered 0, parked 0, dead-lettered %d, failed 0", id, n),
			"--allow-destinations", 1, 0},
		{"allowed", []string{"--allow-destinations", "127.0.0.0/8"},
			fmt.Sprintf("hook %s: delivered %d, parked 0, dead-lettered 0, failed 0", id, n), "", 0, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dlqBefore := endOffsets(t, brokers, "eventhooks-dlq")
			out, code := replay(t, append([]string{"--brokers", brokers, "--hook", id}, tc.allow...)...)
			t.Logf("exit %d, output:\n%s", code, out)
			if code != tc.wantExit || !strings.Contains(out, tc.wantLine) || !strings.Contains(out, tc.wantMore) {
				t.Fatalf("exit %d (want %d), output lacks %q or %q:\n%s", code, tc.wantExit, tc.wantLine, tc.wantMore, out)
			}
			if tc.wantExit != 0 && !strings.Contains(out, "nothing was delivered") {
				t.Errorf("a failed replay does not say why it exits %d:\n%s", code, out)
			}
			if got := len(rc.Requests()); got != tc.received {
				t.Errorf("the receiver got %d requests in total, want %d", got, tc.received)
			}
			if added, want := endOffsets(t, brokers, "eventhooks-dlq")-dlqBefore, int64(n-tc.received); added != want {
				t.Errorf("the replay added %d dead letters, want %d", added, want)
			}
		})
	}
}

// replay runs `eventhooks replay args…` to its end and returns its output and exit code.
func replay(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // catches a hang only
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, append([]string{"replay"}, args...)...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit) && ctx.Err() == nil:
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("replay %v: %v\n%s", args, err, out)
		return "", 0
	}
}
