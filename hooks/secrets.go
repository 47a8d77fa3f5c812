package hooks

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Secret rotation. A hook's current signing secret is config.secret (Kong's field); the
// extension field "secrets" lists it and the previous secrets that still sign during a
// rotation's overlap window, with their values, so that every instance reading the
// hooks topic signs with the same set. The Admin API shows the list without values
// (see View).

// Rotation bounds.
const (
	// DefaultRotationOverlapSeconds is how long a replaced secret keeps signing when a
	// rotation does not say (24 h).
	DefaultRotationOverlapSeconds = 24 * 60 * 60
	// MaxRotationOverlapSeconds bounds expire_previous_after (30 days).
	MaxRotationOverlapSeconds = 30 * 24 * 60 * 60
	// MaxPreviousSecrets bounds the secrets signing besides the current one: each adds a
	// signature to every request.
	MaxPreviousSecrets = 4
)

// RedactedPrefix starts the value the Admin API shows in place of config.secret. A write
// that sends back exactly the value shown keeps the stored secret; any other value with
// this prefix is refused, so that a redacted value never becomes a secret.
const RedactedPrefix = "redacted:"

// Secret is one signing secret of a hook.
type Secret struct {
	// ID names the secret without revealing it (see SecretID).
	ID string `json:"id"`
	// CreatedAt is when it became the hook's current secret, in unix seconds.
	CreatedAt int64 `json:"created_at"`
	// ExpiresAt is when a previous secret stops signing, in unix seconds; nil for the
	// current secret.
	ExpiresAt *int64 `json:"expires_at"`
	// Value is the secret. Stored for previous secrets only (the current one is
	// config.secret); the Admin API shows values only when asked.
	Value string `json:"secret,omitempty"`
}

// ActiveAt reports whether a previous secret still signs at unix seconds now; the current
// secret (ExpiresAt nil) always does.
func (s *Secret) ActiveAt(now int64) bool { return s.ExpiresAt == nil || now < *s.ExpiresAt }

// SecretID returns the id a secret is listed under: 16 hex digits of a SHA-256 of it. It
// identifies a secret an operator holds; it does not protect a guessable one.
func SecretID(secret string) string {
	sum := sha256.Sum256([]byte("eventhooks secret id\x00" + secret))
	return hex.EncodeToString(sum[:8])
}

// GenerateSecret returns a new Standard Webhooks secret: "whsec_" and the base64 of 32
// random bytes.
func GenerateSecret() string {
	var key [32]byte
	_, _ = rand.Read(key[:]) // never fails: crypto/rand.Read panics rather than return short
	return "whsec_" + base64.StdEncoding.EncodeToString(key[:])
}

// SigningSecret returns config.secret, "" when the hook has none.
func (h *Hook) SigningSecret() string {
	var c struct {
		Secret *string `json:"secret"`
	}
	if json.Unmarshal(h.Config, &c) != nil || c.Secret == nil {
		return ""
	}
	return *c.Secret
}

// setSigningSecret sets config.secret, leaving the other config members as they are.
func (h *Hook) setSigningSecret(secret string) error {
	cfg := map[string]json.RawMessage{}
	if len(h.Config) > 0 && string(h.Config) != "null" {
		if err := json.Unmarshal(h.Config, &cfg); err != nil {
			return fmt.Errorf("hook %s: config is not an object: %w", h.ID, err)
		}
	}
	v, err := json.Marshal(secret)
	if err != nil {
		return fmt.Errorf("hook %s: cannot encode the secret: %w", h.ID, err)
	}
	cfg["secret"] = v
	out, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("hook %s: cannot encode config: %w", h.ID, err)
	}
	h.Config = out
	return nil
}

// redacted returns what the Admin API shows in place of secret.
func redacted(secret string) string { return RedactedPrefix + SecretID(secret) }

