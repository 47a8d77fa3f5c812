package sinks

import (
	"testing"

	"github.com/eventhooks/eventhooks/hooks"
)

// TestHandlersTable checks that every handler hooks.Validate accepts has a complete entry.
func TestHandlersTable(t *testing.T) {
	for _, name := range []string{hooks.HandlerWebhook, hooks.HandlerWebhookCustom, hooks.HandlerLambda, hooks.HandlerLog} {
		spec := LookupHandler(name)
		if spec == nil {
			t.Fatalf("no entry for handler %q", name)
		}
		if spec.compile == nil || spec.testResult == nil || spec.BenchConfig == nil {
			t.Errorf("handler %q: incomplete entry %+v", name, spec)
		}
		if spec.Pingable != (name == hooks.HandlerWebhook) {
			t.Errorf("handler %q: Pingable = %v", name, spec.Pingable)
		}
	}
	if LookupHandler("nope") != nil {
		t.Error(`LookupHandler("nope") != nil`)
	}
}
