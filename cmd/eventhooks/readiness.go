package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/processor"
)

// Broker reachability for /readyz: the consumer group stays "joined" until its session
// times out (45 s by default) when every broker is gone, so readiness also asks the
// brokers themselves.
const (
	brokerProbeEvery   = 2 * time.Second
	brokerProbeTimeout = 2 * time.Second
	// brokerDownAfter is how long without a broker answer turns /readyz to 503.
	brokerDownAfter = 5 * time.Second
)

// brokerProbe pings the brokers (an ApiVersions request to any of them) every
// brokerProbeEvery and remembers when one last answered.
type brokerProbe struct {
	cl  *kgo.Client
	now func() time.Time

	mu     sync.Mutex
	lastOK time.Time
	err    error
}

func newBrokerProbe(cl *kgo.Client) *brokerProbe {
	return &brokerProbe{cl: cl, now: time.Now, lastOK: time.Now()} // the topics were just bootstrapped
}

// run probes until ctx is done.
func (b *brokerProbe) run(ctx context.Context) error {
	t := time.NewTicker(brokerProbeEvery)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, brokerProbeTimeout)
		err := b.cl.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		b.mu.Lock()
		if err == nil {
			b.lastOK, b.err = b.now(), nil
		} else {
			b.err = err
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// down returns why no broker counts as reachable, or "".
func (b *brokerProbe) down() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		return ""
	}
	since := b.now().Sub(b.lastOK)
	if since < brokerDownAfter {
		return ""
	}
	return fmt.Sprintf("no Kafka broker answered for %s: %v", since.Truncate(time.Second), b.err)
}

// readiness is /readyz: hooks loaded, consumer group joined, a broker reachable.
func readiness(store *hooks.Store, proc *processor.Processor, probe *brokerProbe) func() (bool, string) {
	return func() (bool, string) {
		select {
		case <-store.Loaded():
		default:
			return false, "hooks not loaded yet"
		}
		if probe != nil {
			if reason := probe.down(); reason != "" {
				return false, reason
			}
		}
		if !proc.Joined() {
			return false, "consumer group not joined yet"
		}
		return true, ""
	}
}
