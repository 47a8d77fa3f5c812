package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/logthrottle"
	"github.com/eventhooks/eventhooks/processor/gates"
	"github.com/eventhooks/eventhooks/sinks"
)

// Config configures a Processor. Zero values take the documented defaults.
type Config struct {
	// ClientOpts connect to the cluster (seed brokers, TLS, SASL).
	ClientOpts []kgo.Opt
	// Group is the consumer group (default "eventhooks").
	Group string
	// Topics are the input topics (required).
	Topics []string
	// Lanes is the number of key lanes per partition (default 16): the per-partition
	// delivery concurrency. Events of one key always take the same lane.
	Lanes int
	// LaneBuffer bounds the records queued per lane (default 256).
	LaneBuffer int
	// PartitionBuffer bounds the polled batches queued per partition (default 4).
	PartitionBuffer int
	// PartitionBufferBytes bounds the bytes of an events partition's records polled and
	// not yet handled, queued or in its lanes (default 4 MiB): past it, fetching the
	// partition is paused until half of it is left. Draining a backlog then holds no more
	// than the steady state does.
	PartitionBufferBytes int
	// MaxPollRecords bounds one poll (default 10000).
	MaxPollRecords int
	// CommitInterval is how often done offsets are committed (default 1s).
	CommitInterval time.Duration
	// MaxEventBytes bounds a record value (default hooks.DefaultMaxEventBytes).
	MaxEventBytes int
	// Compile turns a hook version into its sink (required).
	Compile func(*hooks.Hook) (sinks.Sink, error)
	// Catalogue learns the sources seen on the stream (optional).
	Catalogue *hooks.Catalogue
	// RetryTopic receives parked deliveries, at the partition number of their event: it
	// must have as many partitions as the input topics. The events consumer group
	// consumes it too, with the range balancer, so partition p of both is owned by one
	// member (optional: without it failing deliveries are retried in place, holding
	// their lane).
	RetryTopic string
	// RetryMemoryPerPartition bounds the bytes of parked entries the retry scheduler holds
	// per partition (default 8 MiB); past it, the partition's retry topic is read no
	// further until entries settle.
	RetryMemoryPerPartition int
	// DLQTopic receives dead letters: deliveries that failed for good and malformed
	// records (optional: without it they are only counted and logged).
	DLQTopic string
	// StateTopic is the compacted, co-partitioned topic of gate state (optional: without
	// it snooze/on_change state is kept in memory only).
	StateTopic string
	// GateEntriesPerPartition bounds the gate entries kept per partition (default
	// 262144); the least recently fired are evicted first.
	GateEntriesPerPartition int
	// InlineAttempts is how many attempts a live delivery gets, within well under a
	// second, before it is parked (default 3).
	InlineAttempts int
	// AttemptsTopic receives the attempt log, a record per delivery attempt sent
	// (optional: without it nothing is logged). See attemptlog.go.
	AttemptsTopic string
	// DisableHook disables hook id with reason, in the hooks topic: called once every
	// attempt of a hook with auto_disable_after has failed for that long (optional:
	// without it auto_disable_after has no effect).
	DisableHook func(ctx context.Context, id, reason string) error
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if len(c.Topics) == 0 {
		return errors.New("--topics: at least one input topic is required")
	}
	if c.Compile == nil {
		return errors.New("processor: Compile is required")
	}
	if c.Lanes < 0 || c.Lanes > 1024 {
		return fmt.Errorf("--lanes %d: want 1..1024", c.Lanes)
	}
	if c.PartitionBufferBytes < 0 {
		return fmt.Errorf("--partition-buffer-bytes %d: want at least 1", c.PartitionBufferBytes)
	}
	setDefault(&c.Group, "eventhooks")
	setDefault(&c.Lanes, 16)
	setDefault(&c.LaneBuffer, 256)
	setDefault(&c.PartitionBuffer, 4)
	setDefault(&c.PartitionBufferBytes, 4<<20)
	setDefault(&c.MaxPollRecords, 10000)
	setDefault(&c.CommitInterval, time.Second)
	setDefault(&c.MaxEventBytes, hooks.DefaultMaxEventBytes)
	setDefault(&c.InlineAttempts, 3)
	setDefault(&c.GateEntriesPerPartition, 1<<18)
	setDefault(&c.RetryMemoryPerPartition, 8<<20)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Processor consumes events and delivers them to the hooks that match, retrying, parking
// and dead-lettering failures so that nothing is lost.
type Processor struct {
	cfg  Config
	log  *slog.Logger
	hs   atomic.Pointer[hookSet]
	ib   indexBuilder
	logs logthrottle.Throttle

	events *groupConsumer // the events and the retry topic, co-partitioned
	parker *kgo.Client    // produces to the retry and DLQ topics, acks=all

	// produceCtx is the context of every asynchronous produce: it ends in Close, not
	// when a partition or the run stops, so writes already handed over can finish.
	produceCtx  context.Context
	stopProduce context.CancelFunc

	shared    *gates.Shared // gate state of snooze_scope "hook" hooks
	stateProd *kgo.Client   // produces gate state to StateTopic at explicit partitions
	disables  chan disableRequest
	attempts  *attemptLog // nil without an attempts topic
}

// hookSet is the compiled hook set the lanes read: the match index and, for parked
// deliveries, the hooks by id. Immutable once published.
type hookSet struct {
	index *hooks.Index[*compiledHook]
	byID  map[string]*compiledHook
	// replaced is closed when a newer set is published (the retry scheduler then ends
	// the pending deliveries of deleted and disabled hooks at once).
	replaced chan struct{}
}

// New validates cfg and returns a processor; Run starts it.
func New(cfg Config) (*Processor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, log: cfg.Logger, shared: gates.NewShared(cfg.GateEntriesPerPartition),
		disables: make(chan disableRequest, 16)}
	p.produceCtx, p.stopProduce = context.WithCancel(context.Background())
	for _, kind := range hooks.DecodeErrorKinds() {
		malformedCounter(kind) // every series exists from the start, at zero
	}
	p.ib = indexBuilder{
		compile: cfg.Compile,
		cat:     cfg.Catalogue,
		onError: func(h *hooks.Hook, err error) {
			compileErrors.Inc()
			p.log.Error("cannot compile hook; it will not fire", "hook_id", h.ID, "err", err)
		},
	}
	p.hs.Store(&hookSet{index: hooks.BuildIndex[*compiledHook](nil), replaced: make(chan struct{})})
	parker, err := kgo.NewClient(append([]kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// A dead endpoint parks every event of its hooks: let the lanes run ahead of the
		// acknowledgements (bounded), in small batches.
		kgo.MaxBufferedRecords(1 << 17),
		kgo.ProducerLinger(10 * time.Millisecond),
		// A parked entry carries the event as it was, plus headers: room for the largest.
		kgo.ProducerBatchMaxBytes(int32(cfg.MaxEventBytes + 64<<10)),
		kgo.RecordPartitioner(parkPartitioner{retry: cfg.RetryTopic, other: kgo.StickyKeyPartitioner(nil)}),
	}, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create retry/DLQ producer: %w", err)
	}
	p.parker = parker
	if cfg.StateTopic != "" {
		p.stateProd, err = kgo.NewClient(append([]kgo.Opt{
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(5 * time.Millisecond),
		}, cfg.ClientOpts...)...)
		if err != nil {
			parker.Close()
			return nil, fmt.Errorf("cannot create state producer: %w", err)
		}
	}
	if p.attempts, err = newAttemptLog(p.produceCtx, &p.cfg); err != nil {
		p.Close()
		return nil, err
	}
	p.events = newGroupConsumer(p, cfg.Group, cfg.Topics, cfg.RetryTopic)
	return p, nil
}

