package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

// rotationVectors is testdata/rotation.json: one request signed with a new and an old
// secret by the Standard Webhooks reference library.
type rotationVectors struct {
	Old, New  string
	Body      string `json:"body"`
	ID        string `json:"webhook-id"`
	Timestamp string `json:"webhook-timestamp"`
	Signature string `json:"webhook-signature"`
	SigOld    string `json:"signature_old"`
	SigNew    string `json:"signature_new"`
}

func readRotationVectors(t testing.TB) rotationVectors {
	t.Helper()
	raw, err := readTestdata("rotation.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		rotationVectors
		Old string `json:"old_secret"`
		New string `json:"new_secret"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	v.rotationVectors.Old, v.rotationVectors.New = v.Old, v.New
	return v.rotationVectors
}

// rotatedSigner is the signer of a hook whose current secret is v.New, with v.Old
// signing until expiresAt.
func rotatedSigner(t testing.TB, v rotationVectors, expiresAt int64) *signer {
	t.Helper()
	newKey, err := StandardKey(v.New)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := StandardKey(v.Old)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(v.New, newKey, previousKey{key: oldKey, expiresAt: expiresAt})
}

func TestRotationVectors(t *testing.T) {
	v := readRotationVectors(t)
	ts, err := strconv.ParseInt(v.Timestamp, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	sg := rotatedSigner(t, v, ts+60)
	for _, c := range []struct {
		name string
		now  int64
		want string
	}{
		{"within the window", ts, v.Signature},
		{"last second of the window", ts + 59, v.Signature},
		{"window over", ts + 60, v.SigNew},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := string(sg.appendSignatures(nil, []byte(v.ID), []byte(v.Timestamp), []byte(v.Body), c.now))
			if got != c.want {
				t.Errorf("webhook-signature = %q, want %q", got, c.want)
			}
		})
	}
}

func TestVerifyStandard(t *testing.T) {
	v := readRotationVectors(t)
	for _, c := range []struct {
		name, secret, header string
		ok                   bool
	}{
		{"old secret, both signatures", v.Old, v.Signature, true},
		{"new secret, both signatures", v.New, v.Signature, true},
		{"new secret, new signature", v.New, v.SigNew, true},
		{"old secret, new signature only", v.Old, v.SigNew, false},
		{"unrelated secret", "whsec_dGVzdA==", v.Signature, false},
		{"other versions skipped", v.Old, "v2,abc " + v.SigOld, true},
		{"not base64", v.Old, "v1,!!!", false},
		{"empty header", v.Old, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyStandard(c.secret, v.ID, v.Timestamp, []byte(v.Body), c.header)
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrSignatureMismatch)) {
				t.Errorf("VerifyStandard = %v, want ok %v", err, c.ok)
			}
		})
	}
	if err := VerifyStandard(v.Old, v.ID, v.Timestamp, []byte(v.Body+" "), v.Signature); err == nil {
		t.Error("a changed body verified")
	}
	if err := VerifyStandard("whsec_", v.ID, v.Timestamp, []byte(v.Body), v.Signature); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("undecodable secret: %v, want ErrInvalidConfig", err)
	}
}

// TestVerifyStandardSingleSecretVectors checks the verifier on the single-secret vectors.
func TestVerifyStandardSingleSecretVectors(t *testing.T) {
	for _, c := range signatureCases(t) {
		if err := VerifyStandard(c.Secret, c.ID, c.Timestamp, []byte(c.Body), c.Signature); err != nil {
			t.Errorf("%s: %v", c.Secret, err)
		}
	}
}

// rotatedHook is a webhook hook to url whose secret was rotated from old to new with
// overlap seconds at time at, as stored after the Admin API's rotation.
func rotatedHook(t testing.TB, url, oldSecret, newSecret string, overlap int64, at time.Time) *hooks.Hook {
	t.Helper()
	h := webhookHook(t, url, `,"secret":`+quote(oldSecret), "")
	if _, err := hooks.Rotate(h, newSecret, overlap, at); err != nil {
		t.Fatal(err)
	}
	if err := hooks.Validate(h, nil, at); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRotatedHookSignsWithEverySecret delivers through a compiled sink: during the
// overlap window a request carries both Standard Webhooks signatures (either secret
// verifies it) and X-Kong-Signature with the new secret; once the window is over, only
// the new secret signs.
func TestRotatedHookSignsWithEverySecret(t *testing.T) {
	v := readRotationVectors(t)
	srv := startServer(t, nil)
	for _, c := range []struct {
		name      string
		rotatedAt time.Time
		oldValid  bool
	}{
		{"within the window", time.Now(), true},
		{"window over", time.Now().Add(-2 * time.Hour), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := rotatedHook(t, srv.url, v.Old, v.New, 3600, c.rotatedAt)
			s := mustCompile(t, h, newPool(t, PoolConfig{}))
			if res := s.Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), nil); !res.Delivered {
				t.Fatalf("result = %+v", res)
			}
			r := srv.next(t)
			sig := r.header("webhook-signature")
			if n := len(strings.Fields(sig)); n != map[bool]int{true: 2, false: 1}[c.oldValid] {
				t.Errorf("webhook-signature %q has %d signatures", sig, n)
			}
			id, ts := r.header("webhook-id"), r.header("webhook-timestamp")
			if err := VerifyStandard(v.New, id, ts, r.body, sig); err != nil {
				t.Errorf("new secret: %v", err)
			}
			if err := VerifyStandard(v.Old, id, ts, r.body, sig); (err == nil) != c.oldValid {
				t.Errorf("old secret: %v, want valid %v", err, c.oldValid)
			}
			if !verifyKong(v.New, r.body, r.header("X-Kong-Signature")) {
				t.Errorf("X-Kong-Signature %q is not the new secret's", r.header("X-Kong-Signature"))
			}
		})
	}
}

func TestBuildAndSignAllocsRotated(t *testing.T) {
	v := readRotationVectors(t)
	checkBuildAndSignAllocs(t, rotatedHook(t, "http://127.0.0.1:1/", v.Old, v.New, 3600, time.Now()))
}

// TestPingOfRotatedHookCarriesNoSecret: the ping body shows the hook's secrets list, but
// neither the current nor a previous secret.
func TestPingOfRotatedHookCarriesNoSecret(t *testing.T) {
	v := readRotationVectors(t)
	srv := startServer(t, nil)
	h := rotatedHook(t, srv.url+"/ping", v.Old, v.New, 3600, time.Now())
	if _, err := (Tester{Pool: newPool(t, PoolConfig{})}).Ping(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	r := srv.next(t)
	for _, secret := range []string{v.Old, v.New, strings.TrimPrefix(v.Old, "whsec_"), strings.TrimPrefix(v.New, "whsec_")} {
		if strings.Contains(string(r.body), secret) {
			t.Fatalf("ping body carries a secret: %s", r.body)
		}
	}
	if !strings.Contains(string(r.body), hooks.SecretID(v.Old)) {
		t.Errorf("ping body does not list the previous secret's id: %s", r.body)
	}
}

// BenchmarkBuildAndSignRotated is BenchmarkBuildAndSign for a hook in a rotation's
// window: two Standard Webhooks signatures per request.
func BenchmarkBuildAndSignRotated(b *testing.B) {
	v := readRotationVectors(b)
	s := mustCompile(b, rotatedHook(b, "http://127.0.0.1:1/", v.Old, v.New, 3600, time.Now()), newPool(b, PoolConfig{})).(*webhookSink)
	ev := benchEvent(b)
	unix := time.Now().Unix()
	b.ReportAllocs()
	for b.Loop() {
		buildAndSign(s, ev, unix)
	}
}
