package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/broker"
	"github.com/eventhooks/eventhooks/hooks"
)

// EmitCmd produces events to the events topic.
type EmitCmd struct {
	KafkaFlags  `embed:""`
	Topic       string `help:"Topic to produce to (default: <topic-prefix>events)."`
	TopicPrefix string `help:"Prefix of eventhooks' topics, as given to run and dev: the default --topic is <prefix>events." default:"eventhooks-"`
	Source      string `help:"Event source (e.g. crud, balancer). Without it, NDJSON envelopes are read from stdin."`
	Event       string `help:"Event name (e.g. consumers, health)."`
	Key         string `help:"Entity key (default: the --key-field value, else the event id)."`
	KeyField    string `help:"Data field holding the entity key of events without one, a dotted path such as entity.id (several: comma separated, first found wins)."`
	Data        string `help:"Event data, a JSON object." default:"{}"`
	ID          string `help:"Event id (default: a new UUID)."`
}

// Run produces the event(s) and waits for the broker's acknowledgement.
func (c *EmitCmd) Run(log *slog.Logger) error {
	if c.Topic == "" {
		c.Topic = broker.NewTopics(c.TopicPrefix, nil).Events[0]
	}
	opts, err := c.config().ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(c.Topic), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("cannot create Kafka client: %w", err)
	}
	defer cl.Close()
	envOpt := hooks.EnvelopeOptions{Topic: c.Topic, KeyField: c.KeyField}
	ctx := context.Background()
	if c.Source != "" {
		line, err := json.Marshal(struct {
			ID     string          `json:"id,omitempty"`
			Source string          `json:"source"`
			Event  string          `json:"event,omitempty"`
			Data   json.RawMessage `json:"data"`
			Key    string          `json:"key,omitempty"`
		}{c.ID, c.Source, c.Event, json.RawMessage(c.Data), c.Key})
		if err != nil {
			return fmt.Errorf("--data is not JSON: %w", err)
		}
		rec, err := hooks.EnvelopeRecord(line, envOpt)
		if err != nil {
			return err
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("produce to %s: %w", c.Topic, err)
		}
		log.Info("event produced", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "key", string(rec.Key))
		return nil
	}
	n, err := produceNDJSON(ctx, cl, os.Stdin, envOpt)
	log.Info("events produced", "count", n, "topic", c.Topic)
	return err
}

// produceNDJSON produces one envelope per line, all lines or none if one is invalid, and
// waits for every acknowledgement.
func produceNDJSON(ctx context.Context, cl *kgo.Client, r io.Reader, opt hooks.EnvelopeOptions) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), hooks.DefaultMaxEventBytes+64<<10)
	var recs []*kgo.Record
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		rec, err := hooks.EnvelopeRecord(sc.Bytes(), opt)
		if err != nil {
			return 0, fmt.Errorf("line %d: %w", line, err)
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read stdin: %w", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	return len(recs), nil
}