// CarrySecrets prepares a hook written through the Admin API from the stored version old
// (nil when there is none): "secrets" is the server's to keep, so what the client sent
// there is replaced by old's, and a config.secret sent back redacted as shown stands for
// old's secret.
func (h *Hook) CarrySecrets(old *Hook) error {
	h.Secrets = nil
	if old == nil {
		return nil
	}
	h.Secrets = cloneSecrets(old.Secrets)
	if cur := old.SigningSecret(); cur != "" && h.SigningSecret() == redacted(cur) {
		return h.setSigningSecret(cur)
	}
	return nil
}

// checkSecret refuses a redacted value as config.secret (CarrySecrets has replaced the
// one that stands for the stored secret).
func checkSecret(h *Hook, e *SchemaError) {
	if strings.HasPrefix(h.SigningSecret(), RedactedPrefix) {
		e.add("config.secret", "a redacted value: send the secret itself, or exactly the value the Admin API showed to keep the stored one")
	}
}

// syncSecrets makes "secrets" agree with config.secret at now: expired previous secrets
// are dropped, and a config.secret that is not the listed current one (a hook without
// the list, or a secret replaced by PUT or PATCH, which revokes the previous ones at
// once as in Kong) starts a new list.
func syncSecrets(h *Hook, now time.Time) {
	cur := h.SigningSecret()
	if cur == "" {
		h.Secrets = []Secret{}
		return
	}
	if len(h.Secrets) == 0 || h.Secrets[0].ID != SecretID(cur) || h.Secrets[0].ExpiresAt != nil {
		h.Secrets = []Secret{{ID: SecretID(cur), CreatedAt: now.Unix()}}
		return
	}
	h.Secrets = activeSecrets(h.Secrets, now.Unix())
}

// activeSecrets returns the secrets of list that sign at unix seconds now, in a new slice.
func activeSecrets(list []Secret, now int64) []Secret {
	out := make([]Secret, 0, len(list))
	for _, s := range list {
		if s.ActiveAt(now) {
			out = append(out, s)
		}
	}
	return out
}

func cloneSecrets(list []Secret) []Secret {
	if list == nil {
		return nil
	}
	out := make([]Secret, len(list))
	for i, s := range list {
		if s.ExpiresAt != nil {
			at := *s.ExpiresAt
			s.ExpiresAt = &at
		}
		out[i] = s
	}
	return out
}

// RotationRequest is the body of a rotation (POST /event-hooks/{id}/rotate-secret);
// every field is optional.
type RotationRequest struct {
	// Secret is the new secret; "" generates one (GenerateSecret).
	Secret string `json:"secret"`
	// ExpirePreviousAfter is how many seconds the replaced secret keeps signing; nil
	// means DefaultRotationOverlapSeconds, 0 revokes it (and any older one) at once.
	ExpirePreviousAfter *int64 `json:"expire_previous_after"`
}

// ParseRotation decodes a rotation body strictly (unknown fields and wrong types are
// schema violations naming the field); an empty body asks for every default.
func ParseRotation(body []byte) (RotationRequest, error) {
	var r RotationRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return r, nil
	}
	return r, decodeStrict(body, &r)
}

// OverlapSeconds returns how long the replaced secret keeps signing.
func (r RotationRequest) OverlapSeconds() int64 {
	if r.ExpirePreviousAfter == nil {
		return DefaultRotationOverlapSeconds
	}
	return *r.ExpirePreviousAfter
}

