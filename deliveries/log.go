package deliveries

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

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
	// EventsTopic is the topic replay jobs read (the first input topic): an attempt of an
	// event of another topic cannot be retried through one.
	EventsTopic string
	// PerHook, Total and DeadLetters bound the indexes (defaults above).
	PerHook, Total, DeadLetters int
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Log is the delivery log: the indexes and the consumer that fills them.
type Log struct {
	// Attempts indexes the attempts topic.
	Attempts *Index
	// DeadLetters indexes the DLQ topic.
	DeadLetters *DeadLetters

	cfg Config
	cl  *kgo.Client
}

// New creates the Log and its consumer; Run consumes.
func New(cfg Config) (*Log, error) {
	if cfg.AttemptsTopic == "" {
		return nil, errors.New("deliveries: Config.AttemptsTopic is required")
	}
	cfg.PerHook = cmpOr(cfg.PerHook, DefaultPerHook)
	cfg.Total = cmpOr(cfg.Total, DefaultTotal)
	cfg.DeadLetters = cmpOr(cfg.DeadLetters, DefaultDeadLetters)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	topics := []string{cfg.AttemptsTopic}
	if cfg.DLQTopic != "" {
		topics = append(topics, cfg.DLQTopic)
	}
	// Each partition starts Total records before its end: enough to fill the index
	// without reading days of log at start.
	opts := append(slices.Clone(cfg.ClientOpts),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-int64(cfg.Total))),
		kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(1<<20),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("deliveries: cannot create Kafka client: %w", err)
	}
	return &Log{
		Attempts: NewIndex(cfg.PerHook, cfg.Total), DeadLetters: NewDeadLetters(cfg.DeadLetters),
		cfg: cfg, cl: cl,
	}, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Run consumes the topics into the indexes until ctx is done, then returns nil.
func (l *Log) Run(ctx context.Context) error {
	for {
		fs := l.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			l.cfg.Logger.Debug("delivery log: fetch error", "topic", topic, "partition", p, "err", err)
		})
		fs.EachRecord(l.add)
	}
}

// add indexes one record of either topic; an attempt line that is not JSON is skipped.
func (l *Log) add(r *kgo.Record) {
	if r.Topic != l.cfg.AttemptsTopic {
		l.DeadLetters.Add(r)
		return
	}
	for line := range bytes.SplitSeq(r.Value, []byte{'\n'}) { // a record holds a lane's batch, a line each
		if len(line) == 0 {
			continue
		}
		var a Attempt
		if err := json.Unmarshal(line, &a); err != nil || a.HookID == "" {
			l.cfg.Logger.Debug("delivery log: skipped a line that is not an attempt", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		l.Attempts.Add(a)
	}
}

// Close closes the consumer; call it after Run returned.
func (l *Log) Close() { l.cl.Close() }

// ErrOtherTopic is returned for an attempt of an event that replay jobs cannot read.
var ErrOtherTopic = errors.New("replay jobs read only the first input topic")

// RetryRange returns the replay bounds ("from" and "to", in processor.ParseBound's
// partition:offset form) that select exactly the event of a: every partition of its
// topic is bounded, the others to an empty range at their end.
func (l *Log) RetryRange(ctx context.Context, a Attempt) (from, to string, err error) {
	if a.Topic != "" && a.Topic != l.cfg.EventsTopic {
		return "", "", fmt.Errorf("%w (%s), this event is in %s", ErrOtherTopic, l.cfg.EventsTopic, a.Topic)
	}
	ends, err := kadm.NewClient(l.cl).ListEndOffsets(ctx, l.cfg.EventsTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return "", "", fmt.Errorf("list end offsets of %s: %w", l.cfg.EventsTopic, err)
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
		return "", "", fmt.Errorf("%s has no offset %d in partition %d", l.cfg.EventsTopic, a.Offset, a.Partition)
	}
	return strings.Join(f, ","), strings.Join(t, ","), nil
}

func bound(p int32, off int64) string {
	return strconv.FormatInt(int64(p), 10) + ":" + strconv.FormatInt(off, 10)
}
