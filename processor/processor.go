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
	setDefault(&c.Group, "eventhooks")
	setDefault(&c.Lanes, 16)
	setDefault(&c.LaneBuffer, 256)
	setDefault(&c.PartitionBuffer, 4)
	setDefault(&c.MaxPollRecords, 10000)
	setDefault(&c.CommitInterval, time.Second)
	setDefault(&c.MaxEventBytes, hooks.DefaultMaxEventBytes)
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

// Processor consumes events and delivers them to the hooks that match.
type Processor struct {
	cfg   Config
	log   *slog.Logger
	index atomic.Pointer[hooks.Index[*compiledHook]]
	ib    indexBuilder

	cl       *kgo.Client
	ctx      context.Context // the Run context, for workers
	commitMu sync.Mutex      // one commit at a time; guards workers removal too
	wmu      sync.Mutex      // guards workers
	workers  map[tp]*partitionWorker
	joined   atomic.Bool
	logs     throttle
}

type tp struct {
	topic     string
	partition int32
}

// New validates cfg and returns a processor; Run starts it.
func New(cfg Config) (*Processor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, log: cfg.Logger, workers: map[tp]*partitionWorker{}}
	p.ib = indexBuilder{
		compile: cfg.Compile,
		onError: func(h *hooks.Hook, err error) {
			compileErrors.Inc()
			p.log.Error("cannot compile hook; it will not fire", "hook_id", h.ID, "err", err)
		},
	}
	p.index.Store(hooks.BuildIndex[*compiledHook](nil))
	return p, nil
}

// ApplyHooks rebuilds the index from a hook snapshot. It is the hook store's subscriber:
// called from one goroutine, and the store's writers wait for it to return.
func (p *Processor) ApplyHooks(snap *hooks.Snapshot) {
	p.index.Store(p.ib.build(snap))
	hooksActive.Set(float64(p.index.Load().Len()))
}

// Joined reports whether the processor has joined its group and received an assignment
// (possibly empty).
func (p *Processor) Joined() bool { return p.joined.Load() }

// Run consumes until ctx is done, then stops the workers, commits what is done and leaves
// the group.
func (p *Processor) Run(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
	}, p.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("cannot create consumer: %w", err)
	}
	p.cl, p.ctx = cl, ctx

	var wg sync.WaitGroup
	commitCtx, stopCommitter := context.WithCancel(context.Background())
	wg.Go(func() { p.commitLoop(commitCtx) })

	p.pollLoop(ctx)

	// Shutdown: stop feeding, let lanes finish their current record, commit, leave.
	ws := p.takeAllWorkers()
	p.stopWorkers(ws)
	stopCommitter()
	wg.Wait()
	p.commitFinal(ws)
	cl.CloseAllowingRebalance()
	return nil
}

func (p *Processor) pollLoop(ctx context.Context) {
	for {
		fetches := p.cl.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			p.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.logs.warn(p.log, "fetch:"+t, "fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			p.wmu.Lock()
			w := p.workers[tp{ftp.Topic, ftp.Partition}]
			p.wmu.Unlock()
			if w == nil {
				return
			}
			recordsConsumed.Add(len(ftp.Records))
			select {
			case w.in <- ftp.Records:
			case <-ctx.Done():
			}
		})
		p.cl.AllowRebalance()
	}
}

func (p *Processor) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.wmu.Lock()
	for topic, parts := range assigned {
		for _, part := range parts {
			k := tp{topic, part}
			if p.workers[k] != nil {
				continue
			}
			w := newPartitionWorker(p, topic, part)
			p.workers[k] = w
			w.start()
		}
	}
	n := len(p.workers)
	p.wmu.Unlock()
	partitionsAssigned.Set(float64(n))
	p.joined.Store(true)
	p.log.Info("partitions assigned", "assigned", assigned, "total", n)
}

// revoked stops the revoked partitions' workers, waits for their lanes, and commits what
// they finished before the partitions go to another member.
func (p *Processor) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ws := p.takeWorkers(revoked)
	p.stopWorkers(ws)
	p.commitFinal(ws)
	p.log.Info("partitions revoked", "revoked", revoked)
}

// lost stops the workers without committing: the partitions already belong to someone
// else, and anything not committed is redelivered there.
func (p *Processor) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.stopWorkers(p.takeWorkers(lost))
	p.log.Warn("partitions lost", "lost", lost)
}

func (p *Processor) takeWorkers(parts map[string][]int32) []*partitionWorker {
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	var ws []*partitionWorker
	for topic, ps := range parts {
		for _, part := range ps {
			if w := p.workers[tp{topic, part}]; w != nil {
				ws = append(ws, w)
				delete(p.workers, tp{topic, part})
			}
		}
	}
	partitionsAssigned.Set(float64(len(p.workers)))
	return ws
}

func (p *Processor) takeAllWorkers() []*partitionWorker {
	p.wmu.Lock()
	all := map[string][]int32{}
	for k := range p.workers {
		all[k.topic] = append(all[k.topic], k.partition)
	}
	p.wmu.Unlock()
	return p.takeWorkers(all)
}

func (p *Processor) stopWorkers(ws []*partitionWorker) {
	for _, w := range ws {
		w.stop()
	}
	for _, w := range ws {
		w.wait()
	}
}
