package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// DefaultTopicPrefix is the topic prefix used when [NewTopics] gets "".
const DefaultTopicPrefix = "eventhooks-"

// Defaults of [BootstrapConfig].
const (
	DefaultPartitions        int32 = 8
	DefaultReplicationFactor int16 = -1 // the broker's default.replication.factor
)

// ErrTopicConflict is wrapped by [Bootstrap] when a topic exists with
// settings eventhooks cannot work with. eventhooks never alters an existing
// topic, so an operator has to fix or delete it.
var ErrTopicConflict = errors.New("existing topic conflicts with eventhooks")

// Topics names the topics eventhooks uses.
type Topics struct {
	// Events are the input topics, consumed by the processor. The first one
	// decides the partition count of State.
	Events []string
	// Hooks is the compacted topic of hook definitions (key = hook id).
	Hooks string
	// State is the compacted changelog of gate state (snooze/on_change),
	// co-partitioned with Events[0].
	State string
	// Retry holds deliveries waiting for their next attempt.
	Retry string
	// DLQ holds dead letters.
	DLQ string
	// Attempts is the attempt log: one record per delivery attempt (key = hook id),
	// kept for BootstrapConfig.AttemptsRetention.
	Attempts string
}

// NewTopics returns the topic names for prefix (default
// [DefaultTopicPrefix] when empty): prefix + "events", "hooks", "state",
// "retry", "dlq", "attempts". A non-empty eventsOverride (--topics) replaces the events
// topic; empty names in it are dropped.
func NewTopics(prefix string, eventsOverride []string) Topics {
	if prefix == "" {
		prefix = DefaultTopicPrefix
	}
	t := Topics{
		Events:   []string{prefix + "events"},
		Hooks:    prefix + "hooks",
		State:    prefix + "state",
		Retry:    prefix + "retry",
		DLQ:      prefix + "dlq",
		Attempts: prefix + "attempts",
	}
	var events []string
	for _, e := range eventsOverride {
		if e = strings.TrimSpace(e); e != "" {
			events = append(events, e)
		}
	}
	if len(events) > 0 {
		t.Events = events
	}
	return t
}

// Validate checks that every name is a legal Kafka topic name and that no
// topic plays two roles (an input topic that is also the DLQ would loop).
func (t Topics) Validate() error {
	if len(t.Events) == 0 {
		return errors.New("invalid topics: no events topic")
	}
	roles := make(map[string]string, len(t.Events)+4)
	var errs []error
	check := func(role, name string) {
		if err := checkTopicName(name); err != nil {
			errs = append(errs, fmt.Errorf("invalid %s topic %q: %w", role, name, err))
			return
		}
		if other, ok := roles[name]; ok {
			errs = append(errs, fmt.Errorf("invalid topics: %s is both the %s and the %s topic", name, other, role))
			return
		}
		roles[name] = role
	}
	for _, e := range t.Events {
		check("events", e)
	}
	check("hooks", t.Hooks)
	check("state", t.State)
	check("retry", t.Retry)
	check("dlq", t.DLQ)
	check("attempts", t.Attempts)
	return errors.Join(errs...)
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New(`"." and ".." are not allowed`)
	case len(name) > 249:
		return errors.New("longer than 249 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("character %q: want ASCII letters, digits, '.', '_' and '-'", r)
		}
	}
	return nil
}

// BootstrapConfig sets how [Bootstrap] creates missing topics.
type BootstrapConfig struct {
	// Partitions of a created events, retry or DLQ topic; default 8. State
	// always gets the partition count of the first events topic, and Hooks
	// one partition.
	Partitions int32
	// ReplicationFactor of created topics; default -1, the broker's
	// default.replication.factor.
	ReplicationFactor int16
	// AttemptsRetention is the retention.ms of a created attempts topic; default
	// DefaultAttemptsRetention.
	AttemptsRetention time.Duration
}

// DefaultAttemptsRetention is how long a created attempts topic keeps the attempt log.
const DefaultAttemptsRetention = 7 * 24 * time.Hour

// hooksPartitions is the partition count of a created hooks topic. Hook
// definitions are few and every instance reads all of them, so one
// partition gives one total order of changes and one offset to wait for,
// like Kafka Connect's config topic.
const hooksPartitions = 1

