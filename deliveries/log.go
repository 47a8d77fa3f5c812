package deliveries

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Default bounds of the indexes.
const (
	DefaultPerHook     = 10_000
	DefaultTotal       = 50_000
	DefaultDeadLetters = 10_000
)

// Config configures a Log.
type Config struct {
	// ClientOpts connect to the cluster (brokers, TLS, SASL); the Log adds its own
	// consuming options. Required.
	ClientOpts []kgo.Opt
	// AttemptsTopic is the delivery log; required.
	AttemptsTopic string
	// DLQTopic is read for DeadLetters; "" reads none.
	DLQTopic string
	// InputTopics are the topics replay jobs may read: an attempt of an event of another
	// topic cannot be retried through one.
	InputTopics []string
	// PerHook, Total and DeadLetters bound the indexes (defaults above).
	PerHook, Total, DeadLetters int
	// IdleAfter ends the tail of the topics, and empties the indexes, when the log was
	// not used (Touch) for this long (default DefaultIdleAfter).
	IdleAfter time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Log is the delivery log: the indexes and the consumer that fills them. The topics are
// read only while the log is in use (Touch): every instance of eventhooks has a log,
// and one that kept up with every attempt of the cluster all the time would pay for
// reading them whether anybody looked or not.
type Log struct {
	// Attempts indexes the attempts topic.
	Attempts *Index
	// DeadLetters indexes the DLQ topic.
	DeadLetters *DeadLetters

	cfg   Config
	cl    *kgo.Client // for admin requests; each tail has its own consumer
	lines lineReader  // of Run's goroutine

	wake    chan struct{} // Touch asks Run to tail
	lastUse atomic.Int64  // unix nanoseconds of the last Touch
	mu      sync.Mutex
	ready   chan struct{} // closed once the tail caught up; nil while not tailing
}

// DefaultIdleAfter is Config.IdleAfter's default.
const DefaultIdleAfter = 10 * time.Minute

// A Touch that starts a tail waits up to catchUpWait for it to read what the topics hold
// (from Total/16 records before their ends).
const (
	catchUpWait   = 10 * time.Second
	caughtUpPoll  = 300 * time.Millisecond // how long a poll waits
	caughtUpStale = 2 * time.Second        // after this, a poll that reads nothing is caught up
)

// New creates the Log; Run tails its topics while it is in use.
func New(cfg Config) (*Log, error) {
	if cfg.AttemptsTopic == "" {
		return nil, errors.New("deliveries: Config.AttemptsTopic is required")
	}
	cfg.PerHook = cmpOr(cfg.PerHook, DefaultPerHook)
	cfg.Total = cmpOr(cfg.Total, DefaultTotal)
	cfg.DeadLetters = cmpOr(cfg.DeadLetters, DefaultDeadLetters)
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = DefaultIdleAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cl, err := kgo.NewClient(cfg.ClientOpts...)
	if err != nil {
		return nil, fmt.Errorf("deliveries: cannot create Kafka client: %w", err)
	}
	return &Log{
		Attempts: NewIndex(cfg.PerHook, cfg.Total), DeadLetters: NewDeadLetters(cfg.DeadLetters),
		cfg: cfg, cl: cl, wake: make(chan struct{}, 1),
	}, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Touch marks the log in use. When its topics are not being tailed it starts a tail and
// waits, until ctx ends or catchUpWait at most, for it to catch up.
func (l *Log) Touch(ctx context.Context) {
	l.lastUse.Store(time.Now().UnixNano())
	l.mu.Lock()
	ready := l.ready
	if ready == nil {
		ready = make(chan struct{})
		l.ready = ready
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
	t := time.NewTimer(catchUpWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-ctx.Done():
	case <-t.C:
	}
	l.lastUse.Store(time.Now().UnixNano()) // its caller reads the indexes now
}

// Run tails the topics into the indexes while the log is in use, until ctx is done; then
// it returns nil. After IdleAfter without a Touch it stops and empties the indexes.
func (l *Log) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
		}
		l.mu.Lock()
		ready := l.ready
		l.mu.Unlock()
		l.tail(ctx, ready)
		l.mu.Lock()
		l.ready = nil
		l.mu.Unlock()
		select {
		case <-ready:
		default:
			close(ready) // a tail that failed to start: waiters go on with what there is
		}
		l.Attempts.reset()
		l.DeadLetters.reset()
	}
}

