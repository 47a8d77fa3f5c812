package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eventhooks/eventhooks/hooks"
)

const (
	oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	newSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// createSigned creates a webhook hook signed with oldSecret.
func (e *testEnv) createSigned() string {
	e.t.Helper()
	return e.create(`{"source":"crud","event":"consumers","handler":"webhook","config":{"url":"https://example.com/hook","secret":"` + oldSecret + `"}}`)
}

// noSecretIn fails when body shows a secret value.
func noSecretIn(t *testing.T, what string, body []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(body), strings.TrimPrefix(s, "whsec_")) {
			t.Errorf("%s shows a secret: %s", what, body)
		}
	}
}

// secretsOf returns the "secrets" list of an entity.
func secretsOf(t *testing.T, entity map[string]any) []map[string]any {
	t.Helper()
	list, ok := entity["secrets"].([]any)
	if !ok {
		t.Fatalf("secrets = %#v", entity["secrets"])
	}
	out := make([]map[string]any, len(list))
	for i, s := range list {
		out[i] = s.(map[string]any)
	}
	return out
}

func TestRotateSecret(t *testing.T) {
	e := newSinksEnv(t)
	id := e.createSigned()
	path := "/event-hooks/" + id

	got := e.expect(http.StatusOK, "GET", path, "").json(t)
	if s := secretsOf(t, got); len(s) != 1 || s[0]["id"] != hooks.SecretID(oldSecret) || s[0]["created_at"] != 1.7e9 || s[0]["expires_at"] != nil {
		t.Errorf("secrets before rotation = %v", s)
	}
	if field(got, "config", "secret") != hooks.RedactedPrefix+hooks.SecretID(oldSecret) {
		t.Errorf("config.secret on GET = %v", field(got, "config", "secret"))
	}

	e.now.Add(100)
	rotated := e.expect(http.StatusOK, "POST", path+"/rotate-secret", `{"secret":"`+newSecret+`","expire_previous_after":3600}`).json(t)
	if field(rotated, "config", "secret") != newSecret {
		t.Errorf("rotation answer config.secret = %v, want the new secret", field(rotated, "config", "secret"))
	}
	s := secretsOf(t, rotated)
	if len(s) != 2 || s[0]["id"] != hooks.SecretID(newSecret) || s[0]["secret"] != newSecret || s[0]["expires_at"] != nil ||
		s[1]["id"] != hooks.SecretID(oldSecret) || s[1]["secret"] != oldSecret || s[1]["created_at"] != 1.7e9 ||
		s[1]["expires_at"] != 1.7e9+100+3600 {
		t.Errorf("secrets after rotation = %v", s)
	}

	// Every instance signs with what the hooks topic holds: the previous value is stored.
	stored, _ := e.store.Snapshot().Get(id)
	if stored.SigningSecret() != newSecret || len(stored.Secrets) != 2 || stored.Secrets[1].Value != oldSecret {
		t.Errorf("stored = %s %+v", stored.Config, stored.Secrets)
	}

	r := e.expect(http.StatusOK, "GET", path, "")
	noSecretIn(t, "GET", r.body, oldSecret, newSecret)
	if n := len(secretsOf(t, r.json(t))); n != 2 {
		t.Errorf("GET lists %d secrets, want 2", n)
	}
	list := e.expect(http.StatusOK, "GET", "/event-hooks", "")
	noSecretIn(t, "GET /event-hooks", list.body, oldSecret, newSecret)
	revealed := e.expect(http.StatusOK, "GET", path+"?reveal=true", "")
	if !strings.Contains(string(revealed.body), newSecret) || !strings.Contains(string(revealed.body), oldSecret) {
		t.Errorf("?reveal=true does not show the secrets: %s", revealed.body)
	}

	// The overlap ends with the clock: the old secret is no longer listed, nothing rewritten.
	e.now.Add(3600)
	if s := secretsOf(t, e.expect(http.StatusOK, "GET", path, "").json(t)); len(s) != 1 || s[0]["id"] != hooks.SecretID(newSecret) {
		t.Errorf("secrets after the window = %v", s)
	}
}

