package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// docBlock returns the first fenced block of language lang after the heading in the
// markdown file path, and the next fenced sh block after it.
func docBlocks(t *testing.T, path, heading string) (code, sh string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("%s: no heading %q", path, heading)
	}
	blocks := regexp.MustCompile("(?s)\n```(\\w+)\n(.*?)\n```\n").FindAllStringSubmatch(s[i:], -1)
	for _, m := range blocks {
		switch {
		case m[1] == "go" && code == "":
			code = m[2]
		case m[1] == "sh" && code != "" && sh == "":
			sh = m[2]
		}
	}
	if code == "" || sh == "" {
		t.Fatalf("%s: no go block followed by an sh block under %q", path, heading)
	}
	return code, sh
}

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
	code, sh := docBlocks(t, "../../docs/producers.md", "## Go (franz-go)")
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

	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addrs()...), kgo.ConsumeTopics("eventhooks-events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records on the events topic, want 1", len(recs))
	}
	r := recs[0]
	var env struct {
		ID, Source, Event, Time string
		Data                    map[string]any
	}
	if err := json.Unmarshal(r.Value, &env); err != nil {
		t.Fatalf("value %s: %v", r.Value, err)
	}
	hdr := map[string]string{}
	for _, h := range r.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(r.Key) != "0fd2b7c4-7f43-4c5e-9d0e-6a8f1e2b3c4d" || env.Source != "crud" || env.Event != "consumers:create" ||
		env.ID == "" || env.Data["operation"] != "create" || hdr["eh-source"] != "crud" || hdr["eh-event"] != "consumers:create" {
		t.Errorf("record key %q value %s headers %v", r.Key, r.Value, hdr)
	}
}

// TestDocsQuickstart runs README's Quickstart shell blocks as written against `dev` on
// free ports, with a test receiver in place of `eventhooks receive` on 127.0.0.1:9000:
// the hook is created and the emitted consumers events arrive, signed. Without kcat
// installed its command is left out (and its delete event not expected).
func TestDocsQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dev")
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, "\n## Quickstart\n"), strings.Index(readme, "\n## The event envelope\n")
	if i < 0 || j < i {
		t.Fatal("README has no Quickstart section")
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)\n```sh\n(.*?)\n```\n").FindAllStringSubmatch(readme[i:j], -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) != 2 {
		t.Fatalf("%d sh blocks in the Quickstart, want 2 (create a hook, emit)", len(blocks))
	}

	rc := testkit.NewReceiver(t)
	kafka := testkit.FreeAddr(t)
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "2")
	_, kcatErr := exec.LookPath("kcat")
	want := 2
	if kcatErr != nil {
		want = 1
		kcat := regexp.MustCompile(`(?m)^echo '0fd2\|.*\|\n\s+kcat .*\n`)
		if !kcat.MatchString(blocks[1]) {
			t.Fatalf("no kcat command to leave out in %q", blocks[1])
		}
		blocks[1] = kcat.ReplaceAllString(blocks[1], "")
		t.Log("kcat is not installed: its command is left out")
	}
	r := strings.NewReplacer(
		"localhost:8080", strings.TrimPrefix(p.admin, "http://"),
		"http://127.0.0.1:9000/hook", rc.URL+"/hook",
		"127.0.0.1:9092", kafka,
		"./bin/eventhooks", binPath,
	)
	for n, block := range blocks {
		cmd := exec.Command("sh", "-ec", r.Replace(block))
		cmd.Env = append(os.Environ(), "EVENTHOOKS_BROKERS="+kafka)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("block %d failed: %v\n%s\n%s", n+1, err, r.Replace(block), out)
		}
		if n == 0 && !strings.Contains(string(out), `"handler":"webhook"`) {
			t.Errorf("creating the hook answered %s", out)
		}
	}
	got := rc.WaitFor(t, want, 60*time.Second)
	time.Sleep(time.Second) // nothing more may come: the balancer event has no hook
	if got = rc.Requests(); len(got) != want {
		t.Fatalf("%d deliveries, want %d", len(got), want)
	}
	for _, req := range got {
		var body map[string]any
		if err := json.Unmarshal(req.Body, &body); err != nil {
			t.Fatalf("body %s: %v", req.Body, err)
		}
		if req.Path != "/hook" || body["source"] != "crud" || body["event"] != "consumers" ||
			!strings.HasPrefix(req.Headers["X-Kong-Signature"], "sha1=") || req.Headers["Webhook-Id"] == "" {
			t.Errorf("delivery %s %v %s", req.Path, req.Headers, req.Body)
		}
	}
	if !strings.Contains(string(got[0].Body), "Ada Lovelace") {
		t.Errorf("first delivery %s, want the emitted create", got[0].Body)
	}
}
