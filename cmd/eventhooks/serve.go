package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/eventhooks/eventhooks/admin"
	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/processor"
	"github.com/eventhooks/eventhooks/sinks"
)

// DevCmd runs everything on an embedded broker.
type DevCmd struct {
	EmbeddedFlags  `embed:""`
	TopicFlags     `embed:""`
	ProcessorFlags `embed:""`
	AdminFlags     `embed:""`
}

// Run starts the embedded broker, then the service against it.
func (c *DevCmd) Run(log *slog.Logger) error {
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
		DataDir: c.DataDir, Addr: c.KafkaAddr, Partitions: c.Partitions, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start embedded broker: %w", err)
	}
	defer emb.Close()
	log.Info("embedded Kafka broker", "addr", emb.Addrs(), "data_dir", c.DataDir)
	s := service{
		kafka:  broker.Config{Brokers: emb.Addrs(), ClientID: "eventhooks"},
		topics: c.TopicFlags, proc: c.ProcessorFlags, admin: c.AdminFlags, log: log,
	}
	return s.run()
}

// RunCmd runs the service against a cluster.
type RunCmd struct {
	KafkaFlags     `embed:""`
	TopicFlags     `embed:""`
	ProcessorFlags `embed:""`
	AdminFlags     `embed:""`
}

// Run starts the service.
func (c *RunCmd) Run(log *slog.Logger) error {
	s := service{kafka: c.KafkaFlags.config(), topics: c.TopicFlags, proc: c.ProcessorFlags, admin: c.AdminFlags, log: log}
	return s.run()
}

// BrokerCmd runs only the embedded broker, e.g. for several `run` instances.
type BrokerCmd struct {
	EmbeddedFlags `embed:""`
	TopicFlags    `embed:""`
}

// Run serves the embedded broker until SIGINT/SIGTERM.
func (c *BrokerCmd) Run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
		DataDir: c.DataDir, Addr: c.KafkaAddr, Partitions: c.Partitions, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start embedded broker: %w", err)
	}
	defer emb.Close()
	if err := bootstrap(ctx, broker.Config{Brokers: emb.Addrs()}, c.TopicFlags); err != nil {
		return err
	}
	log.Info("embedded Kafka broker ready", "addr", emb.Addrs(), "data_dir", c.DataDir)
	<-ctx.Done()
	return nil
}

// service is the processor, the hook store and the Admin API, wired.
type service struct {
	kafka  broker.Config
	topics TopicFlags
	proc   ProcessorFlags
	admin  AdminFlags
	log    *slog.Logger
}

func bootstrap(ctx context.Context, kc broker.Config, tf TopicFlags) error {
	opts, err := kc.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("cannot create Kafka client: %w", err)
	}
	defer cl.Close()
	bc := broker.BootstrapConfig{Partitions: tf.Partitions, ReplicationFactor: tf.ReplicationFactor}
	if err := broker.Bootstrap(ctx, kadm.NewClient(cl), tf.topics(), bc); err != nil {
		return fmt.Errorf("bootstrap topics: %w", err)
	}
	return nil
}

func (s *service) run() error {
	if err := s.kafka.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := bootstrap(ctx, s.kafka, s.topics); err != nil {
		return err
	}
	conn, err := s.kafka.ClientOpts()
	if err != nil {
		return err
	}
	group := []kgo.Opt{kgo.SessionTimeout(s.proc.SessionTimeout)}
	if s.proc.InstanceID != "" {
		group = append(group, kgo.InstanceID(s.proc.InstanceID))
	}
	topics := s.topics.topics()
	cat := hooks.NewCatalogue()
	pool := sinks.NewPool(sinks.PoolConfig{MaxConnsPerHost: s.proc.MaxConnsPerHost})
	defer pool.Close()
	compile := func(h *hooks.Hook) (sinks.Sink, error) { return sinks.Compile(h, pool, s.log) }

	proc, err := processor.New(processor.Config{
		ClientOpts: append(append([]kgo.Opt{}, conn...), group...), Group: s.proc.Group, Topics: topics.Events, Lanes: s.proc.Lanes,
		CommitInterval: s.proc.CommitInterval, MaxEventBytes: s.proc.MaxEventBytes,
		Compile: compile, Catalogue: cat, Logger: s.log,
		RetryTopic: topics.Retry, DLQTopic: topics.DLQ,
	})
	if err != nil {
		return err
	}
	defer proc.Close()
	storeCl, err := kgo.NewClient(append(append([]kgo.Opt{}, conn...), hooks.StoreClientOpts(topics.Hooks)...)...)
	if err != nil {
		return fmt.Errorf("cannot create hooks-topic client: %w", err)
	}
	defer storeCl.Close()
	store := hooks.NewStore(storeCl, topics.Hooks, cat, s.log, proc.ApplyHooks)

	api, err := admin.New(admin.Config{
		Store: store, Catalogue: cat, Logger: s.log,
		Check: func(h *hooks.Hook) error { _, err := compile(h); return err },
		Ready: readiness(store, proc),
		Token: s.admin.AdminToken,
	})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return store.Run(gctx) })
	g.Go(func() error {
		s.log.Info("admin API listening", "addr", "http://"+s.admin.AdminAddr)
		return api.ListenAndServe(s.admin.AdminAddr)
	})
	g.Go(func() error {
		select {
		case <-store.Loaded():
		case <-gctx.Done():
			return nil
		}
		s.log.Info("hooks loaded", "hooks", len(store.Snapshot().Hooks), "topic", topics.Hooks)
		return proc.Run(gctx)
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.proc.ShutdownTimeout)
		defer cancel()
		return api.Shutdown(sctx)
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	s.log.Info("stopped")
	return nil
}

func readiness(store *hooks.Store, proc *processor.Processor) func() (bool, string) {
	return func() (bool, string) {
		select {
		case <-store.Loaded():
		default:
			return false, "hooks not loaded yet"
		}
		if !proc.Joined() {
			return false, "consumer group not joined yet"
		}
		return true, ""
	}
}
