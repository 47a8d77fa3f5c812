package hooks

import "strings"

// The config of each handler: what a hook's "config" holds for it. validateConfig (in
// validate.go) decodes a hook's config into one of these, checks it and stores it back
// normalised; sinks decode it again to compile the hook.

// WebhookConfig is the config of the webhook handler.
type WebhookConfig struct {
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Secret    *string           `json:"secret"`
	SSLVerify bool              `json:"ssl_verify"`

	Pipelining // an extension: pipeline, pipeline_max_conns, pipeline_max_pending
}

// WebhookCustomConfig is the config of the webhook-custom handler.
type WebhookCustomConfig struct {
	URL           string            `json:"url"`
	Method        string            `json:"method"`
	Headers       map[string]string `json:"headers"`
	HeadersFormat *bool             `json:"headers_format"`
	Payload       map[string]string `json:"payload"`
	PayloadFormat *bool             `json:"payload_format"`
	Body          *string           `json:"body"`
	BodyFormat    *bool             `json:"body_format"`
	Secret        *string           `json:"secret"`
	SSLVerify     bool              `json:"ssl_verify"`

	Pipelining // an extension: pipeline, pipeline_max_conns, pipeline_max_pending
}

// Pipelining is the opt-in HTTP/1.1 pipelining of a webhook or webhook-custom hook (an
// eventhooks extension of Kong's config: pipeline, pipeline_max_conns,
// pipeline_max_pending): with Pipeline, the hook's requests to its configured
// destination go over at most PipelineMaxConns connections of its own, each carrying up
// to PipelineMaxPending requests written before their responses arrive. The fields are
// left out of a stored config when unset, so hooks that do not use them keep Kong's
// shape.
type Pipelining struct {
	Pipeline           bool `json:"pipeline,omitempty"`
	PipelineMaxConns   int  `json:"pipeline_max_conns,omitempty"`
	PipelineMaxPending int  `json:"pipeline_max_pending,omitempty"`
}

// Bounds and defaults of Pipelining (0 or unset takes the default).
const (
	MaxPipelineConns          = 64
	DefaultPipelineMaxConns   = 2
	MaxPipelinePending        = 1024
	DefaultPipelineMaxPending = 128
)

// Conns is PipelineMaxConns, or its default when unset.
func (p Pipelining) Conns() int { return orDefault(p.PipelineMaxConns, DefaultPipelineMaxConns) }

// Pending is PipelineMaxPending, or its default when unset.
func (p Pipelining) Pending() int { return orDefault(p.PipelineMaxPending, DefaultPipelineMaxPending) }

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// LambdaConfig is the config of the lambda handler.
type LambdaConfig struct {
	Functions []string `json:"functions"`
	Secret    *string  `json:"secret"`
}

// LogConfig is the (empty) config of the log handler.
type LogConfig struct{}

// fillCustomDefaults fills Kong's defaults of the webhook-custom config.
func fillCustomDefaults(c *WebhookCustomConfig) {
	t, f := true, false
	if c.Headers == nil {
		c.Headers = map[string]string{}
	}
	if c.Payload == nil {
		c.Payload = map[string]string{}
	}
	if c.HeadersFormat == nil {
		c.HeadersFormat = &f
	}
	if c.PayloadFormat == nil {
		c.PayloadFormat = &t
	}
	if c.BodyFormat == nil {
		c.BodyFormat = &t
	}
	c.Method = strings.ToUpper(c.Method)
}
