package main

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// TestDocsReplay runs README's replay block, <id> being a hook whose receiver
// dead-letters one event (410) until it is fixed. Events stamped around the documented
// hour show the range is [from, to); the dry run's partition:offset bounds lie past the
// ends of partitions 0 and 1, so it counts only partitions 2 and 3, which it does not
// list and so reads from their start; the --dlq run re-sends the dead letter.
func TestDocsReplay(t *testing.T) {
	const key = "README.md: Replay and backfill #1"
	block := shellBlocks(t, key)[key]
	e := newDocEnv(t, 4)
	fixed := new(atomic.Bool)
	e.rc.Respond = func(_ int, r *testkit.Request) int {
		if !fixed.Load() && strings.Contains(string(r.Body), `"dead"`) {
			return 410
		}
		return 200
	}
	hook := e.p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","config":{"url":"`+e.rc.URL+`/replay"}}`)

	hour := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	stamps := map[string]time.Time{ // the name of an event, and its record's timestamp
		"before": hour.Add(-time.Second), "first": hour, "middle": hour.Add(30 * time.Minute),
		"last": hour.Add(time.Hour - time.Millisecond), "to": hour.Add(time.Hour), "dead": time.Now(),
	}
	for i := range 20 {
		stamps[fmt.Sprintf("now-%d", i)] = time.Now()
	}
	perPartition := produceStamped(t, e.kafka, stamps)
	e.expectDeliveries(t, 0, replayDeliveries(stamps)...)
	testkit.Eventually(t, 30*time.Second, "the dead letter", func() bool { return endOffsets(t, e.kafka, "eventhooks-dlq") == 1 })
	fixed.Store(true)
	from := len(e.rc.Requests())

	// The replay delivers from its own process, and the receiver is on loopback: the
	// block says to allow it (else its deliveries are refused and dead-lettered).
	const allow = "--allow-destinations 127.0.0.0/8"
	if !strings.Contains(block, allow) {
		t.Errorf("the replay block no longer says to add %s for a receiver on loopback", allow)
	}
	out := e.run(t, strings.ReplaceAll(block, "<id>", hook["id"].(string)), "EVENTHOOKS_ALLOW_DESTINATIONS=127.0.0.0/8")
	var summaries []string
	for _, m := range regexp.MustCompile(`(?m)^  hook (\S+): (.*)$`).FindAllStringSubmatch(out, -1) {
		if m[1] != hook["id"] {
			t.Errorf("summary of hook %s", m[1])
		}
		summaries = append(summaries, m[2])
	}
	want := []string{"delivered 3, parked 0, dead-lettered 0, failed 0", fmt.Sprintf("would deliver %d", perPartition[2]+perPartition[3]),
		"delivered 1, parked 0, dead-lettered 0, failed 0"}
	if strings.Join(summaries, "; ") != strings.Join(want, "; ") {
		t.Errorf("replay summaries %q, want %q\n%s", summaries, want, out)
	}
	if perPartition[2]+perPartition[3] == 0 || perPartition[0]+perPartition[1] == 0 {
		t.Errorf("events per partition %v: the dry run's bounds test nothing", perPartition)
	}
	e.expectDeliveries(t, from, replayDeliveries(map[string]time.Time{"first": {}, "middle": {}, "last": {}, "dead": {}})...)
}

// replayDeliveries are the deliveries of the named events.
func replayDeliveries(names map[string]time.Time) []delivery {
	var ds []delivery
	for name := range names {
		ds = append(ds, delivery{"/replay", map[string]any{"source": "balancer", "event": "health", "health": name}})
	}
	return ds
}

// produceStamped writes a balancer health event per name, "health" being the name, with
// the given record timestamp, in timestamp order (a broker finds offsets by timestamp
// assuming they grow along a partition), and returns how many landed on each partition.
func produceStamped(t *testing.T, brokers string, stamps map[string]time.Time) map[int32]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("eventhooks-events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for name, ts := range stamps {
		recs = append(recs, &kgo.Record{Key: []byte(name), Timestamp: ts,
			Value: []byte(`{"source":"balancer","event":"health","data":{"upstream_id":"u-1","health":"` + name + `"}}`)})
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int { return a.Timestamp.Compare(b.Timestamp) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	per := map[int32]int{}
	for _, r := range res {
		per[r.Record.Partition]++
	}
	return per
}
