package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// DefaultClientID is the Kafka client id used when [Config.ClientID] is empty.
const DefaultClientID = "eventhooks"

// SASL mechanisms accepted by [Config.SASLMechanism] (case-insensitively).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Config is how eventhooks connects to a Kafka cluster. Each field is set by
// the CLI flag named in its comment; the zero value of an optional field
// means the default written next to it. Call [Config.Validate] (or
// [Config.ClientOpts], which validates) before use.
type Config struct {
	// Brokers are the seed brokers, host:port or host (port 9092). --brokers.
	Brokers []string
	// ClientID is the Kafka client id; default "eventhooks". --client-id.
	ClientID string

	// TLS dials the brokers over TLS. --tls.
	TLS bool
	// TLSCAFile is a PEM bundle of CAs that replaces the system roots for
	// verifying the brokers; default the system roots. --tls-ca-file.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the PEM client certificate and key for
	// mutual TLS; both or neither. --tls-cert-file, --tls-key-file.
	TLSCertFile, TLSKeyFile string
	// TLSInsecureSkipVerify accepts any broker certificate (testing only).
	// --tls-insecure-skip-verify.
	TLSInsecureSkipVerify bool
	// TLSServerName is the name the broker certificates must carry; default
	// the host of each broker dialled. --tls-server-name.
	TLSServerName string

	// SASLMechanism is "" (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512,
	// in any case. --sasl-mechanism.
	SASLMechanism string
	// SASLUser and SASLPassword are the SASL credentials, required with a
	// mechanism. --sasl-user, --sasl-password.
	SASLUser, SASLPassword string
}

// Validate reports every problem with c at once; each message names the CLI
// flag to fix. It does not read the TLS files: [Config.ClientOpts] does.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Brokers) == 0 {
		add("--brokers: at least one host:port is required")
	}
	for _, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			add("--brokers %q: %w", b, err)
		}
	}

	if !c.TLS {
		for _, f := range []struct {
			flag string
			set  bool
		}{
			{"--tls-ca-file", c.TLSCAFile != ""},
			{"--tls-cert-file", c.TLSCertFile != ""},
			{"--tls-key-file", c.TLSKeyFile != ""},
			{"--tls-insecure-skip-verify", c.TLSInsecureSkipVerify},
			{"--tls-server-name", c.TLSServerName != ""},
		} {
			if f.set {
				add("%s is set but --tls is not: add --tls", f.flag)
			}
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		add("--tls-cert-file and --tls-key-file: set both for a client certificate, or neither")
	}

	switch mech := c.saslMechanism(); mech {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			add("--sasl-user/--sasl-password are set but --sasl-mechanism is not: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUser == "" {
			add("--sasl-user is required with --sasl-mechanism %s", mech)
		}
		if c.SASLPassword == "" {
			add("--sasl-password is required with --sasl-mechanism %s", mech)
		}
	default:
		add("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	return errors.Join(errs...)
}

// checkHostPort accepts "host", "host:port" and "[v6]:port".
func checkHostPort(s string) error {
	if s == "" || strings.ContainsAny(s, " \t\r\n,") {
		return errors.New("want host:port")
	}
	if !strings.Contains(s, ":") {
		return nil // franz-go adds :9092
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("want host:port, the host is missing")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1-65535", port)
	}
	return nil
}

func (c Config) saslMechanism() string {
	return strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
}

// ClientOpts validates c and returns the franz-go options for connecting:
// seed brokers, client id, TLS dialling and SASL. Callers append their own
// options (consumer group, producer settings…). It reads the TLS files, so
// an unreadable file is reported here, naming its flag.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	clientID := c.ClientID
	if clientID == "" {
		clientID = DefaultClientID
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(clientID)}

	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := c.saslMech(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, //nolint:gosec // opted into by --tls-insecure-skip-verify
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file: cannot read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate found", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: cannot load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// saslMech returns the mechanism of a validated config, or nil for none.
func (c Config) saslMech() sasl.Mechanism {
	switch c.saslMechanism() {
	case SASLPlain:
		return plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}