// Rotate makes secret the signing secret of h (a GenerateSecret one when secret is "")
// and keeps the secret it replaces signing for overlapSeconds: until then every request
// carries a Standard Webhooks signature per secret, newest first. Older previous secrets
// keep their own expiry but none signs past the new window, so 0 revokes every previous
// secret at once. It returns the new secret; a request it cannot honour is a
// *SchemaError naming "secret" or "expire_previous_after". h still needs Validate.
func Rotate(h *Hook, secret string, overlapSeconds int64, now time.Time) (string, error) {
	e := &SchemaError{}
	if h.Handler == HandlerLog {
		e.add("handler", "a log hook does not sign: it has no secret to rotate")
	}
	if overlapSeconds < 0 || overlapSeconds > MaxRotationOverlapSeconds {
		e.add("expire_previous_after", fmt.Sprintf("value should be between 0 and %d seconds (30 days)", MaxRotationOverlapSeconds))
	}
	if secret == "" {
		secret = GenerateSecret()
	}
	if strings.HasPrefix(secret, RedactedPrefix) {
		e.add("secret", "a redacted value is not a secret")
	}
	if isSecretOf(h, secret, now.Unix()) {
		e.add("secret", "is already one of the hook's secrets")
	}
	if err := e.orNil(); err != nil {
		return "", err
	}
	prev, err := previousAfterRotation(h, now.Unix(), now.Unix()+overlapSeconds)
	if err != nil {
		return "", err
	}
	if err := h.setSigningSecret(secret); err != nil {
		return "", err
	}
	h.Secrets = append([]Secret{{ID: SecretID(secret), CreatedAt: now.Unix()}}, prev...)
	return secret, nil
}

// isSecretOf reports whether secret is h's current secret or a previous one still signing.
func isSecretOf(h *Hook, secret string, now int64) bool {
	if secret == h.SigningSecret() {
		return true
	}
	for _, s := range activeSecrets(h.Secrets, now) {
		if s.ID == SecretID(secret) {
			return true
		}
	}
	return false
}

// previousAfterRotation returns the previous secrets of h once its current secret is
// replaced at now with an overlap until `until`, newest first.
func previousAfterRotation(h *Hook, now, until int64) ([]Secret, error) {
	var prev []Secret
	if cur := h.SigningSecret(); cur != "" && until > now {
		since := h.UpdatedAt
		if len(h.Secrets) > 0 && h.Secrets[0].ID == SecretID(cur) {
			since = h.Secrets[0].CreatedAt
		}
		prev = append(prev, Secret{ID: SecretID(cur), CreatedAt: since, ExpiresAt: &until, Value: cur})
	}
	for _, s := range cloneSecrets(h.Secrets) {
		if s.ExpiresAt == nil || !s.ActiveAt(now) || until <= now {
			continue
		}
		*s.ExpiresAt = min(*s.ExpiresAt, until)
		prev = append(prev, s)
	}
	if len(prev) > MaxPreviousSecrets {
		return nil, &SchemaError{Fields: map[string]string{"secret": fmt.Sprintf(
			"the hook already has %d previous secrets signing; wait until one expires, or rotate with expire_previous_after 0 "+
				"to revoke them", len(prev)-1)}}
	}
	return prev, nil
}

// View returns the hook as the Admin API shows it at now: only the secrets that still
// sign, and without any secret value — config.secret is replaced by a redacted value —
// unless reveal, when every listed secret shows its value.
func (h *Hook) View(now time.Time, reveal bool) *Hook {
	c := h.Clone()
	cur := h.SigningSecret()
	c.Secrets = activeSecrets(c.Secrets, now.Unix())
	if cur != "" && (len(c.Secrets) == 0 || c.Secrets[0].ID != SecretID(cur)) {
		// Stored before hooks listed their secrets: the current one, dated by updated_at.
		c.Secrets = append([]Secret{{ID: SecretID(cur), CreatedAt: h.UpdatedAt}}, c.Secrets...)
	}
	if reveal {
		if len(c.Secrets) > 0 && c.Secrets[0].ExpiresAt == nil {
			c.Secrets[0].Value = cur
		}
		return c
	}
	for i := range c.Secrets {
		c.Secrets[i].Value = ""
	}
	if cur != "" && c.setSigningSecret(redacted(cur)) != nil {
		c.Config = nil // unreachable for a stored hook; never show the secret
	}
	return c
}
