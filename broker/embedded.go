package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultEmbeddedAddr is the listen address of the embedded broker when
// [EmbeddedConfig.Addr] is empty.
const DefaultEmbeddedAddr = "127.0.0.1:9092"

// EmbeddedConfig configures [StartEmbedded].
type EmbeddedConfig struct {
	// DataDir, when set, persists topics, records and committed group
	// offsets there, and reloads them on the next start. Empty keeps
	// everything in memory. One broker at a time may use a directory.
	DataDir string
	// Addr is the host:port to listen on; default "127.0.0.1:9092". Port 0
	// picks a free port, see [Embedded.Addrs].
	Addr string
	// AdvertisedHost is the host clients are told to connect to (Kafka's
	// advertised.listeners); default the host of Addr, or this machine's
	// hostname when Addr's host is unspecified ("0.0.0.0", "::" or "").
	AdvertisedHost string
	// Partitions is the partition count of topics created without one
	// (CreateTopics with -1); default 8.
	Partitions int32
	// SyncWrites fsyncs every produced batch. Without it a batch is handed
	// to the OS at once: it survives a killed process, not a power cut.
	SyncWrites bool
	// Logger receives the broker's warnings and errors; default none.
	Logger *slog.Logger
}

// Embedded is an in-process single-broker Kafka cluster (franz-go's kfake).
// It speaks the Kafka protocol on a TCP port, so eventhooks reaches it
// through the same client code as a real cluster.
type Embedded struct {
	cluster *kfake.Cluster
	unlock  func()
	once    sync.Once
}

// StartEmbedded starts an embedded broker listening on cfg.Addr. With a
// DataDir it first reloads what a previous broker persisted there, and fails
// if another broker, in this process or another, is using the directory.
// Topics are not created automatically: run [Bootstrap].
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultEmbeddedAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot start embedded broker: address %q: want host:port: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("cannot start embedded broker: address %q: port %q: want 0-65535", addr, port)
	}
	advertised := cfg.AdvertisedHost
	if advertised == "" && (host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified()) {
		if advertised, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("cannot start embedded broker: listening on %s needs an advertised host: %w", addr, err)
		}
	}
	partitions := cfg.Partitions
	if partitions <= 0 {
		partitions = DefaultPartitions
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.ClusterID("eventhooks"),
		// kfake listens on 127.0.0.1:<port> whatever we ask; listen on our
		// address instead, and advertise the host clients should dial.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil || advertised == "" {
				return ln, err
			}
			_, p, _ := net.SplitHostPort(ln.Addr().String())
			return advertisedListener{ln, advertisedAddr(net.JoinHostPort(advertised, p))}, nil
		}),
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogLogger{cfg.Logger}))
	}

	unlock := func() {}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create data dir: %w", err)
		}
		if unlock, err = lockDir(filepath.Join(cfg.DataDir, "eventhooks.lock")); err != nil {
			return nil, fmt.Errorf("cannot start embedded broker on data dir %s: %w", cfg.DataDir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("cannot start embedded broker on %s: %w", addr, err)
	}
	return &Embedded{cluster: c, unlock: unlock}, nil
}

// Addrs returns the address clients should use as seed brokers: the
// advertised host and the port actually bound.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Cluster returns the kfake cluster, for tests that inject faults (ControlKey).
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker; with a DataDir it first saves its state there.
// Calling Close again does nothing.
func (e *Embedded) Close() {
	e.once.Do(func() {
		e.cluster.Close()
		e.unlock()
	})
}

// advertisedListener reports the advertised address as its own: kfake puts
// the listener's address in metadata responses.
type advertisedListener struct {
	net.Listener
	addr advertisedAddr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

type advertisedAddr string

func (advertisedAddr) Network() string  { return "tcp" }
func (a advertisedAddr) String() string { return string(a) }

// slogLogger passes kfake's warnings and errors to slog; kfake's info and
// debug levels log every request.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	default:
		return
	}
	ctx := context.Background()
	if s.l.Enabled(ctx, sl) {
		s.l.Log(ctx, sl, fmt.Sprintf(format, args...), "component", "kfake")
	}
}

// errDirLocked is returned by lockDir when another broker holds the lock.
var errDirLocked = errors.New("data dir is in use by another embedded broker")
