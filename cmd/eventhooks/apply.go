package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/admin"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/hooks/hooksfile"
	"github.com/eventhooks/eventhooks/sinks"
)

// AdminClientFlags reach a running instance's Admin API.
type AdminClientFlags struct {
	AdminURL   string        `help:"Admin API of a running instance." default:"http://127.0.0.1:8080"`
	AdminToken string        `help:"Admin API token (the --admin-token the instance runs with)."`
	Timeout    time.Duration `help:"Timeout of each Admin API request." default:"30s"`
}

// client returns the Admin API client of the flags.
func (f AdminClientFlags) client() (*hooksfile.Client, error) {
	do, err := hooksfile.HTTPDoer(f.AdminURL, f.AdminToken, f.Timeout)
	if err != nil {
		return nil, fmt.Errorf("--admin-url: %w", err)
	}
	return &hooksfile.Client{Do: do}, nil
}

// ApplyCmd makes the hooks what a file says, through the Admin API.
type ApplyCmd struct {
	AdminClientFlags `embed:""`
	File             string `short:"f" required:"" help:"Hooks file, YAML or JSON ('-': standard input)."`
	DryRun           bool   `help:"Print what would change (secrets masked) without changing anything."`
	Prune            bool   `help:"Delete the hooks an earlier apply created (tag managed-by:eventhooks-apply) that the file does not name."`
}

// Run validates every hook of the file, prints the plan and applies it.
func (c *ApplyCmd) Run(*slog.Logger) error {
	data, err := readFileOrStdin(c.File)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cl, err := c.client()
	if err != nil {
		return err
	}
	cat, err := cl.Catalogue(ctx)
	if err != nil {
		return err
	}
	pool := sinks.NewPool(sinks.PoolConfig{DisableBreaker: true})
	defer pool.Close()
	check := func(h *hooks.Hook) error { _, err := sinks.Compile(h, pool, nil); return err }
	_, err = hooksfile.Sync(ctx, data, hooksfile.SyncConfig{
		Client: cl, Lookup: os.LookupEnv, DryRun: c.DryRun, Out: os.Stdout,
		Options: hooksfile.Options{Prune: c.Prune, Catalogue: cat, Check: check},
	})
	if err != nil {
		return fmt.Errorf("apply %s: %w", c.File, err)
	}
	return nil
}

// readFileOrStdin reads path, or standard input for "-".
func readFileOrStdin(path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hooks file: %w", err)
	}
	return data, nil
}

// HooksFileFlags make run and dev keep the hooks what a file says.
type HooksFileFlags struct {
	HooksFile string `help:"Hooks file (YAML or JSON) applied at start and whenever its content changes (read every second), pruning the hooks it stopped naming; an invalid file is logged and changes nothing."`
}

// hooksFileInterval is how often --hooks-file is read.
const hooksFileInterval = time.Second

// watchHooksFile keeps the hooks what --hooks-file says until ctx ends, writing through
// this instance's own Admin API handler (same validation, same answers) once the hooks
// topic is loaded.
func (s *service) watchHooksFile(ctx context.Context, api *admin.Server, c *core) error {
	if c.waitHooks(ctx) != nil {
		return nil
	}
	cl := &hooksfile.Client{Do: handlerDoer(api.Handler(), s.admin.AdminToken)}
	opts := hooksfile.Options{
		Prune: true, Catalogue: c.cat,
		Check: func(h *hooks.Hook) error { _, err := c.compile(h); return err },
	}
	sync := func(ctx context.Context, data []byte) error {
		var out strings.Builder
		p, err := hooksfile.Sync(ctx, data, hooksfile.SyncConfig{Client: cl, Lookup: os.LookupEnv, Options: opts, Out: &out})
		if p != nil && !p.Empty() {
			s.log.Info("hooks file applied", "file", s.hooksFile, "changes", p.Summary(), "report", out.String())
		}
		return err
	}
	hooksfile.Watch(ctx, s.hooksFile, hooksFileInterval, sync, s.log)
	return nil
}

// handlerDoer returns a Doer that serves each request with the Admin API's handler in
// this process, authenticated with token.
func handlerDoer(handle fasthttp.RequestHandler, token string) hooksfile.Doer {
	return func(_ context.Context, method, path string, body []byte) (int, []byte, string, error) {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(path)
		req.Header.SetContentType("application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.SetBody(body)
		var rc fasthttp.RequestCtx
		rc.Init(&req, nil, nil)
		handle(&rc)
		return rc.Response.StatusCode(), append([]byte(nil), rc.Response.Body()...), string(rc.Response.Header.Peek("Warning")), nil
	}
}