// tail consumes the topics, from Total records before their ends, until ctx is done or
// the log was not used for IdleAfter; it closes ready once it has read up to the ends
// listed at its start, or once a poll reads nothing when the ends are unknown or after
// caughtUpStale (an end it can never reach: records deleted meanwhile, a lowered high
// watermark).
func (l *Log) tail(ctx context.Context, ready chan struct{}) {
	topics := []string{l.cfg.AttemptsTopic}
	if l.cfg.DLQTopic != "" {
		topics = append(topics, l.cfg.DLQTopic)
	}
	// A record of the attempts topic holds a lane's batch of attempts: Total/16 records
	// back fill the index without reading days of log.
	cl, err := kgo.NewClient(append(slices.Clone(l.cfg.ClientOpts),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-int64(max(l.cfg.Total/16, 1000)))),
		kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20),
	)...)
	if err != nil {
		l.cfg.Logger.Warn("delivery log: cannot create Kafka consumer", "err", err)
		return
	}
	defer cl.Close()
	behind, started := l.endsNow(ctx, topics), time.Now()
	caughtUp := false
	// Idle only once caught up: a start slower than IdleAfter (a busy machine, a short
	// IdleAfter) ended the tail before it read anything, and the Touch waiting for it got
	// empty indexes.
	for ctx.Err() == nil && (!caughtUp || time.Since(time.Unix(0, l.lastUse.Load())) < l.cfg.IdleAfter) {
		pctx, cancel := context.WithTimeout(ctx, caughtUpPoll)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				l.cfg.Logger.Debug("delivery log: fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			l.add(r)
			behind.reached(r)
		})
		// Without the ends, a poll that reads nothing is the best sign of being caught up;
		// with them, a first fetch slower than a poll made it a false one.
		idle := n == 0 && (behind == nil || time.Since(started) >= caughtUpStale)
		if !caughtUp && (behind.done() || idle) {
			caughtUp = true
			close(ready)
		}
	}
}

// ends holds, per topic and partition, the end offset a tail has still to read up to.
type ends map[string]map[int32]int64

// endsNow lists the end offsets of the non-empty partitions of topics; nil when the
// broker cannot tell.
func (l *Log) endsNow(ctx context.Context, topics []string) ends {
	adm := kadm.NewClient(l.cl)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	listed, err2 := adm.ListEndOffsets(ctx, topics...)
	if err = cmp.Or(err, err2); err == nil {
		err = listed.Error()
	}
	if err != nil {
		l.cfg.Logger.Debug("delivery log: cannot list offsets, catching up by an empty poll", "err", err)
		return nil
	}
	e := ends{}
	listed.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Offset >= o.Offset {
			return // nothing to read
		}
		if e[o.Topic] == nil {
			e[o.Topic] = map[int32]int64{}
		}
		e[o.Topic][o.Partition] = o.Offset
	})
	return e
}

// reached drops r's partition once r is its last record before the listed end.
func (e ends) reached(r *kgo.Record) {
	if end, ok := e[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
		delete(e[r.Topic], r.Partition)
		if len(e[r.Topic]) == 0 {
			delete(e, r.Topic)
		}
	}
}

func (e ends) done() bool { return e != nil && len(e) == 0 }

// add indexes one record of either topic.
func (l *Log) add(r *kgo.Record) {
	if r.Topic != l.cfg.AttemptsTopic {
		l.DeadLetters.Add(r)
		return
	}
	l.lines.each(r.Value, l.Attempts.Add, func(err error) {
		l.cfg.Logger.Debug("delivery log: skipped a line that is not an attempt", "partition", r.Partition, "offset", r.Offset, "err", err)
	})
}

// Close closes the admin client; call it after Run returned.
func (l *Log) Close() { l.cl.Close() }

// ErrOtherTopic is returned for an attempt of an event that replay jobs cannot read.
var ErrOtherTopic = errors.New("replay jobs read only the input topics")

// RetryRange returns the topic of a's event (the first input topic when a names none)
// and the replay bounds ("from" and "to", in processor.ParseBound's partition:offset
// form) that select exactly that event: every partition of the topic is bounded, the
// others to an empty range at their end.
func (l *Log) RetryRange(ctx context.Context, a Attempt) (topic, from, to string, err error) {
	if len(l.cfg.InputTopics) == 0 {
		return "", "", "", fmt.Errorf("%w: none configured", ErrOtherTopic)
	}
	topic = cmp.Or(a.Topic, l.cfg.InputTopics[0])
	if !slices.Contains(l.cfg.InputTopics, topic) {
		return "", "", "", fmt.Errorf("%w (%s), this event is in %s", ErrOtherTopic, strings.Join(l.cfg.InputTopics, ", "), topic)
	}
	ends, err := kadm.NewClient(l.cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return "", "", "", fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var f, t []string
	found := false
	ends.Each(func(o kadm.ListedOffset) {
		lo, hi := o.Offset, o.Offset
		if o.Partition == a.Partition && a.Offset < o.Offset {
			lo, hi, found = a.Offset, a.Offset+1, true
		}
		f = append(f, bound(o.Partition, lo))
		t = append(t, bound(o.Partition, hi))
	})
	if !found {
		return "", "", "", fmt.Errorf("%s has no offset %d in partition %d", topic, a.Offset, a.Partition)
	}
	return topic, strings.Join(f, ","), strings.Join(t, ","), nil
}

func bound(p int32, off int64) string {
	return strconv.FormatInt(int64(p), 10) + ":" + strconv.FormatInt(off, 10)
}
