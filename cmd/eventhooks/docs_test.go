package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestDocsGoProducer runs the Go producer of docs/producers.md as documented: the program
// saved as main.go in an empty directory, then the documented shell line (go mod init,
// go get franz-go@latest, go mod tidy, go run), with the test broker in place of
// localhost:29092. Modules come from the local module cache as a file GOPROXY, so it
// needs no network; "latest" is then the cached franz-go. The record must arrive on the
// events topic with its envelope and routing headers.
func TestDocsGoProducer(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a program")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	modcache, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	const key = "docs/producers.md: Go (franz-go) #1"
	code, sh := docBlockOf(t, "docs/producers.md", "Go (franz-go)", "go", 1), shellBlocks(t, key)[key]
	if !strings.Contains(sh, "go mod tidy") {
		t.Errorf("the documented command has no go mod tidy: %s", sh)
	}
	emb := testkit.Broker(t, 4)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-ec", strings.ReplaceAll(sh, "localhost:29092", emb.Addrs()[0]))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOPROXY=file://"+filepath.ToSlash(filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download")),
		"GOSUMDB=off", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GOPATH="+os.Getenv("GOPATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("documented command failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "produced to eventhooks-events/") {
		t.Errorf("output: %s", out)
	}

	recs := topicRecords(t, emb.Addrs()[0], "eventhooks-events")
	if len(recs) != 1 {
		t.Fatalf("%d records on the events topic, want 1", len(recs))
	}
	checkEmitted(t, recs[0], "0fd2b7c4-7f43-4c5e-9d0e-6a8f1e2b3c4d", "consumers:create")
	if !strings.Contains(string(recs[0].Value), `"operation":"create"`) {
		t.Errorf("value %s", recs[0].Value)
	}
}

// TestDocsQuickstart runs README's Quickstart shell blocks as written against `dev` on
// free ports, with a test receiver in place of `eventhooks receive` on 127.0.0.1:9000:
// the hook is created and the emitted consumers events arrive, signed, and the balancer
// event, which no hook wants, does not. Without kcat installed its command is left out
// (and its delete event not expected).
func TestDocsQuickstart(t *testing.T) {
	const create, emit = "README.md: Quickstart #1", "README.md: Quickstart #2"
	blocks := shellBlocks(t, create, emit)
	e := newDocEnv(t, 2)
	want := []delivery{
		{"/hook", map[string]any{"source": "crud", "event": "consumers", "operation": "create",
			"entity": map[string]any{"id": "0fd2", "username": "Ada Lovelace"}}},
		{"/hook", map[string]any{"source": "crud", "event": "consumers", "operation": "delete"}},
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		kcat := regexp.MustCompile(`(?m)^echo '0fd2\|.*\|\n\s+kcat .*\n`)
		if !kcat.MatchString(blocks[emit]) {
			t.Fatalf("no kcat command to leave out in %q", blocks[emit])
		}
		blocks[emit] = kcat.ReplaceAllString(blocks[emit], "")
		want = want[:1]
		t.Log("kcat is not installed: its command is left out")
	}
	if out := e.run(t, blocks[create]); !strings.Contains(out, `"handler":"webhook"`) {
		t.Errorf("creating the hook answered %s", out)
	}
	e.run(t, blocks[emit])
	got := e.expectDeliveries(t, 0, want...)
	time.Sleep(time.Second) // nothing more may come: the balancer event has no hook
	if n := len(e.rc.Requests()); n != len(want) {
		t.Fatalf("%d deliveries, want %d", n, len(want))
	}
	if !strings.Contains(string(got[0].Body), `"create"`) {
		t.Errorf("first delivery %s, want the create (one key, in order)", got[0].Body)
	}
	for _, req := range got {
		if !strings.HasPrefix(req.Headers["X-Kong-Signature"], "sha1=") || !strings.HasPrefix(req.Headers["Webhook-Signature"], "v1,") {
			t.Errorf("delivery unsigned: %v", req.Headers)
		}
	}
}

// TestDocsMakeTargets checks what README's first block says without running it (see
// docsNotRun): `make run` builds bin/eventhooks and runs dev, whose defaults are the
// broker on 127.0.0.1:9092, the Admin API on 127.0.0.1:8080 and data in .eventhooks;
// `make test` vets, then runs every test, then again under -race.
func TestDocsMakeTargets(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", "-n", "run", "test")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run test: %v\n%s", err, out)
	}
	for _, want := range []string{"-o bin/eventhooks ./cmd/eventhooks", "./bin/eventhooks dev", "go vet ./...", "go test -count=1 -timeout 20m ./...", "go test -count=1 -race"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make -n run test prints no %q:\n%s", want, out)
		}
	}
	help, err := exec.Command(binPath, "dev", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("dev --help: %v\n%s", err, help)
	}
	for _, want := range []string{`--kafka-addr="127.0.0.1:9092"`, `--admin-addr="127.0.0.1:8080"`, `--data-dir=".eventhooks"`} {
		if !strings.Contains(string(help), want) {
			t.Errorf("dev --help has no %s", want)
		}
	}
}
