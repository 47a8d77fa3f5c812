package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDocsProducers runs the shell blocks of docs/producers.md, but the Go producer's
// (TestDocsGoProducer), against dev with a hook per source the blocks use: what each
// block produces must reach the receiver as Kong's webhook body, and be on the events
// topic under the entity key with the routing headers.
func TestDocsProducers(t *testing.T) {
	const kcat, emit, ingest = "docs/producers.md: kcat #1", "docs/producers.md: eventhooks emit #1",
		"docs/producers.md: HTTP ingest: `POST /events` #1"
	blocks := shellBlocks(t, kcat, emit, ingest)
	const partitions = 8
	e := newDocEnv(t, partitions)
	for _, se := range [][2]string{{"crud", "consumers"}, {"balancer", "health"}, {"rate-limiting-advanced", "rate-limit-exceeded"},
		{"service-protection", "rate-limit-exceeded"}, {"oas-validation", "validation-failed"}} {
		e.p.createHook(t, `{"source":"`+se[0]+`","event":"`+se[1]+`","handler":"webhook","config":{"url":"`+e.rc.URL+"/"+se[0]+`"}}`)
	}

	t.Run("kcat", func(t *testing.T) {
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Skip("kcat is not installed: the kcat block is not run")
		}
		out := e.run(t, blocks[kcat])
		e.expectDeliveries(t, 0,
			delivery{"/crud", map[string]any{"source": "crud", "event": "consumers:update", "operation": "update",
				"entity": map[string]any{"id": "0fd2b7c4", "username": "ada"}}},
			delivery{"/balancer", map[string]any{"source": "balancer", "event": "health", "upstream_id": "u-1",
				"ip": "10.0.0.7", "port": 8000.0, "hostname": "api.internal", "health": "unhealthy"}})
		// The consumer's lines: partition, key, headers. murmur2_random places a key
		// where franz-go (and Kafka's Java client) would.
		lines := regexp.MustCompile(`(?m)^(\d+) (\S+) (\S*)$`).FindAllStringSubmatch(out, -1)
		want := map[string]string{
			"0fd2b7c4":          "eh-source=crud,eh-event=consumers:update",
			"u-1:10.0.0.7:8000": "ce_specversion=1.0,ce_source=balancer,ce_type=health,ce_id=ev-2,ce_time=2026-11-27T08:00:00Z",
		}
		if len(lines) != len(want) {
			t.Fatalf("kcat -C printed %d records, want %d:\n%s", len(lines), len(want), out)
		}
		for _, l := range lines {
			p, _ := strconv.Atoi(l[1])
			if l[3] != want[l[2]] || p != murmur2Partition(l[2], partitions) {
				t.Errorf("kcat -C printed %q, want key %s on partition %d with headers %s", l[0], l[2], murmur2Partition(l[2], partitions), want[l[2]])
			}
		}
	})

	t.Run("emit", func(t *testing.T) {
		from := len(e.rc.Requests())
		e.run(t, blocks[emit])
		e.expectDeliveries(t, from,
			delivery{"/crud", map[string]any{"source": "crud", "event": "consumers:create", "operation": "create",
				"entity": map[string]any{"id": "0fd2b7c4", "username": "ada"}}},
			delivery{"/balancer", map[string]any{"source": "balancer", "event": "health", "upstream_id": "u-1", "health": "unhealthy"}},
			delivery{"/rate-limiting-advanced", map[string]any{"source": "rate-limiting-advanced", "event": "rate-limit-exceeded",
				"consumer": map[string]any{"id": "c-42"}, "rate": 11.0, "window": "minute"}})
		recs := lastByKey(t, e.kafka)
		for key, event := range map[string]string{"0fd2b7c4": "consumers:create", "u-1:10.0.0.7:8000": "health", "c-42": "rate-limit-exceeded"} {
			checkEmitted(t, recs[key], key, event)
		}
	})

	t.Run("ingest", func(t *testing.T) {
		from := len(e.rc.Requests())
		out := e.run(t, blocks[ingest])
		if one, two := strings.Index(out, `{"accepted":1}`), strings.Index(out, `{"accepted":2}`); one < 0 || two < one {
			t.Errorf("ingest answered %q, want {\"accepted\":1} then {\"accepted\":2}", out)
		}
		e.expectDeliveries(t, from,
			delivery{"/crud", map[string]any{"source": "crud", "event": "consumers:delete", "operation": "delete",
				"entity": map[string]any{"id": "0fd2b7c4"}}},
			delivery{"/service-protection", map[string]any{"source": "service-protection", "event": "rate-limit-exceeded",
				"service": map[string]any{"id": "s-1"}, "rate": 1200.0}},
			delivery{"/oas-validation", map[string]any{"source": "oas-validation", "event": "validation-failed",
				"err": "body: missing required field"}})
		recs := lastByKey(t, e.kafka)
		for key, event := range map[string]string{"0fd2b7c4": "consumers:delete", "s-1": "rate-limit-exceeded", "c-42": "validation-failed"} {
			checkEmitted(t, recs[key], key, event)
		}
	})
}

// murmur2Partition is the partition franz-go's default partitioner gives key.
func murmur2Partition(key string, partitions int) int {
	return kgo.StickyKeyPartitioner(nil).ForTopic("eventhooks-events").Partition(&kgo.Record{Key: []byte(key)}, partitions)
}

// checkEmitted checks a record `eventhooks emit` or ingest wrote: the entity key as the
// record key and not in the value, an id and a time, and headers naming the event.
func checkEmitted(t *testing.T, r *kgo.Record, key, event string) {
	t.Helper()
	if r == nil {
		t.Errorf("no record with key %s on the events topic", key)
		return
	}
	var env map[string]any
	if err := json.Unmarshal(r.Value, &env); err != nil {
		t.Fatalf("record %s: value %s: %v", key, r.Value, err)
	}
	hdr := map[string]string{}
	for _, h := range r.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if env["key"] != nil || env["id"] == "" || env["id"] == nil || env["event"] != event ||
		hdr["eh-source"] != env["source"] || hdr["eh-event"] != event {
		t.Errorf("record %s: value %s, headers %v", key, r.Value, hdr)
	}
}

// lastByKey returns the last record of each key on the events topic.
func lastByKey(t *testing.T, brokers string) map[string]*kgo.Record {
	t.Helper()
	last := map[string]*kgo.Record{}
	for _, r := range topicRecords(t, brokers, "eventhooks-events") {
		last[string(r.Key)] = r
	}
	return last
}

// topicRecords reads every record of topic, partition by partition.
func topicRecords(t *testing.T, brokers, topic string) []*kgo.Record {
	t.Helper()
	n := endOffsets(t, brokers, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for int64(len(recs)) < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}
