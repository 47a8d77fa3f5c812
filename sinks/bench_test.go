package sinks

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/hooks"
)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// buildAndSign is the CPU part of a webhook delivery: Kong's body and both signatures.
func buildAndSign(s *webhookSink, ev *hooks.Event, unix int64) int {
	buf := getBuffer()
	buf.B = appendEventBody(buf.B[:0], ev)
	sg := s.signers.Get().(*signer)
	sig := sg.signRequest(s.hookID, ev, -1, unix, buf.B, true)
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
	checkBuildAndSignAllocs(t, webhookHook(t, "http://127.0.0.1:1/", `,"secret":"`+benchSecret+`"`, ""))
}

// checkBuildAndSignAllocs fails t when building and signing a request of hook h makes
// more than 2 allocations, once the pools are warm.
func checkBuildAndSignAllocs(t *testing.T, h *hooks.Hook) {
	t.Helper()
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s := mustCompile(t, h, newPool(t, PoolConfig{})).(*webhookSink)
	ev := benchEvent(t)
	unix := time.Now().Unix()
	buildAndSign(s, ev, unix) // warm the pools
	if n := testing.AllocsPerRun(200, func() { buildAndSign(s, ev, unix) }); n > 2 {
		t.Errorf("build and sign: %v allocs/op, want at most 2", n)
	}
}

