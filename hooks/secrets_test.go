package hooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
	secretC = "whsec_dGVzdA=="
)

// signedHook is a validated webhook hook with secret, created at t0.
func signedHook(t *testing.T, secret string, t0 time.Time) *Hook {
	t.Helper()
	h, err := ParseHook([]byte(`{"source":"crud","handler":"webhook","config":{"url":"https://example.com/","secret":"` + secret + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(h, nil, t0); err != nil {
		t.Fatal(err)
	}
	return h
}

// ids lists the secret ids of h, "id@expiry" for a previous one.
func ids(h *Hook) string {
	var out []string
	for _, s := range h.Secrets {
		id := s.ID[:4]
		if s.ExpiresAt != nil {
			id += "@" + time.Unix(*s.ExpiresAt, 0).UTC().Format("15:04")
		}
		out = append(out, id)
	}
	return strings.Join(out, " ")
}

// step is one rotation: to secret, with overlap (nil: the default).
type step struct {
	secret  string
	overlap *int64
}

func TestRotate(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a, b, c := SecretID(secretA)[:4], SecretID(secretB)[:4], SecretID(secretC)[:4]
	for _, tc := range []struct {
		name  string
		steps []step // step i at t0 + i minutes
		want  string
		err   string // field of the *SchemaError of the last step
	}{
		{name: "default window", steps: []step{{secretB, nil}}, want: b + " " + a + "@10:00"},
		{name: "one hour", steps: []step{{secretB, ptr(3600)}}, want: b + " " + a + "@11:00"},
		{name: "zero revokes at once", steps: []step{{secretB, ptr(0)}}, want: b},
		{name: "newest first", steps: []step{{secretB, ptr(3600)}, {secretC, ptr(7200)}}, want: c + " " + b + "@12:01 " + a + "@11:00"},
		{name: "a shorter window shortens older ones", steps: []step{{secretB, ptr(3600)}, {secretC, ptr(60)}}, want: c + " " + b + "@10:02 " + a + "@10:02"},
		{name: "zero revokes every previous one", steps: []step{{secretB, ptr(3600)}, {secretC, ptr(0)}}, want: c},
		{name: "the current secret", steps: []step{{secretA, nil}}, err: "secret"},
		{name: "a previous secret", steps: []step{{secretB, nil}, {secretA, nil}}, err: "secret"},
		{name: "negative window", steps: []step{{secretB, ptr(-1)}}, err: "expire_previous_after"},
		{name: "window too long", steps: []step{{secretB, ptr(MaxRotationOverlapSeconds + 1)}}, err: "expire_previous_after"},
		{name: "redacted value", steps: []step{{RedactedPrefix + "x", nil}}, err: "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := signedHook(t, secretA, t0)
			var err error
			for i, st := range tc.steps {
				err = rotateAt(h, st, t0.Add(time.Duration(i)*time.Minute))
			}
			var se *SchemaError
			switch {
			case tc.err != "" && (!errors.As(err, &se) || se.Fields[tc.err] == ""):
				t.Fatalf("err = %v, want a schema violation on %s", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && ids(h) != tc.want:
				t.Errorf("secrets = %s, want %s", ids(h), tc.want)
			}
		})
	}
}

func ptr(v int64) *int64 { return &v }

// rotateAt runs st at now and validates the result, as the Admin API does.
func rotateAt(h *Hook, st step, now time.Time) error {
	overlap := RotationRequest{ExpirePreviousAfter: st.overlap}.OverlapSeconds()
	if _, err := Rotate(h, st.secret, overlap, now); err != nil {
		return err
	}
	return Validate(h, nil, now)
}

func TestRotateLimitsPreviousSecrets(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := signedHook(t, secretA, t0)
	for i := range MaxPreviousSecrets + 1 {
		_, err := Rotate(h, "", 3600, t0)
		if i < MaxPreviousSecrets && err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		if i == MaxPreviousSecrets && !errors.Is(err, ErrSchema) {
			t.Fatalf("rotation past %d previous secrets: %v", MaxPreviousSecrets, err)
		}
	}
	if len(h.Secrets) != MaxPreviousSecrets+1 {
		t.Errorf("%d secrets", len(h.Secrets))
	}
	if gen := h.SigningSecret(); !strings.HasPrefix(gen, "whsec_") || len(gen) != len("whsec_")+44 {
		t.Errorf("generated secret %q", gen)
	}
}

// TestSecretsFollowConfig: Validate keeps "secrets" in step with config.secret and drops
// what has expired; the view hides every value unless revealed.
func TestSecretsFollowConfig(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	h := signedHook(t, secretA, t0)
	if _, err := Rotate(h, secretB, 60, t0); err != nil {
		t.Fatal(err)
	}
	if err := Validate(h, nil, t0.Add(59*time.Second)); err != nil || len(h.Secrets) != 2 {
		t.Fatalf("within the window: %v, %+v", err, h.Secrets)
	}

	v := h.View(t0, false)
	if v.SigningSecret() != RedactedPrefix+SecretID(secretB) || v.Secrets[1].Value != "" || h.Secrets[1].Value != secretA {
		t.Errorf("view: %s %+v (stored %+v)", v.Config, v.Secrets, h.Secrets)
	}
	if r := h.View(t0, true); r.SigningSecret() != secretB || r.Secrets[0].Value != secretB || r.Secrets[1].Value != secretA {
		t.Errorf("revealed view: %s %+v", r.Config, r.Secrets)
	}
	if v := h.View(t0.Add(time.Minute), false); len(v.Secrets) != 1 {
		t.Errorf("view after the window lists %+v", v.Secrets)
	}

	// The shown entity, sent back, keeps the secret and the previous ones.
	back := v.Clone()
	if err := back.CarrySecrets(h); err != nil || back.SigningSecret() != secretB || len(back.Secrets) != 2 {
		t.Fatalf("CarrySecrets: %v %s %+v", err, back.Config, back.Secrets)
	}

	if err := Validate(h, nil, t0.Add(time.Minute)); err != nil || len(h.Secrets) != 1 {
		t.Errorf("after the window: %v, %+v", err, h.Secrets)
	}
	h.Config = []byte(`{"url":"https://example.com/","secret":null}`)
	if err := Validate(h, nil, t0); err != nil || len(h.Secrets) != 0 {
		t.Errorf("secret removed: %v, %+v", err, h.Secrets)
	}
}

// TestViewOfAHookStoredWithoutSecrets: a hook an older version stored (no "secrets") is
// shown with its current secret listed, dated by updated_at.
func TestViewOfAHookStoredWithoutSecrets(t *testing.T) {
	h := signedHook(t, secretA, time.Unix(1_700_000_000, 0))
	h.Secrets = nil
	v := h.View(time.Unix(1_700_000_100, 0), false)
	if len(v.Secrets) != 1 || v.Secrets[0].ID != SecretID(secretA) || v.Secrets[0].CreatedAt != 1_700_000_000 || v.Secrets[0].Value != "" {
		t.Errorf("secrets = %+v", v.Secrets)
	}
}
