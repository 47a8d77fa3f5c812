package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// chromiumPath finds Debian's chromium; the browser tests skip without it.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIPPED: no chromium on PATH (apt-get install -y chromium): the console's browser test did not run")
	return ""
}

// screenshotDir is $EVENTHOOKS_SCREENSHOTS (created) or a test temp dir.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("EVENTHOOKS_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser drives one headless chromium tab and saves numbered screenshots.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
	n   int
}

func newBrowser(t *testing.T) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, chromedp.WindowSize(1360, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute) // only catches a hang
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	return &browser{t: t, ctx: ctx, dir: screenshotDir(t)}
}

// run runs actions, failing the test with what was being done.
func (b *browser) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// shot saves a full-page PNG named after the step.
func (b *browser) shot(name string) {
	b.t.Helper()
	var png []byte
	b.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	b.n++
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// text returns the text of the first node matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// waitText waits until the text of sel contains want.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	testkit.Eventually(b.t, 60*time.Second, sel+" says "+want, func() bool {
		var s string
		err := chromedp.Run(b.ctx, chromedp.WaitVisible(sel, chromedp.ByQuery), chromedp.Text(sel, &s, chromedp.ByQuery))
		return err == nil && strings.Contains(s, want)
	})
}

// TestConsoleInBrowser logs in to the console of a running `dev`, creates a hook
// through the form, tests it, sends events, watches them in the live table, opens a
// dead-lettered delivery and sends it again once the receiver is fixed, then re-drives
// the dead letters of reason permanent, saving screenshots of each page.
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	var fixed atomic.Bool
	rc := testkit.NewReceiver(t)
	rc.Respond = func(_ int, r *testkit.Request) int {
		if !fixed.Load() && bytes.Contains(r.Body, []byte(`"reject":true`)) {
			return 400
		}
		return 200
	}
	kafka := testkit.FreeAddr(t)
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "2", "--admin-token", "console-token")

	b.run("open the console", chromedp.Navigate(p.admin+"/ui/"), chromedp.WaitVisible("#token", chromedp.ByID))
	b.run("wrong token", chromedp.SendKeys("#token", "nope", chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible(".alert", chromedp.ByQuery))
	b.shot("login-refused")
	b.run("sign in", chromedp.SendKeys("#token", "console-token", chromedp.ByID), chromedp.Submit("#token", chromedp.ByID),
		chromedp.WaitVisible(".empty", chromedp.ByQuery))
	b.shot("no-hooks")

	b.run("new hook form", chromedp.Click(`a[href="/ui/hooks/new"]`, chromedp.ByQuery), chromedp.WaitVisible("#hook-form", chromedp.ByID),
		chromedp.SendKeys("#name", "upstream health to ops", chromedp.ByID),
		chromedp.SendKeys("#source", "balancer", chromedp.ByID), chromedp.SendKeys("#event", "health", chromedp.ByID),
		chromedp.SetValue("#config", `{"url": "`+rc.URL+`/ops"}`, chromedp.ByID))
	b.shot("new-hook")
	b.run("create", chromedp.Click(`#hook-form button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible("#rows", chromedp.ByID))
	b.waitText("h1", "upstream health to ops")
	var hookURL string
	b.run("hook url", chromedp.Location(&hookURL))

	b.run("edit and test", chromedp.Click(`a[href$="/edit"]`, chromedp.ByQuery), chromedp.WaitVisible("#test-run", chromedp.ByID),
		chromedp.Click("#test-run", chromedp.ByID))
	b.waitText("#test-result", "result")
	b.shot("test-panel")

	for i, data := range []string{`{"upstream_id":"u-1","health":"healthy"}`, `{"upstream_id":"u-2","health":"unhealthy"}`,
		`{"upstream_id":"u-3","health":"unhealthy","reject":true}`} {
		out, err := exec.Command(binPath, "emit", "--brokers", kafka, "--source", "balancer", "--event", "health",
			"--key", fmt.Sprint("u-", i), "--data", data).CombinedOutput()
		if err != nil {
			t.Fatalf("emit: %v\n%s", err, out)
		}
	}
	b.run("hook page", chromedp.Navigate(hookURL))
	b.waitText("#rows", "dead-lettered")
	testkit.Eventually(t, 60*time.Second, "three attempts listed live", func() bool {
		var n int
		return chromedp.Run(b.ctx, chromedp.Evaluate(`document.querySelectorAll("#rows tbody tr").length`, &n)) == nil && n == 3
	})
	b.shot("hook-deliveries")
	b.run("hooks list", chromedp.Navigate(p.admin+"/ui/"), chromedp.WaitVisible(`table[data-testid=hooks]`, chromedp.ByQuery))
	s := b.text(`table[data-testid=hooks] tbody`)
	if !strings.Contains(s, "66.7 %") || !strings.Contains(s, "400") {
		t.Errorf("hooks list shows no 66.7 %% success rate and 400 error: %q", s)
	}
	// A 400 is the receiver answering: the hook's own breaker stays closed. Three attempts
	// within the minute are a low rate, not "0".
	if !strings.Contains(s, "hook closed") {
		t.Errorf("hooks list shows no hook breaker state: %q", s)
	}
	if rate := b.text(`table[data-testid=hooks] tbody td.num`); rate == "0" {
		t.Errorf("attempts/s reads %q after three attempts within the minute", rate)
	}
	b.shot("hooks")

	b.run("open the dead-lettered delivery", chromedp.Navigate(hookURL+"?status=dead"),
		chromedp.Click(`tr.row-dead_lettered a`, chromedp.ByQuery), chromedp.WaitVisible("#retry", chromedp.ByID))
	if s := b.text("main"); !strings.Contains(s, "HTTP 400") || !strings.Contains(s, "permanent") {
		t.Errorf("delivery page lacks the 400 and its reason: %q", s)
	}
	fixed.Store(true)
	before := len(rc.Requests())
	b.run("send again", chromedp.Click("#retry", chromedp.ByID))
	b.waitText("#job", "done")
	got := rc.WaitFor(t, before+1, 60*time.Second)
	if last := got[len(got)-1]; last.Status != 200 || !bytes.Contains(last.Body, []byte(`"reject":true`)) {
		t.Errorf("the retried delivery arrived as %d %s", last.Status, last.Body)
	}
	b.shot("delivery-sent-again")

	b.run("dead letters", chromedp.Navigate(p.admin+"/ui/dead-letters?reason=permanent"),
		chromedp.WaitVisible(`table[data-testid=dead-letters]`, chromedp.ByQuery))
	if s := b.text("#redrive"); s != "Re-drive all permanent" {
		t.Errorf("the re-drive button of the reason filter says %q", s)
	}
	b.shot("dead-letters")
	before = len(rc.Requests())
	b.run("re-drive", chromedp.Click("#redrive", chromedp.ByID))
	b.waitText("#job", "done")
	rc.WaitFor(t, before+1, 60*time.Second)
	b.shot("dead-letters-redriven")
}
