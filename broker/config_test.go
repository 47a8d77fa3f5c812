package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	base := Config{Brokers: []string{"localhost:9092"}}
	with := func(f func(*Config)) Config {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none = valid
	}{
		{"minimal", base, nil},
		{"host without port", with(func(c *Config) { c.Brokers = []string{"kafka"} }), nil},
		{"several brokers and ipv6", with(func(c *Config) { c.Brokers = []string{"a:9092", "[::1]:9093"} }), nil},
		{"no brokers", Config{}, []string{"--brokers: at least one"}},
		{"empty broker", with(func(c *Config) { c.Brokers = []string{"a:1", ""} }), []string{`--brokers ""`}},
		{"bad port", with(func(c *Config) { c.Brokers = []string{"a:99999"} }), []string{`--brokers "a:99999"`, "1-65535"}},
		{"missing host", with(func(c *Config) { c.Brokers = []string{":9092"} }), []string{`--brokers ":9092"`}},
		{"comma inside one broker", with(func(c *Config) { c.Brokers = []string{"a:1,b:2"} }), []string{"--brokers"}},
		{"tls full", with(func(c *Config) {
			c.TLS, c.TLSCAFile, c.TLSCertFile, c.TLSKeyFile, c.TLSServerName = true, "ca.pem", "c.pem", "k.pem", "kafka"
		}), nil},
		{"tls option without --tls", with(func(c *Config) { c.TLSCAFile = "ca.pem" }), []string{"--tls-ca-file is set but --tls is not"}},
		{"skip verify without --tls", with(func(c *Config) { c.TLSInsecureSkipVerify = true }), []string{"--tls-insecure-skip-verify is set"}},
		{"cert without key", with(func(c *Config) { c.TLS, c.TLSCertFile = true, "c.pem" }), []string{"--tls-cert-file and --tls-key-file"}},
		{"key without cert", with(func(c *Config) { c.TLS, c.TLSKeyFile = true, "k.pem" }), []string{"--tls-cert-file and --tls-key-file"}},
		{"plain", with(func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPassword = "PLAIN", "u", "p" }), nil},
		{"scram lower case", with(func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPassword = "scram-sha-512", "u", "p" }), nil},
		{"unknown mechanism", with(func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPassword = "FOO", "u", "p" }),
			[]string{`--sasl-mechanism "FOO": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`}},
		{"mechanism without credentials", with(func(c *Config) { c.SASLMechanism = "scram-sha-256" }),
			[]string{"--sasl-user is required with --sasl-mechanism SCRAM-SHA-256", "--sasl-password is required"}},
		{"credentials without mechanism", with(func(c *Config) { c.SASLUser = "u" }), []string{"--sasl-mechanism is not"}},
		{"every problem at once", Config{SASLMechanism: "X", TLSKeyFile: "k"},
			[]string{"--brokers", "--tls-key-file is set", "--sasl-mechanism"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestClientOptsErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"invalid config", Config{}, "--brokers"},
		{"missing CA file", Config{Brokers: []string{"a:1"}, TLS: true, TLSCAFile: filepath.Join(dir, "nope.pem")}, "--tls-ca-file: cannot read"},
		{"CA file without PEM", Config{Brokers: []string{"a:1"}, TLS: true, TLSCAFile: notPEM}, "no PEM certificate"},
		{"bad key pair", Config{Brokers: []string{"a:1"}, TLS: true, TLSCertFile: notPEM, TLSKeyFile: notPEM}, "--tls-cert-file/--tls-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := tt.cfg.ClientOpts()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ClientOpts() = %d opts, %v; want error containing %q", len(opts), err, tt.want)
			}
		})
	}
}
