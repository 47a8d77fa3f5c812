package processor_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

// refuseStateWrites makes the broker refuse, while on is set, every produce to the state
// topic with an error kgo does not retry (authorization), as a misconfigured or failing
// cluster would.
func refuseStateWrites(t *testing.T, c *kfake.Cluster, addrs []string, on *atomic.Bool) {
	t.Helper()
	cl := producer(t, addrs)
	td, err := kadm.NewClient(cl).ListTopics(context.Background(), topics.State)
	if err != nil {
		t.Fatal(err)
	}
	stateID := td[topics.State].ID
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !on.Load() || len(pr.Topics) == 0 || (pr.Topics[0].TopicID != stateID && pr.Topics[0].Topic != topics.State) {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// TestFailedStateWriteHoldsTheCommit: an on_change firing whose state write fails for a
// while (an error kgo does not retry) is not committed until the write lands, so after a
// restart the restored fingerprint is the one delivered last: healthy → unhealthy (write
// failing) → restart → healthy is delivered, not dropped as "unchanged".
func TestFailedStateWriteHoldsTheCommit(t *testing.T) {
	emb := testkit.Broker(t, 1)
	var refuse atomic.Bool
	refuseStateWrites(t, emb.Cluster(), emb.Addrs(), &refuse)
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","on_change":true,"config":{"url":"`+rc.URL+`"}}`)
	cl := producer(t, emb.Addrs())
	produce(t, cl, flappingEvent(0, 1)) // healthy
	rc.WaitFor(t, 1, 30*time.Second)
	testkit.Eventually(t, 30*time.Second, "the first firing committed", func() bool { return committed(t, emb.Addrs()) == 1 })

	refuse.Store(true)
	produce(t, cl, flappingEvent(1, 1)) // unhealthy: delivered, its state write refused
	rc.WaitFor(t, 2, 30*time.Second)
	time.Sleep(time.Second) // ten commit intervals
	if got := committed(t, emb.Addrs()); got != 1 {
		t.Fatalf("committed offset %d while the firing's state write fails, want 1", got)
	}
	refuse.Store(false)
	testkit.Eventually(t, 30*time.Second, "the commit once the state write lands", func() bool { return committed(t, emb.Addrs()) == 2 })

	in.stop()
	startInstance(t, emb.Addrs())
	produce(t, cl, flappingEvent(2, 1)) // healthy again: a change from the last delivered
	rc.WaitFor(t, 3, 30*time.Second)
}

// TestSlowRestoreReadsToTheEnd: a restore whose fetches are answered late (3 s, longer
// than the quiet spell the restore used to take for the end) still reads the state to
// its end, so a snoozed key stays snoozed after a restart.
func TestSlowRestoreReadsToTheEnd(t *testing.T) {
	emb := testkit.Broker(t, 1)
	c := emb.Cluster()
	rc := testkit.NewReceiver(t)
	in := startInstance(t, emb.Addrs())
	in.addHook(t, `{"source":"balancer","event":"health","handler":"webhook","snooze":3600,"config":{"url":"`+rc.URL+`"}}`)
	cl := producer(t, emb.Addrs())
	produce(t, cl, healthEvent("u-1", 0))
	rc.WaitFor(t, 1, 30*time.Second)
	testkit.Eventually(t, 30*time.Second, "the firing committed", func() bool { return committed(t, emb.Addrs()) == 1 })
	in.stop()

	td, err := kadm.NewClient(cl).ListTopics(context.Background(), topics.State)
	if err != nil {
		t.Fatal(err)
	}
	stateID := td[topics.State].ID
	var slowed atomic.Int64
	c.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, ft := range req.(*kmsg.FetchRequest).Topics {
			if (ft.TopicID == stateID || ft.Topic == topics.State) && slowed.Add(1) <= 3 {
				c.SleepControl(func() { time.Sleep(3 * time.Second) })
			}
		}
		return nil, nil, false
	})
	startInstance(t, emb.Addrs())
	produce(t, cl, healthEvent("u-1", 1)) // within the snooze window: dropped
	produce(t, cl, healthEvent("u-2", 0)) // another key: delivered, and after u-1's
	rc.WaitFor(t, 2, 60*time.Second)
	time.Sleep(200 * time.Millisecond)
	if reqs := rc.Requests(); len(reqs) != 2 {
		t.Fatalf("%d deliveries, want 2: the snoozed key fired again after a slow restore", len(reqs))
	}
}
