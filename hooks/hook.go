package hooks

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Handler names, as Kong spells them.
const (
	HandlerWebhook       = "webhook"
	HandlerWebhookCustom = "webhook-custom"
	HandlerLog           = "log"
	HandlerLambda        = "lambda"
)

// Ordering modes (extension).
const (
	// OrderingKey blocks an entity key while one of its deliveries is failing.
	OrderingKey = "key"
	// OrderingNone parks failing deliveries and lets the key move on.
	OrderingNone = "none"
)

// Snooze scopes (extension).
const (
	// ScopeKey keeps gate state per (hook, entity key).
	ScopeKey = "key"
	// ScopeHook keeps one gate state per hook, as Kong does.
	ScopeHook = "hook"
)

// Defaults for the extension fields.
const (
	DefaultTimeoutMs        = 10_000
	DefaultMaxAttempts      = 10
	DefaultInitialBackoffMs = 500
	DefaultMaxBackoffMs     = 60_000
)

// Bounds of the numeric fields. Validate refuses a hook outside them (a schema violation
// naming the field) and Clamp brings a stored hook written by an older version within
// them, so that no value can overflow a time.Duration or hold a partition too long.
const (
	// MaxRetryAttempts bounds retry.max_attempts: with the backoff capped below, 100
	// attempts already span days of retrying one event.
	MaxRetryAttempts = 100
	// MaxBackoffMs bounds retry.initial_backoff_ms and retry.max_backoff_ms (24 h).
	MaxBackoffMs = 24 * 60 * 60 * 1000
	// MaxTimeoutMs bounds timeout_ms (30 s). On a rebalance a consumer lets its in-flight
	// deliveries finish before it gives its partitions up, and the whole rebalance must
	// fit in the group's rebalance timeout (franz-go's default, 60 s); half of it is left
	// for the commit and the rest of the revoke.
	MaxTimeoutMs = 30_000
	// MaxSnoozeSeconds bounds snooze (365 days): a longer window is on_change in effect,
	// and windows stay far from overflowing a time.Duration.
	MaxSnoozeSeconds = 365 * 24 * 60 * 60
	// MaxCreatedAt bounds created_at (unix seconds of 9999-12-31T23:59:59Z).
	MaxCreatedAt = 253_402_300_799
)

// Hook is the event-hook entity. Its JSON form is Kong's `event_hooks` entity plus optional
// extensions; Kong's fields keep Kong's meaning and null-ness.
type Hook struct {
	ID        string          `json:"id"`
	CreatedAt int64           `json:"created_at"`
	UpdatedAt int64           `json:"updated_at"`
	Source    string          `json:"source"`
	Event     *string         `json:"event"`
	Handler   string          `json:"handler"`
	OnChange  *bool           `json:"on_change"`
	Snooze    *int64          `json:"snooze"`
	Config    json.RawMessage `json:"config"`

	Name      *string  `json:"name"`
	Tags      []string `json:"tags"`
	Enabled   *bool    `json:"enabled"`
	Ordering  string   `json:"ordering"`
	Retry     *Retry   `json:"retry"`
	TimeoutMs int64    `json:"timeout_ms"`
	// RateLimit caps the hook's attempts per second on this instance (extension).
	RateLimit *RateLimit `json:"rate_limit"`
	// MaxInFlight caps the hook's attempts in flight at once on this instance; 0: no cap
	// (extension).
	MaxInFlight int `json:"max_in_flight"`
	// LogRequestBody puts the first bytes of each request body in the attempt log
	// (extension; default false: the log keeps only the response's).
	LogRequestBody bool `json:"log_request_body"`
	// AutoDisableAfter disables the hook once every attempt of it has failed for this
	// many seconds (extension; 0: never).
	AutoDisableAfter int64 `json:"auto_disable_after"`
	// DisabledReason says why eventhooks disabled the hook (auto_disable_after): set with
	// enabled false, cleared when the hook is enabled again.
	DisabledReason *string `json:"disabled_reason"`
	SnoozeScope    string  `json:"snooze_scope"`
	// Secrets lists the signing secrets: the current one (config.secret) first, then the
	// previous ones a rotation keeps signing until they expire (see Rotate).
	Secrets []Secret `json:"secrets"`

	// Revision is the hooks-topic offset this version was read from; set by the Store.
	Revision int64 `json:"-"`
}

