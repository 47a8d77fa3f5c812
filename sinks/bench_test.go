package sinks

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// buildAndSign is the CPU part of a webhook delivery: Kong's body and both signatures.
func buildAndSign(s *webhookSink, ev *hooks.Event, unix int64) int {
	buf := getBuffer()
	buf.B = appendWebhookBody(buf.B[:0], ev.Source, ev.Event, ev.Data)
	sg := s.signers.Get().(*signer)
	sig := sg.sign(s.hookID, ev, unix, buf.B)
	n := len(buf.B) + len(sig.std) + len(sig.kong) + len(sig.id) + len(sig.ts)
	s.signers.Put(sg)
	putBuffer(buf)
	return n
}

func BenchmarkBuildAndSign(b *testing.B) {
	s := mustCompile(b, webhookHook(b, "http://127.0.0.1:1/", `,"secret":"`+benchSecret+`"`, ""), newPool(b, PoolConfig{})).(*webhookSink)
	ev := benchEvent(b)
	unix := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		buildAndSign(s, ev, unix)
	}
}

func TestBuildAndSignAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s := mustCompile(t, webhookHook(t, "http://127.0.0.1:1/", `,"secret":"`+benchSecret+`"`, ""), newPool(t, PoolConfig{})).(*webhookSink)
	ev := benchEvent(t)
	unix := time.Now().Unix()
	buildAndSign(s, ev, unix) // warm the pools
	if n := testing.AllocsPerRun(200, func() { buildAndSign(s, ev, unix) }); n > 2 {
		t.Errorf("build and sign: %v allocs/op, want at most 2", n)
	}
}

func BenchmarkDeliverLocal(b *testing.B) {
	// A bare receiver, so the numbers are the client's and the server's, not a recorder's.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	s := mustCompile(b, webhookHook(b, "http://"+ln.Addr().String()+"/hook", `,"secret":"`+benchSecret+`"`, ""), newPool(b, PoolConfig{}))
	ev := benchEvent(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res := s.Deliver(ctx, ev); !res.Delivered {
				b.Fatal(res.Err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ev := benchEvent(b) // one event per goroutine, as lanes own theirs
			for pb.Next() {
				if res := s.Deliver(ctx, ev); !res.Delivered {
					b.Error(res.Err)
					return
				}
			}
		})
	})
}

func benchEvent(tb testing.TB) *hooks.Event {
	return newEvent(tb, "crud", "consumers", consumerData)
}
