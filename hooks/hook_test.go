package hooks

import (
	"testing"
	"time"
)

func TestRetryPolicy(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   *Retry
		want Retry
	}{
		{"unset", nil, Retry{DefaultMaxAttempts, DefaultInitialBackoffMs, DefaultMaxBackoffMs}},
		{"zeros and negatives", &Retry{0, -1, -5}, Retry{DefaultMaxAttempts, DefaultInitialBackoffMs, DefaultMaxBackoffMs}},
		{"as set", &Retry{3, 10, 50}, Retry{3, 10, 50}},
		{"above the bound", &Retry{3, 1 << 62, 1 << 62}, Retry{3, MaxBackoffMs, MaxBackoffMs}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &Hook{Retry: tt.in}
			if got := h.RetryPolicy(); got != tt.want {
				t.Errorf("RetryPolicy() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRetryPolicyOfValidatedHookIsItsRetry(t *testing.T) {
	h := &Hook{Source: "s", Handler: HandlerLog, Retry: &Retry{MaxBackoffMs: 100}}
	if err := Validate(h, nil, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if got := h.RetryPolicy(); got != *h.Retry {
		t.Errorf("RetryPolicy() = %+v, want the validated %+v", got, *h.Retry)
	}
}

func TestAttemptTimeout(t *testing.T) {
	if got := (&Hook{}).AttemptTimeout(); got != DefaultTimeoutMs*time.Millisecond {
		t.Errorf("unset: %s", got)
	}
	if got := (&Hook{TimeoutMs: 250}).AttemptTimeout(); got != 250*time.Millisecond {
		t.Errorf("250 ms: %s", got)
	}
}
