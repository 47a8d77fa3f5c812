package broker

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startTestBroker starts an in-memory embedded broker on a free port.
func startTestBroker(t *testing.T, cfg EmbeddedConfig) *Embedded {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	e, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// newClient connects to addrs through Config.ClientOpts.
func newClient(t *testing.T, cfg Config, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := cfg.ClientOpts()
	if err != nil {
		t.Fatalf("ClientOpts: %v", err)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t *testing.T, e *Embedded) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newClient(t, Config{Brokers: e.Addrs()}))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// topicState is what Bootstrap decides about a topic.
type topicState struct {
	Partitions int
	Policy     string
}

func describeTopics(t *testing.T, adm *kadm.Client, names ...string) map[string]topicState {
	t.Helper()
	ctx := testCtx(t)
	// A plain ListTopics reads kadm's metadata cache: this also checks that
	// Bootstrap leaves no stale "unknown topic" entry behind.
	tds, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	out := make(map[string]topicState)
	for _, name := range names {
		td := tds[name]
		if td.Err != nil {
			t.Fatalf("topic %s: %v", name, td.Err)
		}
		rc, err := rcs.On(name, nil)
		if err != nil {
			t.Fatalf("configs of %s: %v", name, err)
		}
		var policy string
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" {
				policy = c.MaybeValue()
			}
		}
		out[name] = topicState{len(td.Partitions), policy}
	}
	return out
}

func TestNewTopics(t *testing.T) {
	got := NewTopics("", nil)
	want := Topics{
		Events: []string{"eventhooks-events"}, Hooks: "eventhooks-hooks", State: "eventhooks-state",
		Retry: "eventhooks-retry", DLQ: "eventhooks-dlq", Attempts: "eventhooks-attempts",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NewTopics(\"\", nil) = %+v, want %+v", got, want)
	}
	got = NewTopics("acme.", []string{"kong-log", " ", "gw-events"})
	want = Topics{
		Events: []string{"kong-log", "gw-events"}, Hooks: "acme.hooks", State: "acme.state",
		Retry: "acme.retry", DLQ: "acme.dlq", Attempts: "acme.attempts",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NewTopics(acme., override) = %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}

	bad := NewTopics("", []string{"eventhooks-dlq", "bad topic"})
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "eventhooks-dlq is both the events and the dlq topic") ||
		!strings.Contains(err.Error(), `invalid events topic "bad topic"`) {
		t.Errorf("Validate() = %v, want the role clash and the bad name", err)
	}
}

func TestBootstrap(t *testing.T) {
	e := startTestBroker(t, EmbeddedConfig{})
	adm := newAdmin(t, e)
	topics := NewTopics("", nil)

	for i := range 2 { // the second run finds everything and changes nothing
		if err := Bootstrap(testCtx(t), adm, topics, BootstrapConfig{}); err != nil {
			t.Fatalf("Bootstrap run %d: %v", i+1, err)
		}
	}
	got := describeTopics(t, adm, "eventhooks-events", "eventhooks-hooks", "eventhooks-state", "eventhooks-retry", "eventhooks-dlq", "eventhooks-attempts")
	want := map[string]topicState{
		"eventhooks-events":   {8, "delete"},
		"eventhooks-hooks":    {1, "compact"},
		"eventhooks-state":    {8, "compact"},
		"eventhooks-retry":    {8, "delete"},
		"eventhooks-dlq":      {8, "delete"},
		"eventhooks-attempts": {8, "delete"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("topics = %+v\nwant %+v", got, want)
	}
	rcs, err := adm.DescribeTopicConfigs(testCtx(t), "eventhooks-attempts")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("eventhooks-attempts", nil)
	if err != nil {
		t.Fatal(err)
	}
	retention := ""
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			retention = c.MaybeValue()
		}
	}
	if retention != "604800000" {
		t.Errorf("attempts retention.ms = %q, want 7 days", retention)
	}
}

