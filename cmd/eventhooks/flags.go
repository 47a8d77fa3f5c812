package main

import (
	"time"

	"github.com/eventhooks/eventhooks/broker"
)

// KafkaFlags connect to a cluster.
type KafkaFlags struct {
	Brokers               []string `help:"Kafka seed brokers, comma separated." default:"127.0.0.1:9092" sep:","`
	ClientID              string   `help:"Kafka client id." default:"eventhooks"`
	TLS                   bool     `name:"tls" help:"Connect with TLS."`
	TLSCAFile             string   `name:"tls-ca-file" help:"CA bundle to verify the brokers (PEM)."`
	TLSCertFile           string   `name:"tls-cert-file" help:"Client certificate (PEM)."`
	TLSKeyFile            string   `name:"tls-key-file" help:"Client key (PEM)."`
	TLSInsecureSkipVerify bool     `name:"tls-insecure-skip-verify" help:"Do not verify broker certificates."`
	TLSServerName         string   `name:"tls-server-name" help:"Server name to verify broker certificates against."`
	SASLMechanism         string   `name:"sasl-mechanism" help:"SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."`
	SASLUser              string   `name:"sasl-user" help:"SASL user."`
	SASLPassword          string   `name:"sasl-password" help:"SASL password."`
}

func (f KafkaFlags) config() broker.Config {
	return broker.Config{
		Brokers: f.Brokers, ClientID: f.ClientID,
		TLS: f.TLS, TLSCAFile: f.TLSCAFile, TLSCertFile: f.TLSCertFile, TLSKeyFile: f.TLSKeyFile,
		TLSInsecureSkipVerify: f.TLSInsecureSkipVerify, TLSServerName: f.TLSServerName,
		SASLMechanism: f.SASLMechanism, SASLUser: f.SASLUser, SASLPassword: f.SASLPassword,
	}
}

// TopicFlags name and shape the topics.
type TopicFlags struct {
	TopicPrefix         string        `help:"Prefix of the topics eventhooks owns (events, hooks, state, retry, dlq, attempts)." default:"eventhooks-"`
	Topics              []string      `help:"Input topics, overriding <prefix>events (e.g. a gateway's own topics)." sep:","`
	Partitions          int32         `help:"Partitions of topics created at start-up." default:"8"`
	ReplicationFactor   int16         `help:"Replication factor of topics created at start-up (-1: broker default)." default:"-1"`
	AttemptLogRetention time.Duration `help:"How long a created attempts topic keeps the attempt log." default:"168h"`
}

func (f TopicFlags) topics() broker.Topics { return broker.NewTopics(f.TopicPrefix, f.Topics) }

// ProcessorFlags tune the processor.
type ProcessorFlags struct {
	Group                   string        `help:"Consumer group." default:"eventhooks"`
	Lanes                   int           `help:"Key lanes per partition: the delivery concurrency of one partition." default:"16"`
	NoAttemptLog            bool          `help:"Do not write the attempt log (<prefix>attempts: every delivery attempt, for the deliveries API)."`
	PartitionBufferBytes    int           `help:"Bytes of an input partition's records fetched and not yet handled; past it, fetching the partition pauses (bounds memory while a backlog drains)." default:"4194304"`
	CommitInterval          time.Duration `help:"How often done offsets are committed." default:"1s"`
	MaxEventBytes           int           `help:"Largest record value accepted." default:"1048576"`
	MaxConnsPerHost         int           `help:"Connections per webhook destination." default:"64"`
	DestinationRateLimit    float64       `help:"Requests per second at most to each destination (host:port), every hook together; 0: no limit. A hook's own rate_limit applies as well."`
	AllowDestinations       string        `help:"CIDRs or IPs that deliveries may reach although they are loopback, private or link-local (SSRF guard), comma separated; dev allows loopback by default."`
	ShutdownTimeout         time.Duration `help:"How long a shutdown waits for in-flight deliveries." default:"30s"`
	GateEntriesPerPartition int           `help:"Most snooze/on_change entries kept per partition; the least recently fired are evicted first (~220 B each)." default:"262144"`
	SessionTimeout          time.Duration `help:"Consumer group session timeout: how long a crashed instance holds its partitions." default:"45s"`
	InstanceID              string        `help:"Static group membership id (e.g. the pod name): a restarted instance gets its partitions back at once."`
}

// AdminFlags configure the Admin API.
type AdminFlags struct {
	AdminAddr  string `help:"Admin API listen address." default:"127.0.0.1:8080"`
	AdminToken string `help:"Bearer token required by the Admin API (also Kong-Admin-Token)."`
	// MetricsToken protects /metrics, which the admin token does not cover (Prometheus
	// scrapes it): its series name hooks and label every destination host:port.
	MetricsToken string `help:"Bearer token required by /metrics on the Admin API's listener; empty: /metrics is served to anyone who reaches the listener."`
}

// EmbeddedFlags configure the embedded broker.
type EmbeddedFlags struct {
	DataDir   string `help:"Directory of the embedded broker's data." default:".eventhooks" type:"path"`
	KafkaAddr string `help:"Listen address of the embedded broker." default:"127.0.0.1:9092"`
}

// IngestFlags configure HTTP ingest (POST /events), off unless --ingest-addr is set.
type IngestFlags struct {
	IngestAddr     string `help:"Listen address of HTTP ingest (POST /events, JSON or NDJSON envelopes, or Kong webhook bodies); empty: off."`
	IngestToken    string `help:"Bearer token required by HTTP ingest."`
	IngestKeyField string `help:"Data field(s) giving the entity key of ingested events without a key, comma separated, first found wins (e.g. entity.id,upstream_id)."`
}
