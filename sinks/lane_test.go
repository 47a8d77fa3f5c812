package sinks

import (
	"context"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestLaneKeepsExcerpts: with KeepExcerpts a lane keeps the first ExcerptBytes of the
// request and response bodies of its last request, for the attempt log.
func TestLaneKeepsExcerpts(t *testing.T) {
	long := strings.Repeat("busy ", 100)
	ts := startServer(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(long)
	})
	s := mustCompile(t, webhookHook(t, ts.url, "", ""), newPool(t, PoolConfig{}))
	lane := &Lane{KeepExcerpts: true}
	s.Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), lane)
	req, resp := lane.Excerpts()
	if string(resp) != long[:ExcerptBytes] || !strings.HasPrefix(string(req), `{"`) || len(req) > ExcerptBytes {
		t.Fatalf("excerpts %q / %q", req, resp)
	}
	lane.ResetExcerpts()
	if req, resp := lane.Excerpts(); len(req)+len(resp) != 0 {
		t.Fatal("ResetExcerpts left something")
	}
}
