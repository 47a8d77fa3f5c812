package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/eventhooks/eventhooks/broker"
)

func TestCheckAdminExposure(t *testing.T) {
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:8080", "", true},
		{"[::1]:8080", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"10.0.0.5:8080", "", false},
		{"0.0.0.0:8080", "s3cret", true},
		{"nonsense", "", false},
	}
	for _, tt := range tests {
		s := service{admin: AdminFlags{AdminAddr: tt.addr, AdminToken: tt.token}}
		err := s.checkExposure()
		if (err == nil) != tt.ok {
			t.Errorf("admin %q, token=%q: %v", tt.addr, tt.token, err)
		}
		if err != nil && !strings.Contains(err.Error(), "--admin-addr") {
			t.Errorf("admin %q: error %q does not name --admin-addr", tt.addr, err)
		}
	}
}

// TestCheckIngestExposure: HTTP ingest on a non-loopback address without --ingest-token
// is refused like the Admin API without --admin-token, by the same check.
func TestCheckIngestExposure(t *testing.T) {
	const admin = "127.0.0.1:8080"
	tests := []struct {
		addr, token string
		want        string // "" = allowed
	}{
		{"", "", ""}, // ingest off
		{"127.0.0.1:9000", "", ""},
		{"localhost:9000", "", ""},
		{"[::1]:9000", "", ""},
		{"0.0.0.0:9000", "s3cret", ""},
		{"0.0.0.0:9000", "", "--ingest-addr 0.0.0.0:9000 is not a loopback address: set --ingest-token (EVENTHOOKS_INGEST_TOKEN) to protect HTTP ingest"},
		{":9000", "", "--ingest-addr :9000 is not a loopback address: set --ingest-token (EVENTHOOKS_INGEST_TOKEN) to protect HTTP ingest"},
		{"10.0.0.5:9000", "", "--ingest-addr 10.0.0.5:9000 is not a loopback address: set --ingest-token (EVENTHOOKS_INGEST_TOKEN) to protect HTTP ingest"},
		{"nonsense", "", `--ingest-addr "nonsense": address nonsense: missing port in address`},
	}
	for _, tt := range tests {
		s := service{admin: AdminFlags{AdminAddr: admin}, ingest: IngestFlags{IngestAddr: tt.addr, IngestToken: tt.token}}
		err := s.checkExposure()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("ingest %q, token=%q: error %q, want %q", tt.addr, tt.token, got, tt.want)
		}
	}
	// The admin token does not protect ingest.
	s := service{admin: AdminFlags{AdminAddr: "0.0.0.0:8080", AdminToken: "a"}, ingest: IngestFlags{IngestAddr: "0.0.0.0:9000"}}
	if err := s.checkExposure(); err == nil || !strings.Contains(err.Error(), "--ingest-token") {
		t.Errorf("ingest without its token behind an admin token: %v", err)
	}
}

// TestRunRefusesExposedIngest: the refusal happens at start, before any connection to
// Kafka is attempted (the brokers here do not exist).
func TestRunRefusesExposedIngest(t *testing.T) {
	s := service{
		kafka:  broker.Config{Brokers: []string{"127.0.0.1:1"}},
		admin:  AdminFlags{AdminAddr: "127.0.0.1:0"},
		ingest: IngestFlags{IngestAddr: "0.0.0.0:0"},
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	done := make(chan error, 1)
	go func() { done <- s.run() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "set --ingest-token (EVENTHOOKS_INGEST_TOKEN)") {
			t.Fatalf("run() = %v, want the ingest exposure refusal", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run() did not refuse an exposed ingest listener at start")
	}
}

func TestGCPercentDefaultsUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tt := range []struct {
		env  string
		want int
	}{{"", defaultGCPercent}, {"50", 77}} {
		t.Setenv("GOGC", tt.env)
		debug.SetGCPercent(77) // what the runtime would have read from GOGC
		setGCPercent()
		if got := debug.SetGCPercent(77); got != tt.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tt.env, got, tt.want)
		}
	}
}

func TestMemoryLimitDefaultsUnlessGOMEMLIMITIsSet(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tt := range []struct {
		env  string
		want int64
	}{{"", memoryLimit(containerMemoryLimit())}, {"1GiB", 1 << 30}} {
		t.Setenv("GOMEMLIMIT", tt.env)
		debug.SetMemoryLimit(1 << 30) // what the runtime would have read from GOMEMLIMIT
		tuneGC()
		if got := debug.SetMemoryLimit(-1); got != tt.want {
			t.Errorf("GOMEMLIMIT=%q: limit %d, want %d", tt.env, got, tt.want)
		}
	}
}

func TestMemoryLimitFollowsASmallerContainer(t *testing.T) {
	for _, tt := range []struct{ container, want int64 }{
		{0, defaultMemoryLimit},
		{1 << 30, defaultMemoryLimit},
		{100 << 20, 80 << 20},
	} {
		if got := memoryLimit(tt.container); got != tt.want {
			t.Errorf("container limit %d: %d, want %d", tt.container, got, tt.want)
		}
	}
}

// TestMetricsTokenFlagAndEnv: --metrics-token exists on run and dev and, like every
// flag, comes from EVENTHOOKS_METRICS_TOKEN too.
func TestMetricsTokenFlagAndEnv(t *testing.T) {
	parse := func(args ...string) CLI {
		t.Helper()
		var cli CLI
		p, err := kong.New(&cli, kong.Name("eventhooks"), kong.DefaultEnvars("EVENTHOOKS"))
		if err != nil {
			t.Fatalf("kong.New: %v", err)
		}
		if _, err := p.Parse(args); err != nil {
			t.Fatalf("parse %q: %v", args, err)
		}
		return cli
	}
	if got := parse("run", "--metrics-token", "flag").Run.MetricsToken; got != "flag" {
		t.Errorf("run --metrics-token flag: MetricsToken %q", got)
	}
	if got := parse("run").Run.MetricsToken; got != "" {
		t.Errorf("run: MetricsToken %q, want empty (public /metrics)", got)
	}
	t.Setenv("EVENTHOOKS_METRICS_TOKEN", "env")
	if got := parse("run").Run.MetricsToken; got != "env" {
		t.Errorf("run with EVENTHOOKS_METRICS_TOKEN=env: MetricsToken %q", got)
	}
	if got := parse("dev").Dev.MetricsToken; got != "env" {
		t.Errorf("dev with EVENTHOOKS_METRICS_TOKEN=env: MetricsToken %q", got)
	}
}
