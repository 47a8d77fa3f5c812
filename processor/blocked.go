package processor

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Blocked (hook, key)s: a failure holds back only the (hook, entity key) it belongs to.
//
// An ordering "key" delivery that still fails after its short inline budget is parked in
// the retry topic, at the partition number of its event, with the entry marked blocking;
// while any blocking entry of a (hook, key) is unsettled, later events of that (hook, key)
// are parked behind it without an attempt, and the retry scheduler of the same partition
// delivers them strictly in order. The events, retry and state topics have the same
// partition count and one consumer group with the range balancer consumes events and
// retry, so partition p of both lives on one member: the blockSet of p is shared by the
// events partition worker (which counts up when it parks) and the retry scheduler (which
// counts down when an entry is delivered or dead-lettered), in memory, with the retry
// topic as its durable copy. On assignment the set is rebuilt from the retry partition
// (from the group's committed offset to its end) before the first event or retry entry of
// p is handled.
//
// Memory: one map slot per blocked (hook, key), at most maxBlockedKeys per partition.
// Past that, further blocking entries of a hook count against the hook as a whole, and
// while such an overflow count is non-zero every key of that hook in the partition is
// blocked: stricter ordering, bounded memory, and still only that hook is held back. An
// entry records which of the two counts it was added to (parkedEntry.Blocking), so the
// count it is removed from is always the one it was added to, here and after a restore.

// maxBlockedKeys bounds the exactly tracked (hook, key)s per partition.
const maxBlockedKeys = 1 << 16

// Blocking marks of a parked entry (parkedEntry.Blocking).
const (
	blockNone   blockMark = iota // ordering "none", replays: not counted
	blockByKey                   // counted for its (hook, key)
	blockByHook                  // counted for its hook (the key map was full)
)

// blockMark says which count of a blockSet a parked entry was added to.
type blockMark uint8

var (
	blockedKeys atomic.Int64
	_           = metrics.NewGauge(describe(`eventhooks_blocked_keys`, "Blocked (hook, key)s: keys whose later events park behind a parked delivery."),
		func() float64 { return float64(blockedKeys.Load()) })
	blockedRestore = metrics.NewCounter(describe(`eventhooks_blocked_restore_errors_total`, "Failed rebuilds of a partition's blocked keys from the retry topic."))
)

// blockKey identifies a (hook, entity key) by a 64-bit hash of both: a collision would
// only make two (hook, key)s wait for each other. One integer keeps the lookup every
// event of a blocked partition makes cheap.
type blockKey uint64

var blockSeed = maphash.MakeSeed()

func newBlockKey(hook string, key []byte) blockKey {
	var h maphash.Hash
	h.SetSeed(blockSeed)
	h.WriteString(hook)
	h.WriteByte(0) // ids are UUIDs, but no (hook, key) pair should read as another
	h.Write(key)
	return blockKey(h.Sum64())
}

// blockSet counts the unsettled blocking entries of one partition number.
type blockSet struct {
	n         atomic.Int64 // every count together: the lock-free "nothing is blocked" path
	restoreMu sync.Mutex   // one restore at a time: the events and retry workers of p both ask
	mu        sync.Mutex
	// Guarded by mu.
	keys     map[blockKey]int32
	hooks    map[string]int32
	restored bool
	// forgotten: its partitions were let go; lanes still finishing their records must
	// not open deferrals here (they would be counted and never closed).
	forgotten bool
	// cursors are the deferred hooks of the partition number (cursor.go): an immutable
	// list, replaced under mu, read without a lock by every live delivery.
	cursors atomic.Pointer[[]*cursor]
}

func newBlockSet() *blockSet {
	return &blockSet{keys: map[blockKey]int32{}, hooks: map[string]int32{}}
}

