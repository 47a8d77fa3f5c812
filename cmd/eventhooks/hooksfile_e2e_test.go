package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// readmeHooksFile returns the first yaml block of the README's "Hooks as code" section.
func readmeHooksFile(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(raw), "\n## Hooks as code\n")
	_, block, ok2 := strings.Cut(sec, "\n```yaml\n")
	block, _, ok3 := strings.Cut(block, "\n```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no yaml block under ## Hooks as code")
	}
	return block + "\n"
}

// cli runs the binary with env added and returns its standard output and error.
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustCLI is cli failing the test on an error.
func mustCLI(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, err := cli(t, env, args...)
	if err != nil {
		t.Fatalf("eventhooks %v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

// hookNames returns the names of the hooks, sorted, and whether each is enabled.
func (p *proc) hookNames(t *testing.T) []string {
	t.Helper()
	code, list := p.call(t, "GET", "/event-hooks", "")
	if code != 200 {
		t.Fatalf("list hooks: %d %v", code, list)
	}
	var names []string
	for _, h := range list["data"].([]any) {
		m := h.(map[string]any)
		name, _ := m["name"].(string)
		if m["enabled"] == false {
			name += " (disabled)"
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestApplyHooksFile applies the README's hooks.yaml to a dev instance: the hooks
// deliver with the secret from the environment, a second apply changes nothing, a dry
// run masks secrets, an invalid file changes nothing, --prune deletes only hooks apply
// made, and a dump applies back without changing what apply made.
func TestApplyHooksFile(t *testing.T) {
	rc := testkit.NewReceiver(t)
	kafka := testkit.FreeAddr(t)
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "2")
	p.createHook(t, `{"name":"by-hand","source":"crud","handler":"log"}`)
	dir := t.TempDir()
	file := filepath.Join(dir, "hooks.yaml")
	writeFile(t, file, readmeHooksFile(t))
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	env := []string{"CRM_WEBHOOK_URL=" + rc.URL + "/crm", "CRM_WEBHOOK_SECRET=" + secret, "ALERTS_URL=" + rc.URL + "/alerts"}
	apply := func(env []string, args ...string) string {
		return mustCLI(t, env, append([]string{"apply", "--admin-url", p.admin}, args...)...)
	}

	if out := apply(env, "-f", file); !strings.Contains(out, "3 to create, 0 to update, 0 to delete") {
		t.Fatalf("first apply:\n%s", out)
	}
	want := []string{"audit-log", "by-hand", "consumers-to-crm", "unhealthy-targets"}
	if got := p.hookNames(t); !slices.Equal(got, want) {
		t.Fatalf("hooks = %q, want %q", got, want)
	}
	if out := apply(env, "-f", file); out != "no changes\n" {
		t.Fatalf("second apply is not a no-op:\n%s", out)
	}

	mustCLI(t, nil, "emit", "--brokers", kafka, "--source", "crud", "--event", "consumers",
		"--key", "c-1", "--data", `{"operation":"create","entity":{"username":"ada"}}`)
	req := rc.WaitFor(t, 1, 60*time.Second)[0]
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write(req.Body)
	if req.Path != "/crm" || req.Headers["X-Kong-Signature"] != "sha1="+hex.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("delivered %s %v %s: want /crm signed with the secret from the environment", req.Path, req.Headers, req.Body)
	}

	rotated := append(slices.Clone(env[:1]), "CRM_WEBHOOK_SECRET=whsec_rotated", env[2])
	out := apply(rotated, "-f", file, "--dry-run")
	if !strings.Contains(out, "~ update consumers-to-crm") || !strings.Contains(out, `config.secret: "***" -> "***"`) ||
		strings.Contains(out, secret) || strings.Contains(out, "whsec_rotated") {
		t.Fatalf("dry run with a new secret:\n%s", out)
	}
	if out := apply(env, "-f", file); out != "no changes\n" {
		t.Fatalf("a dry run changed something:\n%s", out)
	}

	invalid := filepath.Join(dir, "invalid.yaml")
	writeFile(t, invalid, readmeHooksFile(t)+"  - name: new-but-broken\n    source: crud\n    handler: webhook\n")
	if out, errOut, err := cli(t, env, "apply", "--admin-url", p.admin, "-f", invalid, "--prune"); err == nil ||
		!strings.Contains(errOut, "(hook new-but-broken): schema violation (config.url: required field missing)") {
		t.Fatalf("an invalid file: err %v\n%s%s", err, out, errOut)
	}
	if got := p.hookNames(t); !slices.Equal(got, want) {
		t.Fatalf("an invalid file changed the hooks: %q", got)
	}

	head, _, _ := strings.Cut(readmeHooksFile(t), "  - name: unhealthy-targets")
	writeFile(t, filepath.Join(dir, "one.yaml"), head)
	out = apply(env, "-f", filepath.Join(dir, "one.yaml"), "--prune")
	if !strings.Contains(out, "- delete audit-log") || !strings.Contains(out, "- delete unhealthy-targets") ||
		!strings.Contains(out, "0 to create, 0 to update, 2 to delete") {
		t.Fatalf("prune:\n%s", out)
	}
	if got := p.hookNames(t); !slices.Equal(got, []string{"by-hand", "consumers-to-crm"}) {
		t.Fatalf("after prune: %q", got)
	}

	dump := filepath.Join(dir, "dump.yaml")
	_, errOut, err := cli(t, nil, "dump", "--admin-url", p.admin, "-o", dump)
	if err != nil || !strings.Contains(errOut, "CONSUMERS_TO_CRM_SECRET: config.secret of hook consumers-to-crm") {
		t.Fatalf("dump: %v\n%s", err, errOut)
	}
	if text, _ := os.ReadFile(dump); bytes.Contains(text, []byte(secret)) {
		t.Fatalf("dump shows the secret:\n%s", text)
	}
	// The dump names every hook: applying it takes by-hand over (its tag), nothing else.
	dumped := []string{"CONSUMERS_TO_CRM_SECRET=" + secret}
	if out := apply(dumped, "-f", dump, "--prune"); !strings.Contains(out, "~ update by-hand") ||
		!strings.Contains(out, `-> ["managed-by:eventhooks-apply"]`) || !strings.Contains(out, "0 to create, 1 to update, 0 to delete") {
		t.Fatalf("applying the dump:\n%s", out)
	}
	if out := apply(dumped, "-f", dump, "--prune"); out != "no changes\n" {
		t.Fatalf("applying the dump again:\n%s", out)
	}
}

// TestDevHooksFileFollowsEdits runs dev with --hooks-file on a file mounted the way
// Kubernetes mounts a ConfigMap (hooks.yaml -> ..data/hooks.yaml, ..data swapped to a new
// directory on change): an edit takes effect within seconds, an invalid edit is logged
// and changes nothing, and fixing it applies again.
func TestDevHooksFileFollowsEdits(t *testing.T) {
	dir := t.TempDir()
	version := 0
	mount := func(content string) {
		version++
		v := filepath.Join(dir, "..v"+string(rune('0'+version)))
		if err := os.Mkdir(v, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(v, "hooks.yaml"), content)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(v), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mount("hooks:\n  - name: a\n    source: crud\n    handler: log\n")
	file := filepath.Join(dir, "hooks.yaml")
	if err := os.Symlink("..data/hooks.yaml", file); err != nil {
		t.Fatal(err)
	}
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", testkit.FreeAddr(t), "--hooks-file", file)
	testkit.Eventually(t, 60*time.Second, "the file's hook", func() bool { return slices.Equal(p.hookNames(t), []string{"a"}) })

	edited := time.Now()
	mount("hooks:\n  - name: a\n    source: crud\n    handler: log\n    enabled: false\n  - name: b\n    source: crud\n    handler: log\n")
	testkit.Eventually(t, 60*time.Second, "the edit", func() bool {
		return slices.Equal(p.hookNames(t), []string{"a (disabled)", "b"})
	})
	t.Logf("an edit of the hooks file took effect after %v", time.Since(edited).Round(10*time.Millisecond))

	mount("hooks:\n  - name: c\n    source: crud\n    handler: webhook\n")
	time.Sleep(3 * hooksFileInterval) // read and refused by now; the log is read at the end
	if got := p.hookNames(t); !slices.Equal(got, []string{"a (disabled)", "b"}) {
		t.Fatalf("an invalid file changed the hooks: %q", got)
	}

	mount("hooks:\n  - name: b\n    source: crud\n    handler: log\n")
	testkit.Eventually(t, 60*time.Second, "the fixed file", func() bool { return slices.Equal(p.hookNames(t), []string{"b"}) })
	p.terminate(t)
	if log := p.log.String(); !strings.Contains(log, "hooks file: invalid, hooks unchanged") ||
		!strings.Contains(log, "(hook c): schema violation (config.url: required field missing)") {
		t.Errorf("the invalid file was not logged with its reason:\n%s", log)
	}
}