// Retry is the per-hook retry policy (extension). A field left at 0 takes its default,
// bounded by the other backoff field: initial_backoff_ms defaults to
// min(DefaultInitialBackoffMs, max_backoff_ms) and max_backoff_ms to
// max(DefaultMaxBackoffMs, initial_backoff_ms), so initial ≤ max always holds.
type Retry struct {
	MaxAttempts      int   `json:"max_attempts"`
	InitialBackoffMs int64 `json:"initial_backoff_ms"`
	MaxBackoffMs     int64 `json:"max_backoff_ms"`
}

// RateLimit is a hook's rate limit: PerSecond attempts a second on average, Burst at
// once after a quiet spell (0: PerSecond rounded up).
type RateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

// BurstOrDefault is Burst, or PerSecond rounded up (at least 1) when Burst is 0.
func (r *RateLimit) BurstOrDefault() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(1, int(math.Ceil(r.PerSecond)))
}

// EventName returns the subscribed event, "" meaning every event of the source.
func (h *Hook) EventName() string {
	if h.Event == nil {
		return ""
	}
	return *h.Event
}

// IsEnabled reports whether the hook fires (default true).
func (h *Hook) IsEnabled() bool { return h.Enabled == nil || *h.Enabled }

// SnoozeSeconds returns the snooze window, 0 when unset.
func (h *Hook) SnoozeSeconds() int64 {
	if h.Snooze == nil {
		return 0
	}
	return *h.Snooze
}

// ChangeOnly reports whether on_change is set.
func (h *Hook) ChangeOnly() bool { return h.OnChange != nil && *h.OnChange }

// Timeout returns the per-delivery timeout as stored (0 when unset); see AttemptTimeout.
func (h *Hook) Timeout() time.Duration { return time.Duration(h.TimeoutMs) * time.Millisecond }

// AttemptTimeout returns how long one delivery attempt may take: timeout_ms, or
// DefaultTimeoutMs when it is unset (a hook that did not go through Validate).
func (h *Hook) AttemptTimeout() time.Duration {
	if t := h.Timeout(); t > 0 {
		return t
	}
	return DefaultTimeoutMs * time.Millisecond
}

// RetryPolicy returns the retry policy deliveries follow, whatever the hook holds: a field
// unset or negative takes its default (DefaultMaxAttempts, DefaultInitialBackoffMs,
// DefaultMaxBackoffMs) and both backoffs are at most MaxBackoffMs, so a hook stored by an
// older version cannot overflow a duration. For a hook that went through Validate it is
// its Retry as stored.
func (h *Hook) RetryPolicy() Retry {
	r := Retry{MaxAttempts: DefaultMaxAttempts, InitialBackoffMs: DefaultInitialBackoffMs, MaxBackoffMs: DefaultMaxBackoffMs}
	if h.Retry != nil {
		if h.Retry.MaxAttempts > 0 {
			r.MaxAttempts = h.Retry.MaxAttempts
		}
		if h.Retry.InitialBackoffMs > 0 {
			r.InitialBackoffMs = h.Retry.InitialBackoffMs
		}
		if h.Retry.MaxBackoffMs > 0 {
			r.MaxBackoffMs = h.Retry.MaxBackoffMs
		}
	}
	r.InitialBackoffMs = min(r.InitialBackoffMs, MaxBackoffMs)
	r.MaxBackoffMs = min(r.MaxBackoffMs, MaxBackoffMs)
	return r
}

// Version identifies one revision of a hook: compiled artefacts are cached per version.
func (h *Hook) Version() string { return h.ID + "@" + strconv.FormatInt(h.Revision, 10) }