// TestRedactedSecretRoundTrips: the entity as GET shows it can be PUT and PATCHed back
// without losing the secret or a rotation's previous secrets; a new config.secret
// replaces them all at once, as in Kong.
func TestRedactedSecretRoundTrips(t *testing.T) {
	e := newSinksEnv(t)
	id := e.createSigned()
	path := "/event-hooks/" + id
	e.expect(http.StatusOK, "POST", path+"/rotate-secret", `{"secret":"`+newSecret+`"}`)

	shown := e.expect(http.StatusOK, "GET", path, "")
	e.expect(http.StatusOK, "PUT", path, string(shown.body))
	e.expect(http.StatusOK, "PATCH", path, `{"config":{"secret":"`+hooks.RedactedPrefix+hooks.SecretID(newSecret)+`"},"tags":["x"]}`)
	stored, _ := e.store.Snapshot().Get(id)
	if stored.SigningSecret() != newSecret || len(stored.Secrets) != 2 || stored.Secrets[1].Value != oldSecret ||
		*stored.Secrets[1].ExpiresAt != 1.7e9+hooks.DefaultRotationOverlapSeconds {
		t.Fatalf("after PUT and PATCH of the shown entity: %s %+v", stored.Config, stored.Secrets)
	}

	e.expect(http.StatusBadRequest, "PATCH", path, `{"config":{"secret":"`+hooks.RedactedPrefix+`0000000000000000"}}`)
	e.expect(http.StatusBadRequest, "POST", "/event-hooks", `{"source":"crud","handler":"webhook","config":{"url":"https://example.com/","secret":"redacted:x"}}`)

	e.expect(http.StatusOK, "PATCH", path, `{"config":{"secret":"whsec_dGVzdA=="}}`)
	stored, _ = e.store.Snapshot().Get(id)
	if len(stored.Secrets) != 1 || stored.Secrets[0].ID != hooks.SecretID("whsec_dGVzdA==") {
		t.Errorf("a replaced secret keeps previous ones: %+v", stored.Secrets)
	}
}

func TestRotateSecretRequests(t *testing.T) {
	e := newSinksEnv(t)
	id := e.createSigned()
	path := "/event-hooks/" + id + "/rotate-secret"
	logHook := e.create(`{"source":"crud","handler":"log"}`)
	for _, c := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"unknown hook", "/event-hooks/00000000-0000-0000-0000-000000000000/rotate-secret", "", http.StatusNotFound, ""},
		{"log hook", "/event-hooks/" + logHook + "/rotate-secret", "", http.StatusBadRequest, "handler"},
		{"negative window", path, `{"expire_previous_after":-1}`, http.StatusBadRequest, "expire_previous_after"},
		{"window over 30 days", path, `{"expire_previous_after":2592001}`, http.StatusBadRequest, "expire_previous_after"},
		{"window not an integer", path, `{"expire_previous_after":"1h"}`, http.StatusBadRequest, "expire_previous_after"},
		{"unknown field", path, `{"expire_after":1}`, http.StatusBadRequest, "expire_after"},
		{"the current secret", path, `{"secret":"` + oldSecret + `"}`, http.StatusBadRequest, "secret"},
		{"undecodable whsec_", path, `{"secret":"whsec_!!!"}`, http.StatusBadRequest, "config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := e.expect(c.status, "POST", c.path, c.body).json(t)
			if c.field != "" && field(got, "fields", c.field) == nil {
				t.Errorf("answer %v does not name %s", got, c.field)
			}
		})
	}

	// No body: a generated whsec_ secret, the old one signing for 24 h.
	got := e.expect(http.StatusOK, "POST", path, "").json(t)
	gen, _ := field(got, "config", "secret").(string)
	if !strings.HasPrefix(gen, "whsec_") || len(gen) != len("whsec_")+44 {
		t.Errorf("generated secret %q", gen)
	}
	if s := secretsOf(t, got); len(s) != 2 || s[1]["expires_at"] != 1.7e9+float64(hooks.DefaultRotationOverlapSeconds) {
		t.Errorf("secrets = %v", s)
	}

	// Rotations pile up to MaxPreviousSecrets; 0 revokes every previous secret at once.
	for range hooks.MaxPreviousSecrets - 1 {
		e.expect(http.StatusOK, "POST", path, `{"expire_previous_after":60}`)
	}
	e.expect(http.StatusBadRequest, "POST", path, `{"expire_previous_after":60}`)
	if s := secretsOf(t, e.expect(http.StatusOK, "POST", path, `expire_previous_after=0`, "Content-Type", "application/x-www-form-urlencoded").json(t)); len(s) != 1 {
		t.Errorf("after a rotation with 0: %v", s)
	}
}

func TestRotateSecretNeedsTheToken(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Token = "tok" })
	id := e.expect(http.StatusCreated, "POST", "/event-hooks", kongCreate, "Kong-Admin-Token", "tok").json(t)["id"].(string)
	e.expect(http.StatusUnauthorized, "POST", "/event-hooks/"+id+"/rotate-secret", "")
	e.expect(http.StatusUnauthorized, "GET", "/event-hooks/"+id+"?reveal=true", "")
	e.expect(http.StatusOK, "POST", "/event-hooks/"+id+"/rotate-secret", "", "Kong-Admin-Token", "tok")
}
