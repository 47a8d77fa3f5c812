package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// These tests run the real binary as a separate process, so that it can be killed.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventhooks-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "eventhooks")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build eventhooks: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running eventhooks process.
type proc struct {
	cmd   *exec.Cmd
	admin string
	log   *bytes.Buffer
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	admin := testkit.FreeAddr(t)
	p := &proc{admin: "http://" + admin, log: &bytes.Buffer{}}
	p.cmd = exec.Command(binPath, append(args, "--admin-addr", admin)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("eventhooks %v output:\n%s", args, p.log)
		}
	})
	testkit.Eventually(t, 60*time.Second, "eventhooks ready", func() bool {
		resp, err := http.Get(p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *proc) terminate(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("eventhooks exited with %v on SIGTERM", err)
		}
	case <-time.After(90 * time.Second): // above the default --shutdown-timeout (30s) plus the final commit
		t.Fatal("eventhooks did not stop on SIGTERM")
	}
}

func (p *proc) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	code, out, _ := p.callH(t, method, path, body)
	return code, out
}

// createHook creates a hook through the Admin API, failing the test unless it is 201.
func (p *proc) createHook(t *testing.T, body string) map[string]any {
	t.Helper()
	code, hook := p.call(t, "POST", "/event-hooks", body)
	if code != 201 {
		t.Fatalf("create hook: %d %v", code, hook)
	}
	return hook
}

// callH is call that also returns the response headers.
func (p *proc) callH(t *testing.T, method, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, p.admin+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: invalid JSON %q", method, path, raw)
		}
	}
	return resp.StatusCode, out, resp.Header
}

func distinctBodies(rc *testkit.Receiver) int {
	seen := map[string]bool{}
	for _, r := range rc.Requests() {
		seen[string(r.Body)] = true
	}
	return len(seen)
}

// TestCrashLosesNothing kills the processor (SIGKILL) with thousands of events in flight;
// after a restart every event has been delivered at least once.
func TestCrashLosesNothing(t *testing.T) {
	emb := testkit.Broker(t, 8)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	rc.Respond = func(int, *testkit.Request) int {
		time.Sleep(time.Millisecond) // keep events in flight when the kill lands
		return 200
	}
	p := start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers, "--commit-interval", "200ms", "--session-timeout", "6s")
	p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)

	const n = 12000
	produceHealthFrom(t, brokers, 0, n, 500)
	rc.WaitFor(t, n/5, 60*time.Second)
	p.kill(t)
	killedAt := distinctBodies(rc)
	if killedAt >= n {
		t.Fatalf("all %d events were delivered before the kill; the test proves nothing", n)
	}
	t.Logf("killed after %d of %d events", killedAt, n)

	rc.Respond = nil
	start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers, "--session-timeout", "6s")
	testkit.Eventually(t, 120*time.Second, "every event delivered after restart", func() bool {
		return distinctBodies(rc) == n
	})
	t.Logf("%d requests for %d events (at-least-once redelivery: %d)", len(rc.Requests()), n, len(rc.Requests())-n)
}

// TestDevKeepsHooksAcrossRestartAndEmitDelivers runs `dev` on a data dir, creates a hook
// with Kong's own body, restarts `dev`, and checks the hook is back and `emit` delivers.
func TestDevKeepsHooksAcrossRestartAndEmitDelivers(t *testing.T) {
	dataDir := t.TempDir()
	kafka := testkit.FreeAddr(t)
	rc := testkit.NewReceiver(t)
	dev := func() *proc {
		return start(t, "dev", "--data-dir", dataDir, "--kafka-addr", kafka, "--partitions", "2")
	}

	p := dev()
	hook := p.createHook(t, `{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"`+rc.URL+`/kong"}}`)
	p.terminate(t)

	p = dev()
	code, got := p.call(t, "GET", "/event-hooks/"+hook["id"].(string), "")
	if code != 200 || got["source"] != "crud" {
		t.Fatalf("after restart: %d %v", code, got)
	}
	out, err := exec.Command(binPath, "emit", "--brokers", kafka, "--source", "crud", "--event", "consumers",
		"--key", "c-1", "--data", `{"operation":"create","entity":{"username":"ada"}}`).CombinedOutput()
	if err != nil {
		t.Fatalf("emit: %v\n%s", err, out)
	}
	req := rc.WaitFor(t, 1, 30*time.Second)[0]
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil || body["source"] != "crud" || body["operation"] != "create" {
		t.Fatalf("delivered %s", req.Body)
	}

	if _, err := exec.LookPath("kcat"); err != nil {
		t.Log("SKIP kcat part: kcat is not installed (.ci/run installs it)")
		return
	}
	kc := exec.Command("kcat", "-P", "-b", kafka, "-t", "eventhooks-events", "-K", "|", "-X", "partitioner=murmur2_random")
	kc.Stdin = strings.NewReader(`c-2|{"source":"crud","event":"consumers","data":{"operation":"delete","entity":{"username":"bob"}}}` + "\n")
	if out, err := kc.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	reqs := rc.WaitFor(t, 2, 30*time.Second)
	if !strings.Contains(string(reqs[1].Body), `"bob"`) {
		t.Fatalf("kcat event delivered as %s", reqs[1].Body)
	}
}

