package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"

	"github.com/valyala/fasthttp"
)

// ReceiveCmd is a webhook receiver for trying eventhooks out: it prints every request and
// answers with a fixed status.
type ReceiveCmd struct {
	Addr   string `help:"Listen address." default:"127.0.0.1:9000"`
	Status int    `help:"Status to answer with." default:"200"`
}

// Run serves until SIGINT/SIGTERM.
func (c *ReceiveCmd) Run(log *slog.Logger) error {
	var mu sync.Mutex
	// DisablePreParseMultipartForm: otherwise fasthttp parses a multipart body into a map
	// and PostBody re-encodes it in map order, so the parts printed would not be the parts
	// sent (webhook-custom sends them in sorted order).
	srv := &fasthttp.Server{Name: "eventhooks-receive", DisablePreParseMultipartForm: true, Handler: func(ctx *fasthttp.RequestCtx) {
		var hdrs []string
		for k, v := range ctx.Request.Header.All() {
			hdrs = append(hdrs, fmt.Sprintf("  %s: %s", k, v))
		}
		sort.Strings(hdrs)
		mu.Lock()
		fmt.Fprintf(os.Stdout, "%s %s\n", ctx.Method(), ctx.RequestURI())
		for _, h := range hdrs {
			fmt.Fprintln(os.Stdout, h)
		}
		fmt.Fprintf(os.Stdout, "%s\n\n", ctx.PostBody())
		mu.Unlock()
		ctx.SetStatusCode(c.Status)
	}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown()
	}()
	log.Info("receiving webhooks", "addr", "http://"+c.Addr, "status", c.Status)
	return srv.ListenAndServe(c.Addr)
}
