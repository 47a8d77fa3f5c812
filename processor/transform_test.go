package processor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/sinks"
)

// TestTransformHandlersDeliverThroughTheBroker runs a webhook-custom hook and a lambda
// hook on the same events, through Kafka: the two share each event's lane (its template
// context and JavaScript runtime), each keeps the key's order, and the lambda's null
// drops events without blocking them.
func TestTransformHandlersDeliverThroughTheBroker(t *testing.T) {
	emb := testkit.Broker(t, 2)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	custom := in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook-custom","config":{`+
		`"url":"`+rc.URL+`/custom/{{ .upstream_id }}","method":"POST","secret":"s3cret",`+
		`"headers":{"Content-Type":"application/json"},`+
		`"payload":{"text":"{{ hostname }}:{{ port }} is {{ health }}","seq":"{{ seq }}"}}}`)
	lambda := in.addHook(t, `{"source":"balancer","event":"health","handler":"lambda","config":{"secret":"s3cret","functions":[`+
		`"(d) => d.seq % 2 === 0 ? null : d",`+
		`"(d, event, source) => d && ({ url: \"`+rc.URL+`/lambda\", method: \"PUT\", body: { up: d.upstream_id, seq: d.seq, event, source } })"]}}`)

	cl := producer(t, emb.Addrs())
	for seq := 1; seq <= 4; seq++ {
		produce(t, cl, healthEvent("u-1", seq))
	}
	reqs := rc.WaitFor(t, 6, 20*time.Second)
	time.Sleep(200 * time.Millisecond) // nothing more may arrive
	reqs = rc.Requests()

	var customBodies, lambdaBodies []string
	for _, r := range reqs {
		switch {
		case r.Path == "/custom/u-1" && r.Method == "POST":
			customBodies = append(customBodies, string(r.Body))
			if r.Headers["Content-Type"] != "application/json" || !strings.HasPrefix(r.Headers["X-Kong-Signature"], "sha1=") {
				t.Errorf("custom request headers %v", r.Headers)
			}
		case r.Path == "/lambda" && r.Method == "PUT":
			lambdaBodies = append(lambdaBodies, string(r.Body))
			if r.Headers["Webhook-Signature"] == "" {
				t.Errorf("lambda request not signed: %v", r.Headers)
			}
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.Path)
		}
	}
	wantCustom := []string{
		`{"seq":"1","text":"api.internal:8000 is unhealthy"}`,
		`{"seq":"2","text":"api.internal:8000 is unhealthy"}`,
		`{"seq":"3","text":"api.internal:8000 is unhealthy"}`,
		`{"seq":"4","text":"api.internal:8000 is unhealthy"}`,
	}
	wantLambda := []string{
		`{"up":"u-1","seq":1,"event":"health","source":"balancer"}`,
		`{"up":"u-1","seq":3,"event":"health","source":"balancer"}`,
	}
	if strings.Join(customBodies, "\n") != strings.Join(wantCustom, "\n") {
		t.Errorf("webhook-custom bodies, in order:\n%s\nwant\n%s", strings.Join(customBodies, "\n"), strings.Join(wantCustom, "\n"))
	}
	if strings.Join(lambdaBodies, "\n") != strings.Join(wantLambda, "\n") {
		t.Errorf("lambda bodies, in order:\n%s\nwant\n%s", strings.Join(lambdaBodies, "\n"), strings.Join(wantLambda, "\n"))
	}
	// Stable ids, one per (event, hook).
	first := &hooks.Event{Source: "balancer", ID: []byte("ev-u-1-1")}
	for _, r := range reqs {
		var want string
		switch {
		case r.Path == "/custom/u-1" && strings.Contains(string(r.Body), `"seq":"1"`):
			want = sinks.MessageID(custom.ID, first)
		case r.Path == "/lambda" && strings.Contains(string(r.Body), `"seq":1,`):
			want = sinks.MessageID(lambda.ID, first)
		default:
			continue
		}
		if r.Headers["Webhook-Id"] != want {
			t.Errorf("%s: webhook-id = %q, want %q", r.Path, r.Headers["Webhook-Id"], want)
		}
	}
}
