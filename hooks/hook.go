package hooks

import (
	"encoding/json"
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

	Name        *string  `json:"name"`
	Tags        []string `json:"tags"`
	Enabled     *bool    `json:"enabled"`
	Ordering    string   `json:"ordering"`
	Retry       *Retry   `json:"retry"`
	TimeoutMs   int64    `json:"timeout_ms"`
	SnoozeScope string   `json:"snooze_scope"`

	// Revision is the hooks-topic offset this version was read from; set by the Store.
	Revision int64 `json:"-"`
}

// Retry is the per-hook retry policy (extension).
type Retry struct {
	MaxAttempts      int   `json:"max_attempts"`
	InitialBackoffMs int64 `json:"initial_backoff_ms"`
	MaxBackoffMs     int64 `json:"max_backoff_ms"`
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

// Timeout returns the per-delivery timeout.
func (h *Hook) Timeout() time.Duration { return time.Duration(h.TimeoutMs) * time.Millisecond }

// Version identifies one revision of a hook: compiled artefacts are cached per version.
func (h *Hook) Version() string { return h.ID + "@" + strconv.FormatInt(h.Revision, 10) }

// Clone returns a deep copy, so a caller may change it without touching a snapshot.
func (h *Hook) Clone() *Hook {
	c := *h
	c.Config = append(json.RawMessage(nil), h.Config...)
	c.Tags = append([]string(nil), h.Tags...)
	if h.Retry != nil {
		r := *h.Retry
		c.Retry = &r
	}
	return &c
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
	if h.Retry.MaxAttempts == 0 {
		h.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if h.Retry.InitialBackoffMs == 0 {
		h.Retry.InitialBackoffMs = DefaultInitialBackoffMs
	}
	if h.Retry.MaxBackoffMs == 0 {
		h.Retry.MaxBackoffMs = DefaultMaxBackoffMs
	}
	if h.Tags == nil {
		h.Tags = []string{}
	}
}