// Bootstrap creates the topics of t that do not exist: Hooks and State with
// cleanup.policy=compact, Events, Retry, DLQ and Attempts with cleanup.policy=delete
// (Attempts with retention.ms of AttemptsRetention).
// State gets the partition count of Events[0], existing or created, so gate
// state is co-partitioned with its input; a missing Events[0] next to an
// existing State gets State's count. Other events topics are created with
// the count of Events[0] too.
//
// It never alters an existing topic. It returns an error wrapping
// [ErrTopicConflict] when an existing Hooks or State topic is not compacted,
// or when State exists with a partition count other than Events[0]'s; it
// checks existing topics before it creates anything.
//
// Bootstrap is idempotent and several instances may run it at once: a topic
// that another instance creates first (TOPIC_ALREADY_EXISTS) is checked like
// one that existed before.
func Bootstrap(ctx context.Context, adm *kadm.Client, t Topics, bc BootstrapConfig) error {
	if adm == nil {
		return errors.New("cannot bootstrap topics: nil admin client")
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if bc.Partitions <= 0 {
		bc.Partitions = DefaultPartitions
	}
	if bc.AttemptsRetention <= 0 {
		bc.AttemptsRetention = DefaultAttemptsRetention
	}
	switch {
	case bc.ReplicationFactor == 0:
		bc.ReplicationFactor = DefaultReplicationFactor
	case bc.ReplicationFactor < -1:
		return fmt.Errorf("cannot bootstrap topics: replication factor %d: want -1 (broker default) or more than 0", bc.ReplicationFactor)
	}

	b := &bootstrapper{adm: adm, bc: bc, compacted: map[string]bool{t.Hooks: true, t.State: true},
		parked: map[string]bool{t.Retry: true, t.DLQ: true}, attempts: t.Attempts}
	names := append(slices.Clone(t.Events), t.Hooks, t.State, t.Retry, t.DLQ, t.Attempts)

	// Check everything that exists before creating anything, so a refusal
	// leaves the cluster as it was.
	existing, err := b.describe(ctx, names)
	if err != nil {
		return err
	}
	for _, name := range names {
		if info, ok := existing[name]; ok {
			if err := b.check(name, info); err != nil {
				return err
			}
		}
	}
	ev, evOK := existing[t.Events[0]]
	st, stOK := existing[t.State]
	if evOK && stOK {
		if err := checkCoPartitioned(t.State, st.partitions, t.Events[0], ev.partitions); err != nil {
			return err
		}
	}

	// Create what is missing, events first: state follows its partitions
	// (and a missing events topic follows an existing state topic).
	b.existing = existing
	evWant := bc.Partitions
	if stOK {
		evWant = st.partitions
	}
	evParts, err := b.ensure(ctx, t.Events[0], evWant)
	if err != nil {
		return err
	}
	for _, name := range t.Events[1:] {
		if err := b.ensureCoPartitioned(ctx, name, t.Events[0], evParts); err != nil {
			return err
		}
	}
	if err := b.ensureCoPartitioned(ctx, t.State, t.Events[0], evParts); err != nil {
		return err
	}
	if _, err := b.ensure(ctx, t.Hooks, hooksPartitions); err != nil {
		return err
	}
	// The retry topic is co-partitioned too: parked deliveries go to their event's
	// partition number, owned by the same member as the events partition.
	if err := b.ensureCoPartitioned(ctx, t.Retry, t.Events[0], evParts); err != nil {
		return err
	}
	if _, err := b.ensure(ctx, t.DLQ, bc.Partitions); err != nil {
		return err
	}
	if _, err := b.ensure(ctx, t.Attempts, bc.Partitions); err != nil {
		return err
	}
	// Refresh the admin client's metadata cache, which still says our
	// created topics do not exist (see describe).
	if _, err := b.describe(ctx, names); err != nil {
		return err
	}
	return nil
}

// ensureCoPartitioned is ensure for a topic co-partitioned with the events topic, which
// has evParts partitions: created with as many, or refused when it exists with others.
func (b *bootstrapper) ensureCoPartitioned(ctx context.Context, name, events string, evParts int32) error {
	parts, err := b.ensure(ctx, name, evParts)
	if err != nil {
		return err
	}
	return checkCoPartitioned(name, parts, events, evParts)
}

// checkCoPartitioned refuses a topic whose partition count differs from the events
// topic's: the state and retry topics, and every input topic, are co-partitioned (key k
// of partition p lives in partition p of each, owned by one member).
func checkCoPartitioned(name string, parts int32, events string, evParts int32) error {
	if parts == evParts {
		return nil
	}
	return fmt.Errorf("%w: topic %s has %d partitions but events topic %s has %d; "+
		"the input, state and retry topics must have as many partitions as the events topic (they are co-partitioned): "+
		"add partitions to the smaller (kafka-topics --alter --partitions), delete and let eventhooks recreate an empty state or retry topic, or use another --topic-prefix",
		ErrTopicConflict, name, parts, events, evParts)
}

type topicInfo struct {
	partitions int32
	policy     string // cleanup.policy; only read for compacted topics
}

type bootstrapper struct {
	adm       *kadm.Client
	bc        BootstrapConfig
	compacted map[string]bool      // topics that must be compacted
	parked    map[string]bool      // the retry and DLQ topics
	attempts  string               // the attempts topic
	existing  map[string]topicInfo // topics found by the first describe
}

// describe returns the topics of names that exist; a missing topic is absent
// from the map.
func (b *bootstrapper) describe(ctx context.Context, names []string) (map[string]topicInfo, error) {
	// kadm answers ListTopics from the client's metadata cache, which keeps
	// "unknown topic" for MetadataMinAge (5 s) even after we create the
	// topic. Asking for authorized operations makes kadm send a real
	// metadata request, which also refreshes that cache.
	tds, err := b.adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
	if err != nil {
		return nil, fmt.Errorf("cannot list topics: %w", err)
	}
	out := make(map[string]topicInfo, len(names))
	var withConfig []string
	for _, name := range names {
		td, ok := tds[name]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if td.Err != nil {
			return nil, fmt.Errorf("cannot describe topic %s: %w", name, td.Err)
		}
		out[name] = topicInfo{partitions: int32(len(td.Partitions))}
		if b.compacted[name] {
			withConfig = append(withConfig, name)
		}
	}
	if len(withConfig) == 0 {
		return out, nil
	}
	rcs, err := b.adm.DescribeTopicConfigs(ctx, withConfig...)
	if err != nil {
		return nil, fmt.Errorf("cannot describe configs of topics %s: %w", strings.Join(withConfig, ", "), err)
	}
	for _, rc := range rcs {
		info, ok := out[rc.Name]
		if !ok {
			continue
		}
		if rc.Err != nil {
			return nil, fmt.Errorf("cannot describe configs of topic %s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" {
				info.policy = c.MaybeValue()
			}
		}
		out[rc.Name] = info
	}
	return out, nil
}

// check refuses an existing topic that must be compacted and is not.
func (b *bootstrapper) check(name string, info topicInfo) error {
	if !b.compacted[name] || compactOnly(info.policy) {
		return nil
	}
	policy := info.policy
	if policy == "" {
		policy = "(unset)"
	}
	return fmt.Errorf("%w: topic %s has cleanup.policy=%s but eventhooks requires cleanup.policy=compact "+
		"(it keeps the latest record of every key, forever); eventhooks does not alter existing topics: "+
		"run kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact, "+
		"or delete the topic to have it recreated",
		ErrTopicConflict, name, policy, name)
}

// compactOnly reports whether a cleanup.policy compacts and never deletes
// by retention ("compact,delete" would expire hook definitions).
func compactOnly(policy string) bool {
	var compact bool
	for p := range strings.SplitSeq(strings.Trim(policy, "[]"), ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			return false
		}
	}
	return compact
}

// parkedMaxMessageBytes fits a 1 MiB event parked in the retry or DLQ topic.
var parkedMaxMessageBytes = "2097152"

// ensure creates topic name with parts partitions unless it exists, and
// returns its partition count.
func (b *bootstrapper) ensure(ctx context.Context, name string, parts int32) (int32, error) {
	if info, ok := b.existing[name]; ok {
		return info.partitions, nil
	}
	policy := "delete"
	if b.compacted[name] {
		policy = "compact"
	}
	configs := map[string]*string{"cleanup.policy": &policy}
	if b.parked[name] {
		// A parked entry holds its event as it was plus the delivery history in headers:
		// a little more than the largest event must fit.
		configs["max.message.bytes"] = &parkedMaxMessageBytes
	}
	if name == b.attempts {
		retention := strconv.FormatInt(b.bc.AttemptsRetention.Milliseconds(), 10)
		configs["retention.ms"] = &retention
	}
	resp, err := b.adm.CreateTopic(ctx, parts, b.bc.ReplicationFactor, configs, name)
	switch {
	case err == nil:
		if resp.NumPartitions > 0 {
			return resp.NumPartitions, nil
		}
		return parts, nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return b.createdElsewhere(ctx, name)
	default:
		if resp.ErrMessage != "" {
			return 0, fmt.Errorf("cannot create topic %s: %w: %s", name, err, resp.ErrMessage)
		}
		return 0, fmt.Errorf("cannot create topic %s: %w", name, err)
	}
}

// createdElsewhere checks a topic that another instance created while we
// were bootstrapping. Its metadata may take a moment to reach the broker we
// ask, so we retry briefly.
func (b *bootstrapper) createdElsewhere(ctx context.Context, name string) (int32, error) {
	const attempts = 20
	for i := 0; ; i++ {
		infos, err := b.describe(ctx, []string{name})
		if err != nil {
			return 0, err
		}
		if info, ok := infos[name]; ok && info.partitions > 0 {
			if err := b.check(name, info); err != nil {
				return 0, err
			}
			return info.partitions, nil
		}
		if i == attempts-1 {
			return 0, fmt.Errorf("cannot create topic %s: it already exists but its metadata is not visible", name)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("cannot create topic %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