func TestBootstrapConcurrent(t *testing.T) {
	e := startTestBroker(t, EmbeddedConfig{})
	topics := NewTopics("race-", nil)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		adm := newAdmin(t, e) // one client per instance
		wg.Go(func() { errs[i] = Bootstrap(ctx, adm, topics, BootstrapConfig{Partitions: 3}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	got := describeTopics(t, newAdmin(t, e), "race-state", "race-hooks")
	if got["race-state"] != (topicState{3, "compact"}) || got["race-hooks"] != (topicState{1, "compact"}) {
		t.Errorf("topics = %+v", got)
	}
}

func TestBootstrapExistingTopics(t *testing.T) {
	e := startTestBroker(t, EmbeddedConfig{})
	adm := newAdmin(t, e)
	create := func(name string, parts int32, policy string) {
		t.Helper()
		if _, err := adm.CreateTopic(testCtx(t), parts, -1, map[string]*string{"cleanup.policy": &policy}, name); err != nil {
			t.Fatalf("CreateTopic %s: %v", name, err)
		}
	}

	t.Run("state follows existing events", func(t *testing.T) {
		create("a-events", 3, "delete")
		if err := Bootstrap(testCtx(t), adm, NewTopics("a-", nil), BootstrapConfig{Partitions: 5}); err != nil {
			t.Fatalf("Bootstrap: %v", err)
		}
		got := describeTopics(t, adm, "a-events", "a-state", "a-retry")
		if got["a-events"].Partitions != 3 || got["a-state"].Partitions != 3 || got["a-retry"].Partitions != 3 {
			t.Errorf("partitions = %+v, want events, state and retry 3 (co-partitioned)", got)
		}
	})

	t.Run("events follows existing state", func(t *testing.T) {
		create("g-state", 6, "compact")
		if err := Bootstrap(testCtx(t), adm, NewTopics("g-", nil), BootstrapConfig{}); err != nil {
			t.Fatalf("Bootstrap: %v", err)
		}
		if got := describeTopics(t, adm, "g-events")["g-events"]; got.Partitions != 6 {
			t.Errorf("g-events = %+v, want 6 partitions like g-state", got)
		}
	})

	t.Run("several input topics", func(t *testing.T) {
		create("gw-1", 4, "delete")
		topics := NewTopics("b-", []string{"gw-1", "gw-2"})
		if err := Bootstrap(testCtx(t), adm, topics, BootstrapConfig{}); err != nil {
			t.Fatalf("Bootstrap: %v", err)
		}
		got := describeTopics(t, adm, "gw-1", "gw-2", "b-state")
		if got["gw-2"].Partitions != 4 || got["b-state"].Partitions != 4 {
			t.Errorf("partitions = %+v, want 4 everywhere", got)
		}
	})

	t.Run("hooks not compacted", func(t *testing.T) {
		create("c-hooks", 1, "delete")
		err := Bootstrap(testCtx(t), adm, NewTopics("c-", nil), BootstrapConfig{})
		if !errors.Is(err, ErrTopicConflict) {
			t.Fatalf("Bootstrap = %v, want ErrTopicConflict", err)
		}
		for _, w := range []string{"c-hooks", "cleanup.policy=delete", "requires cleanup.policy=compact"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		// Refused before creating anything.
		tds, err := adm.ListTopics(testCtx(t), "c-events")
		if err != nil {
			t.Fatal(err)
		}
		if tds.Has("c-events") {
			t.Errorf("c-events was created although Bootstrap refused")
		}
	})

	t.Run("compacted existing topics are accepted", func(t *testing.T) {
		create("f-hooks", 2, "compact")
		create("f-state", 8, "compact")
		if err := Bootstrap(testCtx(t), adm, NewTopics("f-", nil), BootstrapConfig{}); err != nil {
			t.Fatalf("Bootstrap: %v", err)
		}
		if got := describeTopics(t, adm, "f-hooks")["f-hooks"]; got.Partitions != 2 {
			t.Errorf("f-hooks = %+v, want it left with 2 partitions", got)
		}
	})

	// Refusals: Bootstrap over the existing topics of prefix answers a conflict whose
	// error says want.
	for _, tc := range []struct {
		name, prefix, want string
		existing           map[string]topicState
	}{
		{"retry not co-partitioned", "r-", "r-retry has 2 partitions but events topic r-events has 4",
			map[string]topicState{"r-events": {4, "delete"}, "r-retry": {2, "delete"}}},
		{"state compact and delete", "d-", "d-state has cleanup.policy=compact,delete",
			map[string]topicState{"d-state": {8, "compact,delete"}}},
		{"state partitions differ from events", "e-", "e-state has 5 partitions but events topic e-events has 3",
			map[string]topicState{"e-events": {3, "delete"}, "e-state": {5, "compact"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, st := range tc.existing {
				create(name, int32(st.Partitions), st.Policy)
			}
			err := Bootstrap(testCtx(t), adm, NewTopics(tc.prefix, nil), BootstrapConfig{})
			if !errors.Is(err, ErrTopicConflict) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Bootstrap = %v, want ErrTopicConflict saying %q", err, tc.want)
			}
		})
	}
}

// TestBootstrapLostRace makes another "instance" create a topic between
// Bootstrap's look at the cluster and its CreateTopics, so Bootstrap gets
// TOPIC_ALREADY_EXISTS and must check what the other one made.
func TestBootstrapLostRace(t *testing.T) {
	tests := []struct {
		name    string
		topic   string
		parts   int32
		policy  string
		wantErr string // "" = success
	}{
		{"same settings", "hooks", 1, "compact", ""},
		{"hooks with more partitions", "hooks", 3, "compact", ""},
		{"hooks not compacted", "hooks", 1, "delete", "x-hooks has cleanup.policy=delete"},
		{"state not co-partitioned", "state", 5, "compact", "x-state has 5 partitions but events topic x-events has 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startKfake(t)
			target := "x-" + tt.topic
			var raced bool
			c.ControlKey(int16(kmsg.CreateTopics), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				req := kreq.(*kmsg.CreateTopicsRequest)
				if !raced && len(req.Topics) == 1 && req.Topics[0].Topic == target {
					raced = true
					c.SleepControl(func() {
						if err := c.CreateTopic(target, tt.parts, map[string]string{"cleanup.policy": tt.policy}); err != nil {
							t.Errorf("racing CreateTopic: %v", err)
						}
					})
				}
				return nil, nil, false // let the cluster answer: TOPIC_ALREADY_EXISTS
			})
			adm := kadm.NewClient(newClient(t, Config{Brokers: c.ListenAddrs()}))
			err := Bootstrap(testCtx(t), adm, NewTopics("x-", nil), BootstrapConfig{})
			if !raced {
				t.Fatalf("the race was not staged")
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Bootstrap = %v, want success", err)
			case tt.wantErr != "" && (!errors.Is(err, ErrTopicConflict) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Bootstrap = %v, want ErrTopicConflict containing %q", err, tt.wantErr)
			}
		})
	}
}
