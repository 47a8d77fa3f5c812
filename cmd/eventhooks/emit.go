package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/hooks"
)

// EmitCmd produces events to the events topic.
type EmitCmd struct {
	KafkaFlags `embed:""`
	Topic      string `help:"Topic to produce to." default:"eventhooks-events"`
	Source     string `help:"Event source (e.g. crud, balancer). Without it, NDJSON envelopes are read from stdin."`
	Event      string `help:"Event name (e.g. consumers, health)."`
	Key        string `help:"Entity key (default: the event id)."`
	Data       string `help:"Event data, a JSON object." default:"{}"`
	ID         string `help:"Event id (default: a new UUID)."`
}

// envelope is the JSON form of an event on the topic; Key is only read from NDJSON input
// and never written to the value.
type envelope struct {
	ID     string          `json:"id"`
	Source string          `json:"source"`
	Event  string          `json:"event"`
	Time   string          `json:"time"`
	Data   json.RawMessage `json:"data"`
	Key    string          `json:"key,omitempty"`
}

// Run produces the event(s) and waits for the broker's acknowledgement.
func (c *EmitCmd) Run(log *slog.Logger) error {
	opts, err := c.config().ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(c.Topic), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("cannot create Kafka client: %w", err)
	}
	defer cl.Close()
	ctx := context.Background()
	if c.Source != "" {
		env := envelope{ID: c.ID, Source: c.Source, Event: c.Event, Data: json.RawMessage(c.Data), Key: c.Key}
		rec, err := env.record()
		if err != nil {
			return fmt.Errorf("--data: %w", err)
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("produce to %s: %w", c.Topic, err)
		}
		log.Info("event produced", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "key", string(rec.Key))
		return nil
	}
	n, err := produceNDJSON(ctx, cl, os.Stdin)
	log.Info("events produced", "count", n, "topic", c.Topic)
	return err
}

// record validates the envelope and turns it into a record keyed by the entity key.
func (e envelope) record() (*kgo.Record, error) {
	if e.Source == "" {
		return nil, errors.New(`"source" is required`)
	}
	if e.Event == "" {
		return nil, errors.New(`"event" is required`)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &data); err != nil || data == nil {
		return nil, errors.New(`"data" must be a JSON object`)
	}
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.Time == "" {
		e.Time = time.Now().UTC().Format(time.RFC3339Nano)
	}
	key := e.Key
	if key == "" {
		key = e.ID
	}
	e.Key = ""
	val, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Key: []byte(key), Value: val,
		Headers: []kgo.RecordHeader{{Key: hooks.HeaderSource, Value: []byte(e.Source)}, {Key: hooks.HeaderEvent, Value: []byte(e.Event)}},
	}, nil
}

// produceNDJSON produces one envelope per line, all or nothing per line, and waits for
// every acknowledgement.
func produceNDJSON(ctx context.Context, cl *kgo.Client, r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), hooks.DefaultMaxEventBytes)
	var recs []*kgo.Record
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var env envelope
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			return 0, fmt.Errorf("line %d: %w", line, err)
		}
		rec, err := env.record()
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
