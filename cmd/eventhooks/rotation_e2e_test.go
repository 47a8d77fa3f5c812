package main

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // X-Kong-Signature is HMAC-SHA1
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
	"github.com/eventhooks/eventhooks/sinks"
)

const (
	rotOldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rotNewSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	// rotWindow is the overlap asked for: short, so that its end is seen.
	rotWindow = 3
)

// signedRequest is a delivered request as a Standard Webhooks receiver checks it.
type signedRequest struct {
	seq        int
	ts         int64
	signatures int
	oldOK      bool // a receiver holding the old secret accepts it
	newOK      bool // a receiver holding the new secret accepts it
	kongNew    bool // X-Kong-Signature is the new secret's
}

func checkSigned(t *testing.T, r *testkit.Request) signedRequest {
	t.Helper()
	h := map[string]string{}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = v
	}
	id, ts, sig := h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", ts, err)
	}
	mac := hmac.New(sha1.New, []byte(rotNewSecret))
	mac.Write(r.Body)
	return signedRequest{
		seq: seqOf(r.Body), ts: unix, signatures: len(strings.Fields(sig)),
		oldOK:   sinks.VerifyStandard(rotOldSecret, id, ts, r.Body, sig) == nil,
		newOK:   sinks.VerifyStandard(rotNewSecret, id, ts, r.Body, sig) == nil,
		kongNew: h["x-kong-signature"] == "sha1="+hex.EncodeToString(mac.Sum(nil)),
	}
}

// TestRotateSecretWhileEventsFlow rotates a hook's secret through the Admin API of a
// running eventhooks (dev: embedded broker) while events flow to a real receiver, and
// checks every request as Standard Webhooks receivers holding the old and the new secret
// would: until the overlap ends, each request signed after the rotation is accepted by
// both (so a receiver may switch secrets at any moment of the window without refusing
// one); from its end, only by the new one; X-Kong-Signature is the new secret's; and no
// event is missed. The Admin API shows no secret value unless asked.
func TestRotateSecretWhileEventsFlow(t *testing.T) {
	kafka := testkit.FreeAddr(t)
	rc := testkit.NewReceiver(t)
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "2")
	hook := p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+rc.URL+
		`/rot","secret":"`+rotOldSecret+`"}}`)
	path := "/event-hooks/" + hook["id"].(string)

	sent := 0
	produce := func() {
		produceHealthFrom(t, kafka, sent, 5, 5)
		sent += 5
	}
	produce()
	rc.WaitFor(t, 5, 60*time.Second)

	code, rotated := p.call(t, "POST", path+"/rotate-secret", `{"secret":"`+rotNewSecret+`","expire_previous_after":`+strconv.Itoa(rotWindow)+`}`)
	if code != 200 {
		t.Fatalf("rotate: %d %v", code, rotated)
	}
	secrets, _ := rotated["secrets"].([]any)
	if len(secrets) != 2 {
		t.Fatalf("secrets after rotation: %v", rotated["secrets"])
	}
	expiresAt := int64(secrets[1].(map[string]any)["expires_at"].(float64))
	assertNoSecretShown(t, p, path)

	// Events keep flowing until requests signed after the window have arrived.
	testkit.Eventually(t, 120*time.Second, "requests signed after the window", func() bool {
		produce()
		time.Sleep(100 * time.Millisecond)
		n := 0
		for _, r := range rc.Requests() {
			if checkSigned(t, r).ts >= expiresAt+1 {
				n++
			}
		}
		return n >= 5
	})
	testkit.Eventually(t, 60*time.Second, "every event delivered", func() bool { return distinctBodies(rc) == sent })

	var during, after int
	for _, r := range rc.Requests() {
		s := checkSigned(t, r)
		switch {
		case !s.newOK: // signed before the rotation reached the hook's compiled version
			if !s.oldOK || s.signatures != 1 || s.ts >= expiresAt {
				t.Errorf("event %d (ts %d, window ends %d): old-only request %+v", s.seq, s.ts, expiresAt, s)
			}
		case !s.kongNew:
			t.Errorf("event %d: X-Kong-Signature is not the new secret's", s.seq)
		case s.ts < expiresAt:
			during++
			if !s.oldOK || s.signatures != 2 {
				t.Errorf("event %d signed in the window (ts %d < %d): %+v, want both secrets accepted", s.seq, s.ts, expiresAt, s)
			}
		default:
			after++
			if s.oldOK || s.signatures != 1 {
				t.Errorf("event %d signed after the window (ts %d >= %d): %+v, want only the new secret accepted", s.seq, s.ts, expiresAt, s)
			}
		}
	}
	if during == 0 || after == 0 {
		t.Errorf("%d requests signed during the window, %d after: want both", during, after)
	}
	t.Logf("%d events; %d requests signed with both secrets, %d with the new one only", sent, during, after)
}

// assertNoSecretShown checks that GET shows the secrets' ids but no value, and that
// ?reveal=true shows them.
func assertNoSecretShown(t *testing.T, p *proc, path string) {
	t.Helper()
	for _, c := range []struct {
		query string
		shown bool
	}{{"", false}, {"?reveal=true", true}} {
		code, got := p.call(t, "GET", path+c.query, "")
		raw, _ := json.Marshal(got)
		for _, secret := range []string{rotOldSecret, rotNewSecret} {
			if code != 200 || strings.Contains(string(raw), strings.TrimPrefix(secret, "whsec_")) != c.shown {
				t.Errorf("GET %s%s: %d, secret shown %v, want %v: %s", path, c.query, code, !c.shown, c.shown, raw)
			}
		}
	}
}