// blocked reports whether (hook, key) has an unsettled blocking entry (or its hook an
// overflow count).
func (b *blockSet) blocked(hook string, key []byte) bool {
	if b == nil || b.n.Load() == 0 {
		return false
	}
	k := newBlockKey(hook, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keys[k] > 0 || (len(b.hooks) > 0 && b.hooks[hook] > 0)
}

// add counts one more blocking entry of (hook, key) and returns the mark to store in it.
func (b *blockSet) add(hook string, key []byte) blockMark {
	k := newBlockKey(hook, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.keys[k]; !ok && len(b.keys) >= maxBlockedKeys {
		b.addLocked(hook, k, blockByHook)
		return blockByHook
	}
	b.addLocked(hook, k, blockByKey)
	return blockByKey
}

func (b *blockSet) addLocked(hook string, k blockKey, m blockMark) {
	b.n.Add(1)
	if m == blockByHook {
		b.hooks[hook]++
		return
	}
	if b.keys[k] == 0 {
		blockedKeys.Add(1)
	}
	b.keys[k]++
}

// release removes one settled blocking entry from the count its mark names. A count never
// goes below zero (an entry written by a previous owner after this set was restored).
func (b *blockSet) release(hook string, key []byte, m blockMark) {
	if b == nil || m == blockNone {
		return
	}
	k := newBlockKey(hook, key)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch m {
	case blockByHook:
		if b.hooks[hook] > 0 {
			b.n.Add(-1)
			if b.hooks[hook]--; b.hooks[hook] == 0 {
				delete(b.hooks, hook)
			}
		}
	case blockByKey:
		if b.keys[k] > 0 {
			b.n.Add(-1)
			if b.keys[k]--; b.keys[k] == 0 {
				delete(b.keys, k)
				blockedKeys.Add(-1)
			}
		}
	}
}

// forget drops every count (the partition was revoked).
func (b *blockSet) forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	blockedKeys.Add(-int64(len(b.keys)))
	clear(b.keys)
	clear(b.hooks)
	b.n.Store(0)
	b.setCursorsLocked(nil)
	b.forgotten = true
}

// restore rebuilds the set from the retry partition, once: from the group's committed
// offset (the first unsettled entry) to the end offset listed now. Entries produced
// later are counted when they are produced. Callers retry it on error.
func (b *blockSet) restore(ctx context.Context, p *Processor, group string, partition int32) error {
	b.restoreMu.Lock()
	defer b.restoreMu.Unlock()
	b.mu.Lock()
	done := b.restored
	b.mu.Unlock()
	if done {
		return nil
	}
	topic := p.cfg.RetryTopic
	from, end, err := retryRange(ctx, p, group, topic, partition)
	if err != nil {
		return err
	}
	cursors := restoredCursors{}
	err = readPartition(ctx, p.cfg.ClientOpts, topic, partition, from, end, func(r *kgo.Record) {
		var e parkedEntry
		if parseParkedEntry(r, &e) != nil {
			return
		}
		if e.Cursor != markerNone {
			cursors.note(&e)
			return
		}
		e.each(func(one *parkedEntry) {
			if one.Blocking != blockNone {
				b.mu.Lock()
				b.addLocked(one.HookID, newBlockKey(one.HookID, one.Key), one.Blocking)
				b.mu.Unlock()
			}
		})
	})
	if err != nil {
		return fmt.Errorf("restore blocked keys from %s/%d: %w", topic, partition, err)
	}
	cursors.publish(b)
	b.mu.Lock()
	b.restored = true
	b.mu.Unlock()
	return nil
}

// retryRange returns the retry partition's committed offset in group (its start when
// nothing is committed) and its end offset.
func retryRange(ctx context.Context, p *Processor, group, topic string, partition int32) (from, end int64, err error) {
	cl, err := kgo.NewClient(p.cfg.ClientOpts...)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot create admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if end, err = p.endOffset(ctx, adm, topic, partition); err != nil {
		return 0, 0, err
	}
	// Nothing committed: from 0, which a fetch below the log start reads from the start.
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot fetch committed offsets of group %s: %w", group, err)
	}
	if o, ok := offs.Lookup(topic, partition); ok && o.Err == nil && o.At > 0 {
		from = o.At
	}
	return from, end, nil
}
