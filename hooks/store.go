package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrNotFound is returned for a hook or source that does not exist.
var ErrNotFound = errors.New("not found")

// sourceKeyPrefix marks registered-source records in the hooks topic; hook records are
// keyed by the bare hook id.
const sourceKeyPrefix = "source:"

// Snapshot is an immutable view of the hook set at one point of the hooks topic.
type Snapshot struct {
	// Hooks is every hook, ordered by creation time then id.
	Hooks []*Hook
	byID  map[string]*Hook
	// Sources holds the registered sources, source → event → info.
	Sources map[string]map[string]EventInfo
}

// Get returns the hook with the given id.
func (s *Snapshot) Get(id string) (*Hook, bool) {
	h, ok := s.byID[id]
	return h, ok
}

// Store keeps the hook set in a compacted topic (key = hook id, value = the hook's JSON, a
// tombstone deletes) and tails it, so every instance converges on the same set. Writes
// return once this instance has read its own write back and every subscriber has applied
// it.
type Store struct {
	cl    *kgo.Client
	topic string
	cat   *Catalogue
	log   *slog.Logger

	snap atomic.Pointer[Snapshot]
	subs []func(*Snapshot)

	mu      sync.Mutex
	applied map[int32]int64 // next offset to apply, per partition
	changed chan struct{}   // closed and replaced whenever applied moves

	loaded     chan struct{}
	loadedOnce sync.Once
}

// NewStore returns a store on topic using cl, which must consume topic from the start
// (see StoreClientOpts). Subscribers are called on the tailing goroutine after each change,
// before writers waiting on it return.
func NewStore(cl *kgo.Client, topic string, cat *Catalogue, log *slog.Logger, subs ...func(*Snapshot)) *Store {
	s := &Store{
		cl: cl, topic: topic, cat: cat, log: log, subs: subs,
		applied: map[int32]int64{},
		changed: make(chan struct{}),
		loaded:  make(chan struct{}),
	}
	s.snap.Store(&Snapshot{byID: map[string]*Hook{}, Sources: map[string]map[string]EventInfo{}})
	return s
}

// StoreClientOpts are the options the store's client needs on top of the connection ones.
func StoreClientOpts(topic string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
}

// Snapshot returns the current hook set.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// Loaded is closed once the topic has been read up to its end as of start-up.
func (s *Store) Loaded() <-chan struct{} { return s.loaded }

// Run tails the topic until ctx is done.
func (s *Store) Run(ctx context.Context) error {
	ends, err := kadm.NewClient(s.cl).ListEndOffsets(ctx, s.topic)
	if err != nil {
		return fmt.Errorf("cannot list end offsets of %s: %w", s.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("cannot list end offsets of %s: %w", s.topic, err)
	}
	target := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { target[o.Partition] = o.Offset })
	s.checkLoaded(target)
	for {
		fetches := s.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			s.log.Warn("hooks topic fetch error", "topic", t, "partition", p, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		s.apply(fetches)
		s.checkLoaded(target)
	}
}

func (s *Store) checkLoaded(target map[int32]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, end := range target {
		if s.applied[p] < end {
			return
		}
	}
	s.loadedOnce.Do(func() { close(s.loaded) })
}

// apply folds a batch of records into a new snapshot, notifies subscribers, then moves the
// applied offsets so that waiting writers see their write in effect.
func (s *Store) apply(fetches kgo.Fetches) {
	old := s.snap.Load()
	byID := make(map[string]*Hook, len(old.byID)+1)
	for k, v := range old.byID {
		byID[k] = v
	}
	sources := copyLayer(old.Sources)
	next := map[int32]int64{}
	fetches.EachRecord(func(r *kgo.Record) {
		next[r.Partition] = r.Offset + 1
		s.applyRecord(r, byID, sources)
	})
	snap := &Snapshot{byID: byID, Sources: sources, Hooks: make([]*Hook, 0, len(byID))}
	for _, h := range byID {
		snap.Hooks = append(snap.Hooks, h)
	}
	sort.Slice(snap.Hooks, func(i, j int) bool {
		a, b := snap.Hooks[i], snap.Hooks[j]
		if a.CreatedAt != b.CreatedAt {
			return a.CreatedAt < b.CreatedAt
		}
		return a.ID < b.ID
	})
	if s.cat != nil {
		s.cat.setRegistered(sources)
	}
	s.snap.Store(snap)
	for _, fn := range s.subs {
		fn(snap)
	}
	s.mu.Lock()
	for p, o := range next {
		s.applied[p] = o
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Store) applyRecord(r *kgo.Record, byID map[string]*Hook, sources map[string]map[string]EventInfo) {
	key := string(r.Key)
	if rest, ok := strings.CutPrefix(key, sourceKeyPrefix); ok {
		src, ev, _ := strings.Cut(rest, "/")
		if r.Value == nil {
			delete(sources[src], ev)
			if len(sources[src]) == 0 {
				delete(sources, src)
			}
			return
		}
		var info EventInfo
		if err := json.Unmarshal(r.Value, &info); err != nil {
			s.log.Warn("skipping unreadable source record", "key", key, "offset", r.Offset, "err", err)
			return
		}
		info.Origin = "registered"
		if sources[src] == nil {
			sources[src] = map[string]EventInfo{}
		}
		sources[src][ev] = info
		return
	}
	if r.Value == nil {
		delete(byID, key)
		return
	}
	var h Hook
	if err := json.Unmarshal(r.Value, &h); err != nil || h.ID != key {
		s.log.Warn("skipping unreadable hook record", "key", key, "offset", r.Offset, "err", err)
		return
	}
	if fields := h.Clamp(); fields != nil {
		s.log.Warn("hook record has values out of bounds (written by an older version): using the nearest allowed ones",
			"hook_id", key, "offset", r.Offset, "fields", fields)
	}
	h.Revision = r.Offset
	byID[key] = &h
}

// Put writes h (already validated) and waits until it is in effect here.
func (s *Store) Put(ctx context.Context, h *Hook) error {
	val, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("cannot encode hook %s: %w", h.ID, err)
	}
	return s.write(ctx, h.ID, val)
}

// Delete removes hook id and waits until the removal is in effect here.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, ok := s.Snapshot().Get(id); !ok {
		return ErrNotFound
	}
	return s.write(ctx, id, nil)
}

// PutSource registers source/event in the catalogue, durably.
func (s *Store) PutSource(ctx context.Context, source, event string, info EventInfo) error {
	info.Origin = ""
	if info.Fields == nil {
		info.Fields = []string{}
	}
	if info.Unique == nil {
		info.Unique = []string{}
	}
	val, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("cannot encode source %s/%s: %w", source, event, err)
	}
	return s.write(ctx, sourceKeyPrefix+source+"/"+event, val)
}

// DeleteSource removes a registered source/event.
func (s *Store) DeleteSource(ctx context.Context, source, event string) error {
	if _, ok := s.Snapshot().Sources[source][event]; !ok {
		return ErrNotFound
	}
	return s.write(ctx, sourceKeyPrefix+source+"/"+event, nil)
}

func (s *Store) write(ctx context.Context, key string, val []byte) error {
	rec := &kgo.Record{Topic: s.topic, Key: []byte(key), Value: val}
	if err := s.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("cannot write %s to %s: %w", key, s.topic, err)
	}
	return s.waitApplied(ctx, rec.Partition, rec.Offset)
}

func (s *Store) waitApplied(ctx context.Context, partition int32, offset int64) error {
	for {
		s.mu.Lock()
		done, ch := s.applied[partition] > offset, s.changed
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for hooks topic to apply offset %d: %w", offset, ctx.Err())
		}
	}
}