// ApplyHooks rebuilds the compiled hook set from a snapshot. It is the hook store's
// subscriber: called from one goroutine, and the store's writers wait for it to return.
func (p *Processor) ApplyHooks(snap *hooks.Snapshot) {
	for _, id := range p.ib.noteDeleted(snap) {
		// Hook-scope records may sit in any partition: they are dropped here, and a
		// restored one for a deleted hook never matches and ages out.
		p.shared.DropHook(id)
	}
	hs := p.ib.build(snap)
	close(p.hs.Swap(hs).replaced)
	hooksActive.Set(float64(hs.index.Len()))
}

// Joined reports whether the processor has joined its group and received an assignment
// (possibly empty).
func (p *Processor) Joined() bool { return p.events.joined.Load() }

// Run consumes until ctx is done, then stops the workers, commits what is done and leaves
// the groups.
func (p *Processor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if p.cfg.DisableHook != nil {
		wg.Go(func() { p.disableLoop(ctx) })
	}
	return p.events.run(ctx)
}

// Close releases the producers. Call it after Run and Replay have returned.
func (p *Processor) Close() {
	p.attempts.close()
	p.stopProduce()
	p.parker.Close()
	if p.stateProd != nil {
		p.stateProd.Close()
	}
}

// parkPartitioner writes retry records at the partition they carry (their event's: the
// retry topic is co-partitioned with the events) and the rest by key.
type parkPartitioner struct {
	retry string
	other kgo.Partitioner
}

// ForTopic implements kgo.Partitioner.
func (pp parkPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == pp.retry {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return pp.other.ForTopic(topic)
}
