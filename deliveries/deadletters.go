package deliveries

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers the processor appends to a DLQ record (see the README's Delivery guarantees).
const (
	headerHookID   = "eh-hook-id"
	headerReason   = "eh-reason"
	headerDelivery = "eh-delivery"
	headerTrunc    = "eh-truncated"
)

// DeadLetter is one hook's record of the DLQ topic: why it failed for good and the
// event it carried.
type DeadLetter struct {
	HookID         string `json:"hook_id"`
	Reason         string `json:"reason"`
	Attempts       int    `json:"attempts,omitempty"`
	LastStatus     int    `json:"last_status,omitempty"`
	LastError      string `json:"last_error,omitempty"`
	FirstAttemptMs int64  `json:"first_attempt_ms,omitempty"`
	LastAttemptMs  int64  `json:"last_attempt_ms,omitempty"`
	// AtMs is when it was dead-lettered (the DLQ record's timestamp).
	AtMs int64 `json:"at_ms"`
	// Topic, Partition and Offset are the original event's.
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// DLQPartition and DLQOffset locate the dead letter itself.
	DLQPartition int32  `json:"dlq_partition"`
	DLQOffset    int64  `json:"dlq_offset"`
	Key          string `json:"key,omitempty"`
	// Value is the first bytes of the event; Truncated says the DLQ record itself was cut.
	Value     string `json:"value,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// delivery is the eh-delivery header's JSON.
type delivery struct {
	Attempts       int    `json:"attempts"`
	LastStatus     int    `json:"last_status"`
	LastError      string `json:"last_error"`
	FirstAttemptMs int64  `json:"first_attempt_ms"`
	LastAttemptMs  int64  `json:"last_attempt_ms"`
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	Offset         int64  `json:"offset"`
}

// parseDeadLetter reads a DLQ record: one DeadLetter per hook it names (ids joined by
// commas). Records without the processor's headers (another tool's) give none.
func parseDeadLetter(r *kgo.Record) []DeadLetter {
	n := len(r.Headers) - 1
	for n >= 0 && r.Headers[n].Key != headerDelivery {
		n--
	}
	if n < 2 || r.Headers[n-2].Key != headerHookID || r.Headers[n-1].Key != headerReason {
		return nil
	}
	var d delivery
	if json.Unmarshal(r.Headers[n].Value, &d) != nil {
		return nil
	}
	dl := DeadLetter{
		Reason: string(r.Headers[n-1].Value), Attempts: d.Attempts, LastStatus: d.LastStatus,
		LastError: excerpt(d.LastError), FirstAttemptMs: d.FirstAttemptMs, LastAttemptMs: d.LastAttemptMs,
		AtMs: r.Timestamp.UnixMilli(), Topic: d.Topic, Partition: d.Partition, Offset: d.Offset,
		DLQPartition: r.Partition, DLQOffset: r.Offset, Key: excerpt(string(r.Key)), Value: excerpt(string(r.Value)),
	}
	for _, h := range r.Headers[n+1:] {
		dl.Truncated = dl.Truncated || h.Key == headerTrunc
	}
	var out []DeadLetter
	for id := range strings.SplitSeq(string(r.Headers[n-2].Value), ",") {
		one := dl
		one.HookID = id
		out = append(out, one)
	}
	return out
}

// DeadLetterQuery selects dead letters, newest first.
type DeadLetterQuery struct {
	// HookID and Reason, when set, keep only that hook's or reason's.
	HookID, Reason string
	// SinceMs and UntilMs bound AtMs (inclusive; 0: unbounded).
	SinceMs, UntilMs int64
	// Before continues a listing (0: from the newest); Size is the page size.
	Before uint64
	Size   int
}

func (q *DeadLetterQuery) match(d *DeadLetter) bool {
	return (q.HookID == "" || d.HookID == q.HookID) && (q.Reason == "" || d.Reason == q.Reason) &&
		inRange(d.AtMs, q.SinceMs, q.UntilMs)
}

// DeadLetters holds the last dead letters read from the DLQ topic.
type DeadLetters struct {
	mu  sync.RWMutex
	all *ring[DeadLetter]
}

// NewDeadLetters returns an index of the last capacity dead letters.
func NewDeadLetters(capacity int) *DeadLetters {
	return &DeadLetters{all: newRing[DeadLetter](capacity)}
}

// reset empties the index.
func (d *DeadLetters) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = newRing[DeadLetter](len(d.all.slots))
}

// Add indexes a DLQ record's dead letters.
func (d *DeadLetters) Add(r *kgo.Record) {
	dls := parseDeadLetter(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dl := range dls {
		d.all.add(dl)
	}
}

// List returns the dead letters that match q, newest first.
func (d *DeadLetters) List(q DeadLetterQuery) Page[DeadLetter] {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return collect(q.Size, func(yield func(uint64, *DeadLetter) bool) {
		d.all.newest(q.Before, func(seq uint64, dl *DeadLetter) bool {
			return !q.match(dl) || yield(seq, dl)
		})
	})
}
