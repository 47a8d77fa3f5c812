package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/eventhooks/eventhooks/admin"
	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/ingest"
	"github.com/eventhooks/eventhooks/processor"
	"github.com/eventhooks/eventhooks/sinks"
)

// DevCmd runs everything on an embedded broker.
type DevCmd struct {
	EmbeddedFlags  `embed:""`
	TopicFlags     `embed:""`
	ProcessorFlags `embed:""`
	AdminFlags     `embed:""`
	IngestFlags    `embed:""`
	HooksFileFlags `embed:""`
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
	if c.AllowDestinations == "" {
		c.AllowDestinations = "127.0.0.0/8,::1"
		log.Warn("dev: webhook deliveries to loopback addresses are allowed (--allow-destinations 127.0.0.0/8,::1); `run` refuses them unless allowed")
	}
	s := service{
		kafka:  broker.Config{Brokers: emb.Addrs(), ClientID: "eventhooks"},
		topics: c.TopicFlags, proc: c.ProcessorFlags, admin: c.AdminFlags, ingest: c.IngestFlags, log: log,
		hooksFile: c.HooksFile,
	}
	return s.run()
}

// RunCmd runs the service against a cluster.
type RunCmd struct {
	KafkaFlags     `embed:""`
	TopicFlags     `embed:""`
	ProcessorFlags `embed:""`
	AdminFlags     `embed:""`
	IngestFlags    `embed:""`
	HooksFileFlags `embed:""`
	CPUProfile     string `name:"cpuprofile" help:"Write a CPU profile of the whole process, from start to stop, to this file." type:"path"`
}

// Run starts the service.
func (c *RunCmd) Run(log *slog.Logger) error {
	tuneGC()
	stop, err := startCPUProfile(c.CPUProfile, log)
	if err != nil {
		return err
	}
	defer stop()
	s := service{kafka: c.KafkaFlags.config(), topics: c.TopicFlags, proc: c.ProcessorFlags, admin: c.AdminFlags, ingest: c.IngestFlags, log: log,
		hooksFile: c.HooksFile}
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
	ingest IngestFlags
	log    *slog.Logger
	// hooksFile is --hooks-file, "" when unset.
	hooksFile string
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
	bc := broker.BootstrapConfig{Partitions: tf.Partitions, ReplicationFactor: tf.ReplicationFactor,
		AttemptsRetention: tf.AttemptLogRetention}
	if err := broker.Bootstrap(ctx, kadm.NewClient(cl), tf.topics(), bc); err != nil {
		return fmt.Errorf("bootstrap topics: %w", err)
	}
	return nil
}

// core is what every command that delivers needs: the catalogue, the client pool, the
// processor and the hook store feeding it.
type core struct {
	topics  broker.Topics
	cat     *hooks.Catalogue
	pool    *sinks.Pool
	guard   *sinks.Guard
	compile func(*hooks.Hook) (sinks.Sink, error)
	proc    *processor.Processor
	storeCl *kgo.Client
	store   *hooks.Store
}

// newCore validates the flags, bootstraps the topics and wires the core.
func (s *service) newCore(ctx context.Context) (*core, error) {
	if err := s.kafka.Validate(); err != nil {
		return nil, err
	}
	if err := bootstrap(ctx, s.kafka, s.topics); err != nil {
		return nil, err
	}
	conn, err := s.kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	group := []kgo.Opt{kgo.SessionTimeout(s.proc.SessionTimeout)}
	if s.proc.InstanceID != "" {
		group = append(group, kgo.InstanceID(s.proc.InstanceID))
	}
	allow, err := sinks.ParseAllowList(s.proc.AllowDestinations)
	if err != nil {
		return nil, err
	}
	if r := s.proc.DestinationRateLimit; !(r >= 0) { // NaN too
		return nil, fmt.Errorf("--destination-rate-limit %v: want 0 (no limit) or more requests per second", r)
	}
	c := &core{topics: s.topics.topics(), cat: hooks.NewCatalogue(), guard: sinks.NewGuard(allow)}
	c.pool = sinks.NewPool(sinks.PoolConfig{MaxConnsPerHost: s.proc.MaxConnsPerHost, DestinationRate: s.proc.DestinationRateLimit,
		Guard: c.guard, Logger: s.log})
	c.compile = func(h *hooks.Hook) (sinks.Sink, error) { return sinks.Compile(h, c.pool, s.log) }
	c.proc, err = processor.New(processor.Config{
		ClientOpts: append(append([]kgo.Opt{}, conn...), group...), Group: s.proc.Group,
		Topics: c.topics.Events, Lanes: s.proc.Lanes, PartitionBufferBytes: s.proc.PartitionBufferBytes,
		CommitInterval: s.proc.CommitInterval, MaxEventBytes: s.proc.MaxEventBytes,
		Compile: c.compile, Catalogue: c.cat, Logger: s.log,
		RetryTopic: c.topics.Retry, DLQTopic: c.topics.DLQ, StateTopic: c.topics.State,
		GateEntriesPerPartition: s.proc.GateEntriesPerPartition,
		DisableHook:             c.disableHook,
		AttemptsTopic:           attemptsTopic(s.proc.NoAttemptLog, c.topics),
	})
	if err != nil {
		c.pool.Close()
		return nil, err
	}
	c.storeCl, err = kgo.NewClient(append(append([]kgo.Opt{}, conn...), hooks.StoreClientOpts(c.topics.Hooks)...)...)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("cannot create hooks-topic client: %w", err)
	}
	c.store = hooks.NewStore(c.storeCl, c.topics.Hooks, c.cat, s.log, c.proc.ApplyHooks)
	return c, nil
}

// attemptsTopic is where the processor writes the attempt log: none with --no-attempt-log.
func attemptsTopic(off bool, t broker.Topics) string {
	if off {
		return ""
	}
	return t.Attempts
}

