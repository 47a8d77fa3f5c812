package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// Every fenced block of README.md and docs/*.md that could hold commands is either run
// by a TestDocs* test, against the built binary, or listed in docsNotRun with the reason.
// A block is named by its file, the heading above it and its place among that section's
// shell-like blocks: "README.md: Quickstart #2".

// docsRun names, for each shell-like block that runs, the test that runs it.
var docsRun = map[string]string{
	"README.md: Quickstart #1":                                                        "TestDocsQuickstart",
	"README.md: Quickstart #2":                                                        "TestDocsQuickstart",
	"README.md: Replay and backfill #1":                                               "TestDocsReplay",
	"docs/producers.md: kcat #1":                                                      "TestDocsProducers",
	"docs/producers.md: Go (franz-go) #1":                                             "TestDocsGoProducer",
	"docs/producers.md: eventhooks emit #1":                                           "TestDocsProducers",
	"docs/producers.md: HTTP ingest: `POST /events` #1":                               "TestDocsProducers",
	"docs/transformations.md: Example: Slack alert for unhealthy upstream targets #1": "TestDocsTransformations",
	"docs/transformations.md: Example: Slack alert for unhealthy upstream targets #2": "TestDocsTransformations",
	"docs/transformations.md: Example: Slack alert for unhealthy upstream targets #3": "TestDocsTransformations",
	"docs/transformations.md: Example: Slack alert for unhealthy upstream targets #4": "TestDocsTransformations",
	"docs/transformations.md: Example: Slack alert for unhealthy upstream targets #5": "TestDocsTransformations",
	"docs/transformations.md: Example: enforce the admins' email domain #1":           "TestDocsTransformations",
	"docs/transformations.md: Example: enforce the admins' email domain #2":           "TestDocsTransformations",
	"docs/transformations.md: Example: enforce the admins' email domain #3":           "TestDocsTransformations",
	"docs/transformations.md: Testing hooks: `/test` and `/ping` #1":                  "TestDocsTransformations",
}

// docsNotRun lists the shell-like blocks no test runs as written, and why.
var docsNotRun = map[string]string{
	"README.md: eventhooks #1": "`make test` is this suite and more (about 20 min); `make run` builds into the " +
		"checkout's bin/ and takes the fixed ports 9092 and 8080. TestDocsMakeTargets checks both with make -n " +
		"and dev's default ports; TestDocsQuickstart runs dev",
	"docs/design.md: Data flow #1": "a diagram, not commands",
}

// notShell are the fence languages of blocks that hold data or code other than shell.
var notShell = []string{"json", "go", "js", "gotemplate", "yaml"}

// docFiles are the user docs whose blocks are checked, relative to the repository root.
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	files := []string{"README.md"}
	for _, d := range docs {
		files = append(files, "docs/"+filepath.Base(d))
	}
	return files
}

// docBlock is one fenced block of a markdown file.
type docBlock struct {
	file, heading, lang, text string
	n                         int // its place among the section's blocks of its kind, from 1
}

func (b docBlock) shell() bool { return !slices.Contains(notShell, b.lang) }

func (b docBlock) key() string { return fmt.Sprintf("%s: %s #%d", b.file, b.heading, b.n) }

var (
	fenceRe   = regexp.MustCompile("^(\\s*)(```+|~~~+)\\s*([^\\s`]*)")
	headingRe = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*$`)
)

// parseBlocks returns the fenced blocks of the markdown file (relative to the repository
// root), numbered per section: shell-like blocks among themselves, others per language.
func parseBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	f, err := os.Open(filepath.Join("../..", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks        []docBlock
		cur           *docBlock
		fence, indent string
		heading       string
		counts        = map[string]int{}
		sc            = bufio.NewScanner(f)
	)
	for sc.Scan() {
		line := sc.Text()
		switch m := fenceRe.FindStringSubmatch(line); {
		case cur != nil && m != nil && strings.HasPrefix(m[2], fence) && m[3] == "":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, indent) + "\n"
		case m != nil:
			fence, indent = m[2], m[1]
			cur = &docBlock{file: file, heading: heading, lang: m[3]}
			kind := "shell"
			if !cur.shell() {
				kind = cur.lang
			}
			counts[kind]++
			cur.n = counts[kind]
		default:
			if h := headingRe.FindStringSubmatch(line); h != nil {
				heading, counts = h[1], map[string]int{}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: block under %q never closed", file, cur.heading)
	}
	return blocks
}

// TestDocsEveryShellBlockIsRun fails on a shell-like block that no test runs and that
// docsNotRun does not list, and on entries naming blocks that are gone.
func TestDocsEveryShellBlockIsRun(t *testing.T) {
	seen := map[string]bool{}
	for _, file := range docFiles(t) {
		for _, b := range parseBlocks(t, file) {
			if !b.shell() {
				continue
			}
			k := b.key()
			seen[k] = true
			_, run := docsRun[k]
			_, listed := docsNotRun[k]
			switch {
			case run && listed:
				t.Errorf("%s is both run and listed as not run", k)
			case !run && !listed:
				t.Errorf("%s (```%s) is run by no test: run it in a TestDocs* test (docsRun) or say why not in docsNotRun:\n%s", k, b.lang, b.text)
			}
		}
	}
	for _, m := range []map[string]string{docsRun, docsNotRun} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !seen[k] {
				t.Errorf("%s: no such shell block in the docs", k)
			}
		}
	}
	src := testSources(t)
	for _, k := range slices.Sorted(maps.Keys(docsRun)) {
		test := docsRun[k]
		if !strings.Contains(src, "func "+test+"(t *testing.T)") {
			t.Errorf("%s: test %s does not exist", k, test)
		}
	}
}

