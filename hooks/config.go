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
