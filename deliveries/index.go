package deliveries

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// Outcomes of an attempt, as the processor writes them.
const (
	OutcomeDelivered    = "delivered"
	OutcomeFailed       = "failed" // retryable; it will be retried
	OutcomeDeadLettered = "dead_lettered"
)

// maxExcerpt caps the request, response and error text an attempt keeps, whatever the
// writer sent: the index's memory is bounded by its counts times this.
const maxExcerpt = 256

// Attempt is one delivery attempt: a record of the attempts topic.
type Attempt struct {
	HookID     string  `json:"hook_id"`
	EventID    string  `json:"event_id,omitempty"`
	WebhookID  string  `json:"webhook_id,omitempty"`
	Source     string  `json:"source,omitempty"`
	Event      string  `json:"event,omitempty"`
	Attempt    int     `json:"attempt,omitempty"`
	AtMs       int64   `json:"at_ms"`
	DurationMs float64 `json:"duration_ms,omitempty"`
	Outcome    string  `json:"outcome"`
	Reason     string  `json:"reason,omitempty"`
	Status     int     `json:"status,omitempty"`
	Error      string  `json:"error,omitempty"`
	Response   string  `json:"response,omitempty"`
	Request    string  `json:"request,omitempty"`
	Topic      string  `json:"topic,omitempty"`
	Partition  int32   `json:"partition"`
	Offset     int64   `json:"offset"`
}

// trim caps the free-text fields at maxExcerpt bytes (on a rune boundary).
func (a *Attempt) trim() {
	a.Error, a.Response, a.Request = excerpt(a.Error), excerpt(a.Response), excerpt(a.Request)
}

func excerpt(s string) string {
	if len(s) <= maxExcerpt {
		return s
	}
	cut := maxExcerpt
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return strings.Clone(s[:cut])
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Index holds the last attempts: at most PerHook of each hook and Total in all (the
// oldest go first). It is safe for concurrent use; readers never wait on Kafka.
type Index struct {
	mu      sync.RWMutex
	all     *ring[Attempt]
	perHook int
	hooks   map[string]*hookLog
}

// hookLog is the seqs of one hook's held attempts, oldest first.
type hookLog struct{ seqs []uint64 }

// NewIndex returns an index of at most perHook attempts per hook and total in all.
func NewIndex(perHook, total int) *Index {
	return &Index{all: newRing[Attempt](total), perHook: max(perHook, 1),
		hooks: map[string]*hookLog{}}
}

// Add indexes one attempt.
func (x *Index) Add(a Attempt) {
	a.trim()
	x.mu.Lock()
	defer x.mu.Unlock()
	h := x.hooks[a.HookID]
	if h != nil && len(h.seqs) >= x.perHook {
		x.forget(h.seqs[0])
	}
	if seq := x.all.victim(); seq != 0 {
		x.forget(seq)
	}
	seq := x.all.add(a)
	if h == nil || len(h.seqs) == 0 && x.hooks[a.HookID] == nil { // new, or forgotten just now
		h = &hookLog{}
		x.hooks[a.HookID] = h
	}
	h.seqs = append(h.seqs, seq)
}

// reset empties the index.
func (x *Index) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.all = newRing[Attempt](len(x.all.slots))
	clear(x.hooks)
}

// forget drops the attempt seq, the oldest of its hook, from the ring and its hook.
func (x *Index) forget(seq uint64) {
	a, ok := x.all.get(seq)
	if !ok {
		return
	}
	if h := x.hooks[a.HookID]; h != nil && len(h.seqs) > 0 && h.seqs[0] == seq {
		h.seqs = h.seqs[1:]
		if len(h.seqs) == 0 {
			delete(x.hooks, a.HookID)
		}
	}
	x.all.drop(seq)
}

// Query selects attempts of one hook, newest first.
type Query struct {
	// Outcomes, when not empty, keeps only these outcomes.
	Outcomes []string
	// SinceMs and UntilMs bound at_ms (inclusive; 0: unbounded).
	SinceMs, UntilMs int64
	// Before continues a listing: only attempts older than this cursor (0: from the newest).
	Before uint64
	// Size is the page size.
	Size int
}

func (q *Query) match(a *Attempt) bool {
	if len(q.Outcomes) > 0 && !slices.Contains(q.Outcomes, a.Outcome) {
		return false
	}
	return inRange(a.AtMs, q.SinceMs, q.UntilMs)
}

func inRange(at, since, until int64) bool {
	return (since == 0 || at >= since) && (until == 0 || at <= until)
}

// Page is one page of a listing; Next is the cursor of the following page, 0 at the end.
type Page[T any] struct {
	Data []T
	Next uint64
}

// Attempts lists a hook's attempts that match q, newest first.
func (x *Index) Attempts(hookID string, q Query) Page[Attempt] {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h := x.hooks[hookID]
	if h == nil {
		return Page[Attempt]{Data: []Attempt{}}
	}
	return collect(q.Size, func(yield func(uint64, *Attempt) bool) {
		for i := len(h.seqs) - 1; i >= 0; i-- {
			seq := h.seqs[i]
			if q.Before != 0 && seq >= q.Before {
				continue
			}
			if a, ok := x.all.get(seq); ok && q.match(a) && !yield(seq, a) {
				return
			}
		}
	})
}

// collect takes up to size values from each, setting Next when there are more.
func collect[T any](size int, each func(yield func(uint64, *T) bool)) Page[T] {
	p := Page[T]{Data: []T{}}
	var last uint64
	each(func(seq uint64, v *T) bool {
		if len(p.Data) == size {
			p.Next = last
			return false
		}
		p.Data = append(p.Data, *v)
		last = seq
		return true
	})
	return p
}

// Delivery returns every held attempt of a webhook-id, oldest first. It looks through
// every held attempt (Total at most): a lookup per request is cheaper than a map kept up
// on every attempt.
func (x *Index) Delivery(webhookID string) ([]Attempt, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, h := range x.hooks {
		var out []Attempt
		for _, seq := range h.seqs {
			if a, ok := x.all.get(seq); ok && a.WebhookID == webhookID {
				out = append(out, *a)
			}
		}
		if len(out) > 0 { // a webhook-id is one hook's
			// In attempt order: a lane's lines and the retry scheduler's reach the topic
			// in batches of their own, not in the order the attempts were made.
			slices.SortStableFunc(out, func(a, b Attempt) int {
				return cmp.Or(cmp.Compare(a.Attempt, b.Attempt), cmp.Compare(a.AtMs, b.AtMs))
			})
			return out, true
		}
	}
	return nil, false
}

// Hooks returns the ids of the hooks with attempts held.
func (x *Index) Hooks() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ids := make([]string, 0, len(x.hooks))
	for id := range x.hooks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Len returns how many attempts are held.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, h := range x.hooks {
		n += len(h.seqs)
	}
	return n
}
