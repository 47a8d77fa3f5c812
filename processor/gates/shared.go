package gates

import (
	"sync"
	"time"
)

// Shared is the gate state of hook-scoped hooks, shared by every lane of the
// processor under mu (hook scope is rare; key scope stays lock-free in the lanes).
//
// Lanes run concurrently, so a Check alone would let every lane deliver the same burst
// before the first delivery completes. Check therefore claims the entry it lets through:
// until Fired or Release, or at the latest until the claim's deadline (the window, and at
// least claimTTL), other lanes' events for the same entry are dropped — for on_change
// only those with the fingerprint in flight. The lane must call Release when a delivery
// it was allowed does not succeed.
type Shared struct {
	mu     sync.Mutex
	set    *Set
	claims map[string]gateClaim // record key → delivery in flight; guarded by mu
	key    []byte               // scratch record key; guarded by mu
}

// gateClaim is a delivery in flight for a shared entry.
type gateClaim struct {
	fp    uint64
	until int64 // unix ms
}

// claimTTL is the shortest life of a claim whose lane never reports back.
const claimTTL = time.Minute

// NewShared returns an empty shared set of at most maxEntries entries.
func NewShared(maxEntries int) *Shared {
	return &Shared{set: NewSet(maxEntries), claims: make(map[string]gateClaim)}
}

// Check is Set.Check under the lock, plus a claim on the entry when it delivers.
func (s *Shared) Check(spec *Spec, hookID string, key []byte, fp uint64, now time.Time) (deliver bool, reason string) {
	if spec.mode == gateNone {
		return true, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok, why := s.set.Check(spec, hookID, key, fp, now); !ok {
		return false, why
	}
	s.key = appendStateKey(s.key[:0], spec, hookID, key, fp)
	nowMs := now.UnixMilli()
	if c, ok := s.claims[string(s.key)]; ok && nowMs < c.until {
		switch {
		case spec.mode != gateChangeOnly:
			return false, ReasonSnooze
		case c.fp == fp:
			return false, ReasonUnchanged
		}
	}
	s.claims[string(s.key)] = gateClaim{fp: fp, until: nowMs + max(spec.windowMs, claimTTL.Milliseconds())}
	return true, ""
}

// Fired is Set.Fired under the lock; it ends the claim of Check.
func (s *Shared) Fired(spec *Spec, hookID string, key []byte, fp uint64, now time.Time) Change {
	if spec.mode == gateNone {
		return Change{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unclaimLocked(spec, hookID, key, fp)
	return s.set.Fired(spec, hookID, key, fp, now)
}

// Release ends the claim of Check when the delivery did not succeed (dead-lettered,
// parked or abandoned), so that the next event may be delivered.
func (s *Shared) Release(spec *Spec, hookID string, key []byte, fp uint64) {
	if spec.mode == gateNone {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unclaimLocked(spec, hookID, key, fp)
}

// unclaimLocked drops the claim on the entry if it is for fp (on_change may have handed
// the claim to another fingerprint meanwhile).
func (s *Shared) unclaimLocked(spec *Spec, hookID string, key []byte, fp uint64) {
	s.key = appendStateKey(s.key[:0], spec, hookID, key, fp)
	if c, ok := s.claims[string(s.key)]; ok && c.fp == fp {
		delete(s.claims, string(s.key))
	}
}

// Expire drops the entries whose window ended and the claims past their deadline. No
// tombstone is written: the records of an entry sit in the partitions of the events that
// fired it, and a restore drops an ended window by its time.
func (s *Shared) Expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nowMs := now.UnixMilli()
	for k, c := range s.claims {
		if nowMs >= c.until {
			delete(s.claims, k)
		}
	}
	s.set.Expire(now)
}

// Restore is Set.Restore under the lock, for records of a hook-scoped entry, which
// may come from several partitions (each firing is written at its event's partition):
// the one fired last wins, whatever the order partitions are restored in, so restoring a
// partition never replaces fresher state (a live firing, or another partition's). A
// tombstone never removes an entry held: hook-scoped entries expire here, by time.
func (s *Shared) Restore(recordKey, value []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fired, ok := s.set.firedAt(recordKey); ok {
		if len(value) == 0 {
			return nil
		}
		if st, err := decodeState(value); err == nil && st.fired < fired {
			return nil
		}
	}
	return s.set.Restore(recordKey, value, now)
}

// DropHook is Set.DropHook under the lock.
func (s *Shared) DropHook(hookID string) []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.DropHook(hookID)
}

// len returns the number of entries held.
func (s *Shared) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.Len()
}
