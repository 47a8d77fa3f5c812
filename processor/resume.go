package processor

import (
	"context"
	"sync"
	"time"
)

// resumeTogetherWait is how long a restored partition waits for the rest of its
// assignment before it is resumed alone.
const resumeTogetherWait = 100 * time.Millisecond

// resumeBatch resumes the partitions of one assignment in one call once every one has
// restored its state. Resumed one by one, the first fetch would carry only the first
// partitions restored (often empty retry partitions) and the others would wait for it,
// up to the fetch's max wait, before their first record. A partition whose restore is
// slow holds the others back for resumeTogetherWait at most.
type resumeBatch struct {
	c       *groupConsumer
	mu      sync.Mutex
	waiting int                // workers of the assignment not restored yet
	ready   map[string][]int32 // restored, not resumed yet
	all     chan struct{}      // closed when the last one restored
}

func newResumeBatch(c *groupConsumer, workers int) *resumeBatch {
	return &resumeBatch{c: c, waiting: workers, ready: map[string][]int32{}, all: make(chan struct{})}
}

// restored marks topic/partition restored and returns once it is resumed: by the last
// worker of the assignment to restore, or by itself after resumeTogetherWait. It
// returns early, leaving the partition paused, when ctx ends.
func (b *resumeBatch) restored(ctx context.Context, topic string, partition int32) {
	b.mu.Lock()
	b.ready[topic] = append(b.ready[topic], partition)
	b.waiting--
	if b.waiting == 0 {
		close(b.all)
		b.resumeReadyLocked()
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	t := time.NewTimer(resumeTogetherWait)
	defer t.Stop()
	select {
	case <-b.all:
	case <-ctx.Done():
	case <-t.C:
		b.mu.Lock()
		b.resumeReadyLocked()
		b.mu.Unlock()
	}
}

// resumeReadyLocked resumes what is ready. mu must be held.
func (b *resumeBatch) resumeReadyLocked() {
	if len(b.ready) == 0 {
		return
	}
	b.c.client().ResumeFetchPartitions(b.ready)
	b.ready = map[string][]int32{}
}