func BenchmarkDeliverLocal(b *testing.B) {
	// A bare receiver, so the numbers are the client's and the server's, not a recorder's.
	s := mustCompile(b, webhookHook(b, benchReceiver(b)+"/hook", `,"secret":"`+benchSecret+`"`, ""), newPool(b, PoolConfig{}))
	ev := benchEvent(b)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res := s.Deliver(ctx, ev, nil); !res.Delivered {
				b.Fatal(res.Err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ev := benchEvent(b) // one event per goroutine, as lanes own theirs
			for pb.Next() {
				if res := s.Deliver(ctx, ev, nil); !res.Delivered {
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

// customBuildAndSign is the CPU part of a webhook-custom delivery: render the templates,
// encode the payload, sign the body.
func customBuildAndSign(s *customSink, ev *hooks.Event, lane *Lane, unix int64) int {
	req := fasthttp.AcquireRequest()
	buf := getBuffer()
	if _, err := s.build(req, buf, ev, lane); err != nil {
		panic(err)
	}
	sg := s.signers.Get().(*signer)
	sig := sg.signRequest(s.hookID, ev, -1, unix, buf.B, true)
	n := len(buf.B) + len(sig.std) + len(sig.kong)
	s.signers.Put(sg)
	putBuffer(buf)
	fasthttp.ReleaseRequest(req)
	return n
}

// benchCustomHook is Kong's Slack example with a secret and a templated header.
func benchCustomHook(tb testing.TB) *hooks.Hook {
	return customHook(tb, `"url":"http://127.0.0.1:1/services/T000/B000/XXXX","method":"POST","secret":"`+benchSecret+`",`+
		`"headers":{"Content-Type":"application/json","X-Admin":"{{ entity.id }}"},"headers_format":true,`+
		`"payload":{"text":`+quote(slackText)+`,"channel":"#kong-admins"}`)
}

// BenchmarkWebhookCustomBuild renders, encodes and signs Kong's Slack example for one
// event. "per-event" builds the template context for every event (each has its own
// record, as in the processor); "shared-context" is a further hook of the same event.
func BenchmarkWebhookCustomBuild(b *testing.B) {
	s := mustCompile(b, benchCustomHook(b), newPool(b, PoolConfig{})).(*customSink)
	unix := time.Now().Unix()
	b.Run("per-event", func(b *testing.B) {
		evs := [2]*hooks.Event{newEvent(b, "crud", "admins", adminData), newEvent(b, "crud", "admins", adminData)}
		evs[1].Record = &kgo.Record{Topic: "eventhooks-events", Partition: 3, Offset: 6}
		var lane Lane
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			customBuildAndSign(s, evs[i&1], &lane, unix)
			i++
		}
	})
	b.Run("shared-context", func(b *testing.B) {
		ev := newEvent(b, "crud", "admins", adminData)
		var lane Lane
		b.ReportAllocs()
		for b.Loop() {
			customBuildAndSign(s, ev, &lane, unix)
		}
	})
}

func TestWebhookCustomBuildAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s := mustCompile(t, benchCustomHook(t), newPool(t, PoolConfig{})).(*customSink)
	ev := newEvent(t, "crud", "admins", adminData)
	var lane Lane
	unix := time.Now().Unix()
	customBuildAndSign(s, ev, &lane, unix) // warm the pools and the lane
	if n := testing.AllocsPerRun(200, func() { customBuildAndSign(s, ev, &lane, unix) }); n > 0 {
		t.Errorf("webhook-custom build and sign with the event's context built: %v allocs/op, want 0", n)
	}
}

// benchReceiver is a bare local receiver.
func benchReceiver(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// BenchmarkLambdaDeliver runs a lambda that returns one signed request and delivers it
// to a local receiver: on a Lane kept across events (the processor's case) and on a
// fresh Lane per event (a new JavaScript runtime each time).
func BenchmarkLambdaDeliver(b *testing.B) {
	url := benchReceiver(b)
	h := lambdaHook(b, `,"secret":"`+benchSecret+`"`, `(data, event, source) => ({
  url: "`+url+`/" + source + "/" + event,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ text: "Admin account " + data.entity.username + " " + data.operation + "d" }),
})`)
	s := mustCompile(b, h, newPool(b, PoolConfig{LambdaTimeout: time.Second}))
	ev := newEvent(b, "crud", "admins", adminData)
	ctx := context.Background()
	b.Run("reused-lane", func(b *testing.B) {
		var lane Lane
		b.ReportAllocs()
		for b.Loop() {
			if res := s.Deliver(ctx, ev, &lane); !res.Delivered {
				b.Fatal(res.Err)
			}
		}
	})
	b.Run("fresh-lane", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res := s.Deliver(ctx, ev, &Lane{}); !res.Delivered {
				b.Fatal(res.Err)
			}
		}
	})
}

// BenchmarkLambdaDrop is the chain alone: a policy lambda that decides to send nothing.
func BenchmarkLambdaDrop(b *testing.B) {
	s := mustCompile(b, lambdaHook(b, "", policyLambda), newPool(b, PoolConfig{LambdaTimeout: time.Second}))
	ev := newEvent(b, "crud", "admins", adminData)
	var lane Lane
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Deliver(context.Background(), ev, &lane); !res.Dropped {
			b.Fatal(res)
		}
	}
}

// benchData is an event like the bench command's (about 250 bytes, a nanosecond time
// beyond 2^53).
const benchData = `{"upstream_id":"u-42","ip":"10.0.0.42","port":8000,"hostname":"u-42.internal",` +
	`"health":"unhealthy","ts":1795000000123456789,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// BenchmarkLambdaForward is the bench command's lambda, which forwards the whole event
// (JSON.stringify(d)), delivered to a local receiver on a reused Lane.
func BenchmarkLambdaForward(b *testing.B) {
	url := benchReceiver(b)
	h := lambdaHook(b, "", `(d, ev, src) => ({url: "`+url+`/", method: "POST", `+
		`headers: {"content-type": "application/json"}, body: JSON.stringify(d)})`)
	s := mustCompile(b, h, newPool(b, PoolConfig{LambdaTimeout: time.Second}))
	ev := newEvent(b, "balancer", "health", benchData)
	ctx := context.Background()
	var lane Lane
	b.ReportAllocs()
	for b.Loop() {
		if res := s.Deliver(ctx, ev, &lane); !res.Delivered {
			b.Fatal(res.Err)
		}
	}
}