// produceHealth produces n balancer health events over 50 keys (see produceHealthFrom).
func produceHealth(t *testing.T, brokers string, n int) {
	t.Helper()
	produceHealthFrom(t, brokers, 0, n, 50)
}

// produceHealthFrom produces balancer health events with seq from..from+n-1, each keyed
// by its upstream_id, "u-" and seq modulo keys.
func produceHealthFrom(t *testing.T, brokers string, from, n, keys int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("eventhooks-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		key := "u-" + strconv.Itoa((from+i)%keys)
		recs[i] = &kgo.Record{Key: []byte(key), Value: fmt.Appendf(nil,
			`{"source":"balancer","event":"health","data":{"upstream_id":%q,"health":"unhealthy","seq":%d}}`, key, from+i)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// endOffsets sums the end offsets of topic's partitions (testkit.EndOffsets).
func endOffsets(t *testing.T, brokers, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return testkit.EndOffsets(t, cl, topic)
}

// brokenReceiver answers status until the returned flag is set, then 200.
func brokenReceiver(t *testing.T, status int) (*testkit.Receiver, *atomic.Bool) {
	rc := testkit.NewReceiver(t)
	fixed := new(atomic.Bool)
	rc.Respond = func(int, *testkit.Request) int {
		if fixed.Load() {
			return 200
		}
		return status
	}
	return rc, fixed
}

// TestKillWithParkedRetriesLosesNothing kills the processor while deliveries of an
// ordering "none" hook are parked in the retry topic; after a restart every one is made.
func TestKillWithParkedRetriesLosesNothing(t *testing.T) {
	emb := testkit.Broker(t, 4)
	brokers := emb.Addrs()[0]
	rc, healthy := brokenReceiver(t, 503)
	args := []string{"run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers, "--session-timeout", "6s"}
	p := start(t, args...)
	p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none",
		"retry":{"max_attempts":50,"initial_backoff_ms":200,"max_backoff_ms":1000},"config":{"url":"`+rc.URL+`"}}`)
	const n = 200
	produceHealth(t, brokers, n)
	testkit.Eventually(t, 30*time.Second, "deliveries parked", func() bool {
		return endOffsets(t, brokers, "eventhooks-retry") >= n
	})
	p.kill(t)
	healthy.Store(true)
	start(t, args...)
	testkit.Eventually(t, 60*time.Second, "every parked delivery made after restart", func() bool {
		seen := map[string]bool{}
		for _, r := range rc.Requests() {
			if r.Status == 200 {
				seen[string(r.Body)] = true
			}
		}
		return len(seen) == n
	})
}

// TestReplayDLQCommand dead-letters deliveries to a broken receiver, fixes it, and
// re-drives them with `eventhooks replay --dlq`.
func TestReplayDLQCommand(t *testing.T) {
	emb := testkit.Broker(t, 2)
	brokers := emb.Addrs()[0]
	rc, fixed := brokenReceiver(t, 410)
	p := start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers)
	hook := p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	const n = 30
	produceHealth(t, brokers, n)
	testkit.Eventually(t, 30*time.Second, "dead letters", func() bool { return endOffsets(t, brokers, "eventhooks-dlq") == n })
	fixed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "replay", "--dlq", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers, "--hook", hook["id"].(string)).CombinedOutput()
	if err != nil {
		t.Fatalf("replay --dlq: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("delivered %d", n)) {
		t.Fatalf("replay output:\n%s", out)
	}
	ok := 0
	for _, r := range rc.Requests() {
		if r.Status == 200 {
			ok++
		}
	}
	if ok != n {
		t.Fatalf("%d deliveries succeeded after the re-drive, want %d", ok, n)
	}
}

// TestSSRFGuardRefusesLoopbackAndMetadataUnderRun: without an allow-list, `run` accepts
// such hooks with a warning and dead-letters their deliveries with a clear error, sending
// nothing.
func TestSSRFGuardRefusesLoopbackAndMetadataUnderRun(t *testing.T) {
	emb := testkit.Broker(t, 1)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	p := start(t, "run", "--brokers", brokers)
	for _, url := range []string{rc.URL, "http://169.254.169.254/latest/meta-data"} {
		code, _, hdr := p.callH(t, "POST", "/event-hooks", `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+url+`"}}`)
		if code != 201 || !strings.Contains(hdr.Get("Warning"), "--allow-destinations") {
			t.Fatalf("create hook on %s: %d, Warning %q", url, code, hdr.Get("Warning"))
		}
	}
	produceHealth(t, brokers, 1)
	testkit.Eventually(t, 30*time.Second, "both deliveries dead-lettered", func() bool {
		return endOffsets(t, brokers, "eventhooks-dlq") == 2
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics("eventhooks-dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var reasons []string
	for len(reasons) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var e struct {
				Reason    string
				LastError string `json:"last_error"`
			}
			for _, h := range r.Headers {
				switch h.Key {
				case "eh-reason":
					e.Reason = string(h.Value)
				case "eh-delivery":
					_ = json.Unmarshal(h.Value, &e)
				}
			}
			if e.Reason != "permanent" || !strings.Contains(e.LastError, "refused") || !strings.Contains(e.LastError, "--allow-destinations") {
				t.Errorf("DLQ entry %+v, headers %v", e, r.Headers)
			}
			reasons = append(reasons, e.Reason)
		})
	}
	if len(rc.Requests()) != 0 {
		t.Fatalf("the guarded receiver got %d requests", len(rc.Requests()))
	}
}

// TestMetricsTokenUnderRun: EVENTHOOKS_METRICS_TOKEN reaches the Admin API, whose
// /metrics then wants it as a bearer token while the probes stay open.
func TestMetricsTokenUnderRun(t *testing.T) {
	emb := testkit.Broker(t, 1)
	t.Setenv("EVENTHOOKS_METRICS_TOKEN", "m3trics") // inherited by the process
	p := start(t, "run", "--brokers", emb.Addrs()[0])
	get := func(bearer string) (int, string) {
		req, _ := http.NewRequest("GET", p.admin+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", code)
	}
	if code, body := get("m3trics"); code != http.StatusOK || !strings.Contains(body, "eventhooks_build_info") {
		t.Errorf("GET /metrics with the token: %d %.200s", code, body)
	}
	if code, _ := p.call(t, "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz: %d", code)
	}
}

// TestRollingRestartUnderLoadLosesNothing runs two instances in one group, produces
// continuously, and restarts each in turn with SIGTERM: every event is delivered.
func TestRollingRestartUnderLoadLosesNothing(t *testing.T) {
	emb := testkit.Broker(t, 8)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	args := []string{"run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers, "--commit-interval", "200ms"}
	a, b := start(t, args...), start(t, args...)
	a.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)

	const n = 20000
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; i < n; i += 1000 {
			produceHealthFrom(t, brokers, i, 1000, 50)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	rc.WaitFor(t, n/10, 60*time.Second)
	a.terminate(t)
	a = start(t, args...)
	rc.WaitFor(t, n/2, 60*time.Second)
	b.terminate(t)
	start(t, args...)
	<-produced
	testkit.Eventually(t, 120*time.Second, "every event delivered", func() bool { return distinctBodies(rc) == n })
	t.Logf("%d requests for %d events: %d redelivered (at-least-once)", len(rc.Requests()), n, len(rc.Requests())-n)
}

// TestReplayJobThroughTheAdminAPI backfills a hook created after its events with
// POST /replays and follows the job with GET /replays/{id}.
func TestReplayJobThroughTheAdminAPI(t *testing.T) {
	emb := testkit.Broker(t, 2)
	brokers := emb.Addrs()[0]
	rc := testkit.NewReceiver(t)
	p := start(t, "run", "--allow-destinations", "127.0.0.0/8", "--brokers", brokers)
	const n = 50
	produceHealth(t, brokers, n)
	testkit.Eventually(t, time.Minute, "events consumed before the hook exists", func() bool {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "eventhooks")
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		return err == nil && sum == n
	})
	hook := p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+`"}}`)
	id := hook["id"].(string)
	if code, bad := p.call(t, "POST", "/replays", `{"hooks":["nope"]}`); code != 400 {
		t.Fatalf("replay of an unknown hook: %d %v", code, bad)
	}
	code, job := p.call(t, "POST", "/replays", `{"hooks":["`+id+`"]}`)
	if code != 201 || job["state"] != "running" {
		t.Fatalf("POST /replays: %d %v", code, job)
	}
	var st map[string]any
	testkit.Eventually(t, time.Minute, "replay job done", func() bool {
		_, st = p.call(t, "GET", "/replays/"+job["id"].(string), "")
		return st["state"] == "done"
	})
	if served := st["served"].(map[string]any)[id]; served != float64(n) {
		t.Fatalf("job status %v", st)
	}
	if got := distinctBodies(rc); got < n {
		t.Fatalf("receiver got %d distinct events, want %d", got, n)
	}
}