// testSources returns the text of this package's docs test files.
func testSources(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("docs*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
	}
	return sb.String()
}

// shellBlocks returns the blocks named by keys, failing unless docsRun gives exactly
// those blocks to the calling test: a block given to a test is fetched by it.
func shellBlocks(t *testing.T, keys ...string) map[string]string {
	t.Helper()
	test, _, _ := strings.Cut(t.Name(), "/")
	var mine []string
	for k, owner := range docsRun {
		if owner == test {
			mine = append(mine, k)
		}
	}
	slices.Sort(mine)
	if want := slices.Sorted(slices.Values(keys)); !slices.Equal(mine, want) {
		t.Fatalf("docsRun gives %s the blocks %q, it runs %q", test, mine, want)
	}
	found := map[string]string{}
	for _, file := range docFiles(t) {
		for _, b := range parseBlocks(t, file) {
			if b.shell() && slices.Contains(keys, b.key()) {
				found[b.key()] = b.text
			}
		}
	}
	for _, k := range keys {
		if _, ok := found[k]; !ok {
			t.Fatalf("the docs have no block %s", k)
		}
	}
	return found
}

// docBlockOf returns the n-th block of language lang under heading in file: the data a
// shell block's text says to save or expects.
func docBlockOf(t *testing.T, file, heading, lang string, n int) string {
	t.Helper()
	for _, b := range parseBlocks(t, file) {
		if b.heading == heading && b.lang == lang && b.n == n {
			return b.text
		}
	}
	t.Fatalf("%s has no %s block #%d under %q", file, lang, n, heading)
	return ""
}

// docEnv is where the docs' commands run: `dev` on free ports (with HTTP ingest), a
// receiver standing in for every destination the docs name, and a working directory
// holding bin/eventhooks, with the binary on PATH as the docs ask.
type docEnv struct {
	p      *proc
	kafka  string
	ingest string
	rc     *testkit.Receiver
	dir    string
	addrs  *strings.Replacer
	ours   map[string]bool
}

func newDocEnv(t *testing.T, partitions int) *docEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("runs dev")
	}
	e := &docEnv{kafka: testkit.FreeAddr(t), ingest: testkit.FreeAddr(t), rc: testkit.NewReceiver(t), dir: t.TempDir()}
	e.p = start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", e.kafka, "--partitions", fmt.Sprint(partitions),
		"--ingest-addr", e.ingest)
	if err := os.Mkdir(filepath.Join(e.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binPath, filepath.Join(e.dir, "bin", "eventhooks")); err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimPrefix(e.p.admin, "http://")
	e.addrs = strings.NewReplacer(
		"localhost:8080", admin, "127.0.0.1:8080", admin,
		"localhost:29092", e.kafka, "127.0.0.1:9092", e.kafka,
		"localhost:8090", e.ingest,
		"http://127.0.0.1:9000", e.rc.URL,
		"https://hooks.slack.com", e.rc.URL, "hooks.slack.com", strings.TrimPrefix(e.rc.URL, "http://"),
		"http://kong-admin:8001", e.rc.URL,
	)
	e.ours = map[string]bool{admin: true, e.kafka: true, e.ingest: true, strings.TrimPrefix(e.rc.URL, "http://"): true}
	return e
}

var localAddrRe = regexp.MustCompile(`(?:localhost|127\.0\.0\.1):\d+`)

// run runs a block with sh -e, its addresses replaced by the test's, and returns what
// it printed. env is added to the environment (EVENTHOOKS_BROKERS is the broker's, for
// commands that rely on the default 127.0.0.1:9092).
func (e *docEnv) run(t *testing.T, block string, env ...string) string {
	t.Helper()
	script := e.addrs.Replace(block)
	for _, a := range localAddrRe.FindAllString(script, -1) {
		if !e.ours[a] {
			t.Fatalf("the block names %s, which the test does not stand in for:\n%s", a, block)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-ec", script)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binPath)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"EVENTHOOKS_BROKERS="+e.kafka)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("block failed: %v\n%s\noutput:\n%s", err, script, out)
	}
	return string(out)
}

// delivery is a request a doc says should arrive: its path and members its JSON body has.
type delivery struct {
	path string
	body map[string]any
}

// expectDeliveries waits for len(want) requests after the first from, in any order
// (distinct keys travel on distinct partitions), and matches each to one wanted.
func (e *docEnv) expectDeliveries(t *testing.T, from int, want ...delivery) []*testkit.Request {
	t.Helper()
	got := e.rc.WaitFor(t, from+len(want), 60*time.Second)[from:]
	left := slices.Clone(want)
	for _, r := range got {
		var body any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("%s %s: body %q: %v", r.Method, r.Path, r.Body, err)
		}
		i := slices.IndexFunc(left, func(d delivery) bool { return d.path == r.Path && contains(body, d.body) })
		if i < 0 {
			t.Errorf("unexpected delivery %s %s %s", r.Method, r.Path, r.Body)
			continue
		}
		left = slices.Delete(left, i, i+1)
	}
	for _, d := range left {
		t.Errorf("no delivery to %s with %v", d.path, d.body)
	}
	return got
}

// contains reports whether got has what want shows: every member of an object, every
// element of an array, recursively; a string ending in "…" (the docs' elision) is a
// prefix.
func contains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !contains(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !contains(g[i], w[i]) {
				return false
			}
		}
		return true
	case string:
		g, ok := got.(string)
		if prefix, elided := strings.CutSuffix(w, "…"); elided {
			return ok && strings.HasPrefix(g, prefix)
		}
		return ok && g == w
	}
	return reflect.DeepEqual(got, want)
}

// jsonOut parses what a command printed as one JSON object.
func jsonOut(t *testing.T, out string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, out)
	}
	return v
}