// disableHook writes hook id disabled with reason (auto_disable_after). A hook deleted
// meanwhile needs nothing.
func (c *core) disableHook(ctx context.Context, id, reason string) error {
	h, ok := c.store.Snapshot().Get(id)
	if !ok {
		return nil
	}
	return c.store.Put(ctx, h.AutoDisabled(reason, time.Now()))
}

// destinationWarning tells an Admin API client that the SSRF guard will refuse a hook's
// destination as it resolves now.
func (c *core) destinationWarning(h *hooks.Hook) string {
	var cfg struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(h.Config, &cfg) != nil || cfg.URL == "" {
		return ""
	}
	return c.guard.CheckURL(cfg.URL)
}

func (c *core) close() {
	if c.storeCl != nil {
		c.storeCl.Close()
	}
	c.proc.Close()
	c.pool.Close()
}

// waitHooks waits until the store has read the hooks topic to its end.
func (c *core) waitHooks(ctx context.Context) error {
	select {
	case <-c.store.Loaded():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *service) run() error {
	if err := s.checkExposure(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := s.newCore(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	probe := newBrokerProbe(c.storeCl)
	jobs := processor.NewReplayJobs(c.proc, func(id string) bool { _, ok := c.store.Snapshot().Get(id); return ok })
	defer jobs.Close()
	dlog, ui, err := s.deliveryLog(c)
	if err != nil {
		return err
	}
	defer dlog.Close()
	api, err := admin.New(admin.Config{
		Replays: jobs, Deliveries: dlog, Console: ui,
		Loaded: c.store.Loaded(),
		Store:  c.store, Catalogue: c.cat, Logger: s.log,
		Check: func(h *hooks.Hook) error { _, err := c.compile(h); return err },
		Warn:  c.destinationWarning,
		Ready: readiness(c.store, c.proc, probe),
		Test:  sinks.Tester{Pool: c.pool, Logger: s.log}.Test,
		Ping:  sinks.Tester{Pool: c.pool, Logger: s.log}.Ping,
		Token: s.admin.AdminToken, MetricsToken: s.admin.MetricsToken,
	})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.store.Run(gctx) })
	g.Go(func() error { return probe.run(gctx) })
	g.Go(func() error { return dlog.Run(gctx) })
	g.Go(func() error {
		s.log.Info("admin API listening", "addr", "http://"+s.admin.AdminAddr)
		return api.ListenAndServe(s.admin.AdminAddr)
	})
	g.Go(func() error {
		if c.waitHooks(gctx) != nil {
			return nil
		}
		s.log.Info("hooks loaded", "hooks", len(c.store.Snapshot().Hooks), "topic", c.topics.Hooks)
		return c.proc.Run(gctx)
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), s.proc.ShutdownTimeout)
		defer cancel()
		return api.Shutdown(sctx)
	})
	if s.hooksFile != "" {
		g.Go(func() error { return s.watchHooksFile(gctx, api, c) })
	}
	if s.ingest.IngestAddr != "" {
		if err := s.serveIngest(gctx, g, c); err != nil {
			return err
		}
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	s.log.Info("stopped")
	return nil
}

// serveIngest runs HTTP ingest in g until ctx ends. Its producer waits for every replica
// (acks=all, idempotent) and allows batches a little over the largest event.
func (s *service) serveIngest(ctx context.Context, g *errgroup.Group, c *core) error {
	conn, err := s.kafka.ClientOpts()
	if err != nil {
		return err
	}
	prod, err := kgo.NewClient(append(conn,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(int32(s.proc.MaxEventBytes)+64<<10),
		kgo.RecordDeliveryTimeout(30*time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create ingest producer: %w", err)
	}
	in, err := ingest.New(ingest.Config{
		Producer: prod, Topic: c.topics.Events[0], KeyField: s.ingest.IngestKeyField,
		Token: s.ingest.IngestToken, MaxEventBytes: s.proc.MaxEventBytes, Timeout: 30 * time.Second, Logger: s.log,
	})
	if err != nil {
		prod.Close()
		return err
	}
	g.Go(func() error {
		s.log.Info("HTTP ingest listening", "addr", "http://"+s.ingest.IngestAddr+"/events")
		return in.ListenAndServe(s.ingest.IngestAddr)
	})
	g.Go(func() error {
		<-ctx.Done()
		defer prod.Close()
		sctx, cancel := context.WithTimeout(context.Background(), s.proc.ShutdownTimeout)
		defer cancel()
		return in.Shutdown(sctx)
	})
	return nil
}

// checkExposure refuses to start an HTTP listener on a non-loopback address without its
// token: the Admin API can create hooks that send data anywhere, and HTTP ingest lets
// anyone inject events that every matching hook delivers.
func (s *service) checkExposure() error {
	if err := checkListener("--admin-addr", s.admin.AdminAddr, "--admin-token", s.admin.AdminToken, "the Admin API"); err != nil {
		return err
	}
	if s.ingest.IngestAddr == "" {
		return nil
	}
	return checkListener("--ingest-addr", s.ingest.IngestAddr, "--ingest-token", s.ingest.IngestToken, "HTTP ingest")
}

// checkListener refuses addr (the value of addrFlag) when it is not a loopback address
// and token (the value of tokenFlag) is empty; the error names both flags and the
// token's environment variable.
func checkListener(addrFlag, addr, tokenFlag, token, what string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", addrFlag, addr, err)
	}
	if token != "" || host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	env := "EVENTHOOKS_" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(tokenFlag, "--"), "-", "_"))
	return fmt.Errorf("%s %s is not a loopback address: set %s (%s) to protect %s", addrFlag, addr, tokenFlag, env, what)
}
