package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const hooksTopic = "eventhooks-hooks"

// testEnv is an Admin API served over a real TCP listener on a real hooks.Store, itself on
// an embedded kfake broker.
type testEnv struct {
	t     *testing.T
	base  string
	store *hooks.Store
	cat   *hooks.Catalogue
	now   atomic.Int64 // unix seconds returned by Config.Now
}

// newEnv starts a broker, a store and a server; mod may adjust the Config.
func newEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, hooksTopic))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, hooks.StoreClientOpts(hooksTopic)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &testEnv{t: t, cat: hooks.NewCatalogue()}
	e.now.Store(1_700_000_000)
	e.store = hooks.NewStore(cl, hooksTopic, e.cat, quiet)
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = e.store.Run(ctx) }()
	select {
	case <-e.store.Loaded():
	case <-time.After(time.Minute): // generous: a loaded machine under -race is slow
		t.Fatal("store did not load within a minute")
	}
	cfg := Config{Store: e.store, Catalogue: e.cat, Logger: quiet,
		Now: func() time.Time { return time.Unix(e.now.Load(), 0) }}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e.base = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		cancel()
		<-runDone
		cl.Close()
		c.Close()
	})
	return e
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends a request; body is JSON unless a Content-Type header says otherwise.
// headers come in name, value pairs.
func (e *testEnv) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatalf("NewRequest: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect sends a request and fails unless the status is want.
func (e *testEnv) expect(want int, method, path, body string, headers ...string) response {
	e.t.Helper()
	r := e.do(method, path, body, headers...)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	return r
}

// create posts a webhook hook and returns its id.
func (e *testEnv) create(body string) string {
	e.t.Helper()
	return e.expect(http.StatusCreated, "POST", "/event-hooks", body).json(e.t)["id"].(string)
}

const kongCreate = `{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"https://example.com/hook"}}`