// Clone returns a deep copy, so a caller may change it without touching a snapshot.
func (h *Hook) Clone() *Hook {
	c := *h
	c.Config = append(json.RawMessage(nil), h.Config...)
	c.Tags = append([]string(nil), h.Tags...)
	c.Secrets = cloneSecrets(h.Secrets)
	if h.Retry != nil {
		r := *h.Retry
		c.Retry = &r
	}
	if h.RateLimit != nil {
		r := *h.RateLimit
		c.RateLimit = &r
	}
	return &c
}

// AutoDisabled returns a copy of h disabled with reason, as of now.
func (h *Hook) AutoDisabled(reason string, now time.Time) *Hook {
	c := h.Clone()
	off := false
	c.Enabled, c.DisabledReason, c.UpdatedAt = &off, &reason, now.Unix()
	return c
}

// Clamp brings the numeric fields of a hook read from the hooks topic within the bounds
// Validate enforces (a hook written by an older version may hold any int64): values
// above a bound become the bound, negative ones 0 (unset: the default), and an
// initial_backoff_ms above max_backoff_ms becomes max_backoff_ms. It
// returns the paths of the fields it changed, nil when the hook was within bounds.
func (h *Hook) Clamp() []string {
	var changed []string
	clamp := func(path string, v *int64, hi int64) {
		switch {
		case *v < 0:
			*v = 0
		case *v > hi:
			*v = hi
		default:
			return
		}
		changed = append(changed, path)
	}
	clamp("timeout_ms", &h.TimeoutMs, MaxTimeoutMs)
	if h.Snooze != nil {
		s := *h.Snooze
		clamp("snooze", &s, MaxSnoozeSeconds)
		h.Snooze = &s
	}
	if r := h.Retry; r != nil {
		attempts := int64(r.MaxAttempts)
		clamp("retry.max_attempts", &attempts, MaxRetryAttempts)
		r.MaxAttempts = int(attempts)
		clamp("retry.initial_backoff_ms", &r.InitialBackoffMs, MaxBackoffMs)
		clamp("retry.max_backoff_ms", &r.MaxBackoffMs, MaxBackoffMs)
		if r.MaxBackoffMs > 0 && r.InitialBackoffMs > r.MaxBackoffMs {
			r.InitialBackoffMs = r.MaxBackoffMs
			changed = append(changed, "retry.initial_backoff_ms")
		}
	}
	return changed
}

// fillDefaults sets the fields left at 0 to their defaults (see Retry).
func (r *Retry) fillDefaults() {
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.InitialBackoffMs == 0 {
		r.InitialBackoffMs = DefaultInitialBackoffMs
		if r.MaxBackoffMs > 0 {
			r.InitialBackoffMs = min(r.InitialBackoffMs, r.MaxBackoffMs)
		}
	}
	if r.MaxBackoffMs == 0 {
		r.MaxBackoffMs = max(DefaultMaxBackoffMs, r.InitialBackoffMs)
	}
}

// applyDefaults fills the extension fields a client left out and the server fields.
func (h *Hook) applyDefaults(now time.Time) {
	if h.ID == "" {
		h.ID = uuid.NewString()
	}
	if h.CreatedAt == 0 {
		h.CreatedAt = now.Unix()
	}
	h.UpdatedAt = now.Unix()
	if h.Enabled == nil {
		t := true
		h.Enabled = &t
	}
	if *h.Enabled {
		h.DisabledReason = nil
	}
	if h.Ordering == "" {
		h.Ordering = OrderingKey
	}
	if h.SnoozeScope == "" {
		h.SnoozeScope = ScopeKey
	}
	if h.TimeoutMs == 0 {
		h.TimeoutMs = DefaultTimeoutMs
	}
	if h.Retry == nil {
		h.Retry = &Retry{}
	}
	h.Retry.fillDefaults()
	if h.Tags == nil {
		h.Tags = []string{}
	}
}
