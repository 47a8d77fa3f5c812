package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// startKfake starts a one-broker kfake cluster with extra options.
func startKfake(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// ping opens a client from cfg and sends one metadata request.
func ping(t *testing.T, cfg Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return newClient(t, cfg).Ping(ctx)
}

func TestSASL(t *testing.T) {
	c := startKfake(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "alice", "alice-secret"),
		kfake.Superuser("SCRAM-SHA-256", "bob", "bob-secret"),
		kfake.Superuser("SCRAM-SHA-512", "carol", "carol-secret"),
	)
	tests := []struct {
		name            string
		mech, user, pwd string
		ok              bool
	}{
		{"plain", "PLAIN", "alice", "alice-secret", true},
		{"scram-sha-256", "scram-sha-256", "bob", "bob-secret", true},
		{"scram-sha-512", "SCRAM-SHA-512", "carol", "carol-secret", true},
		{"plain wrong password", "PLAIN", "alice", "wrong", false},
		{"scram wrong password", "SCRAM-SHA-256", "bob", "wrong", false},
		{"wrong mechanism for user", "SCRAM-SHA-256", "alice", "alice-secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ping(t, Config{Brokers: c.ListenAddrs(), SASLMechanism: tt.mech, SASLUser: tt.user, SASLPassword: tt.pwd})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Ping = %v, want success", err)
			case !tt.ok && err == nil:
				// kfake closes the connection (EOF) where Kafka answers
				// SASL_AUTHENTICATION_FAILED.
				t.Fatalf("Ping succeeded, want an authentication failure")
			}
		})
	}
	if err := ping(t, Config{Brokers: c.ListenAddrs()}); err == nil {
		t.Errorf("Ping without SASL succeeded on a SASL broker")
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	serverCert, _ := writeSelfSigned(t, dir, "server", x509.ExtKeyUsageServerAuth)
	_, clientCA := writeSelfSigned(t, dir, "client", x509.ExtKeyUsageClientAuth)
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA)

	c := startKfake(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	}))
	mtls := startKfake(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	}))
	caFile := filepath.Join(dir, "server.pem")
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")

	tests := []struct {
		name    string
		cluster *kfake.Cluster
		cfg     Config
		wantErr string // "" = success
	}{
		{"ca file", c, Config{TLS: true, TLSCAFile: caFile}, ""},
		{"ca file and server name", c, Config{TLS: true, TLSCAFile: caFile, TLSServerName: "localhost"}, ""},
		{"wrong server name", c, Config{TLS: true, TLSCAFile: caFile, TLSServerName: "kafka.example"}, "certificate is valid for"},
		{"system roots", c, Config{TLS: true}, "certificate signed by unknown authority"},
		{"insecure skip verify", c, Config{TLS: true, TLSInsecureSkipVerify: true}, ""},
		{"plaintext to a TLS port", c, Config{}, "is TLS missing?"},
		{"mutual tls", mtls, Config{TLS: true, TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}, ""},
		{"mutual tls without client cert", mtls, Config{TLS: true, TLSCAFile: caFile}, "certificate required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Brokers = tt.cluster.ListenAddrs()
			err := ping(t, tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Ping = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Ping = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// writeSelfSigned writes name.pem and name-key.pem, a self-signed ECDSA
// certificate for 127.0.0.1 and localhost, and returns it.
func writeSelfSigned(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "eventhooks test " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pair, cert
}
