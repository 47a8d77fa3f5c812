package processor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Auto-disable: a hook whose every attempt has failed for its auto_disable_after is
// disabled (Config.DisableHook writes it, with the reason, to the hooks topic) instead of
// filling the DLQ for ever. Each instance judges by the attempts it makes itself.

var familyAutoDisabled = describe(`eventhooks_hook_auto_disabled_total`,
	"Times a hook was disabled because every attempt failed for its auto_disable_after.")

func autoDisabledSeries(id string) string { return familyAutoDisabled + `{hook_id="` + id + `"}` }

// unregisterAutoDisabled removes hook id's auto-disable counter, when the hook is deleted.
func unregisterAutoDisabled(id string) { metrics.UnregisterMetric(autoDisabledSeries(id)) }

// failing tracks, for one compiled hook version, since when all its attempts failed.
type failing struct {
	mu        sync.Mutex
	since     time.Time // zero: the last attempt succeeded
	lastErr   error     // of the last attempt sent (a breaker's refusal says less)
	disabling bool      // a disable is on its way
}

// disableRequest asks the disable loop to disable a hook.
type disableRequest struct {
	id, reason string
}

// noteDelivered resets ch's failing time (a hook without auto_disable_after has none).
func (ch *compiledHook) noteDelivered() {
	if ch.hook.AutoDisableAfter == 0 {
		return
	}
	ch.failing.mu.Lock()
	ch.failing.since = time.Time{}
	ch.failing.mu.Unlock()
}

// noteFailed records a failed attempt of ch at now (sent: whether it reached the
// destination, rather than being refused by a breaker), and asks for the hook to be
// disabled once attempts have failed for its auto_disable_after.
func (p *Processor) noteFailed(ch *compiledHook, now time.Time, err error, sent bool) {
	after := time.Duration(ch.hook.AutoDisableAfter) * time.Second
	if after == 0 || p.cfg.DisableHook == nil {
		return
	}
	f := &ch.failing
	f.mu.Lock()
	defer f.mu.Unlock()
	if sent || f.lastErr == nil {
		f.lastErr = err
	}
	if f.since.IsZero() {
		f.since = now
		return
	}
	if now.Sub(f.since) < after || f.disabling {
		return
	}
	reason := fmt.Sprintf("auto-disabled at %s: every attempt failed since %s (auto_disable_after %d s); last error: %v",
		now.UTC().Format(time.RFC3339), f.since.UTC().Format(time.RFC3339), ch.hook.AutoDisableAfter, f.lastErr)
	select {
	case p.disables <- disableRequest{id: ch.hook.ID, reason: reason}:
		f.disabling = true
	default: // the loop is busy: the next failure asks again
	}
}

// disableLoop carries out disable requests until ctx ends. A write that fails is logged;
// the hook's next failure asks again.
func (p *Processor) disableLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-p.disables:
			if err := p.cfg.DisableHook(ctx, d.id, d.reason); err != nil {
				p.log.Warn("cannot auto-disable a failing hook", "hook_id", d.id, "err", err)
				if ch := p.hs.Load().byID[d.id]; ch != nil {
					ch.failing.mu.Lock()
					ch.failing.disabling = false
					ch.failing.mu.Unlock()
				}
				continue
			}
			metrics.GetOrCreateCounter(autoDisabledSeries(d.id)).Inc()
			p.log.Warn("hook disabled: every attempt failed for its auto_disable_after", "hook_id", d.id, "reason", d.reason)
		}
	}
}
