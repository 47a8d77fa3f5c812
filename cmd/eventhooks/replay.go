package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/eventhooks/eventhooks/processor"
)

// ReplayCmd backfills a range of the events topic through chosen hooks, or re-drives
// dead letters.
type ReplayCmd struct {
	KafkaFlags     `embed:""`
	TopicFlags     `embed:""`
	ProcessorFlags `embed:""`

	From        string   `help:"Start: an RFC 3339 time or partition:offset[,partition:offset…] (default: the start of the topic)."`
	To          string   `help:"End, exclusive: an RFC 3339 time or partition:offset[,…] (default: now)."`
	Hook        []string `help:"Hook id to run (repeatable; default: every hook that matches)."`
	Source      string   `help:"Only replay events of this source."`
	Event       string   `help:"Only replay events of this event name."`
	Rate        float64  `help:"Events per second at most (0: unlimited)."`
	DryRun      bool     `help:"Count what would be delivered, per hook, without delivering."`
	DLQ         bool     `name:"dlq" help:"Re-drive the dead letters of the DLQ topic instead of replaying events."`
	Reason      string   `help:"With --dlq: only dead letters of this reason (permanent, max_attempts, script_error, …; exact match)."`
	HonourGates bool     `help:"Apply the hooks' snooze/on_change within the replay, on event time, from a fresh state (default: bypass gates)."`
}

// Run replays and prints a summary; on SIGINT it prints how far it got and how to resume.
func (c *ReplayCmd) Run(log *slog.Logger) error {
	tuneGC()
	from, err := processor.ParseBound(c.From)
	if err != nil {
		return fmt.Errorf("--from %w", err)
	}
	to, err := processor.ParseBound(c.To)
	if err != nil {
		return fmt.Errorf("--to %w", err)
	}
	if c.To == "" {
		to.Time = time.Now()
	}
	if c.Reason != "" && !c.DLQ {
		return errors.New("--reason selects dead letters: use it with --dlq")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := service{kafka: c.KafkaFlags.config(), topics: c.TopicFlags, proc: c.ProcessorFlags, log: log}
	core, err := s.newCore(ctx)
	if err != nil {
		return err
	}
	defer core.close()
	storeCtx, stopStore := context.WithCancel(ctx)
	defer stopStore()
	go func() { _ = core.store.Run(storeCtx) }()
	if err := core.waitHooks(ctx); err != nil {
		return fmt.Errorf("load hooks: %w", err)
	}
	for _, id := range c.Hook {
		if _, ok := core.store.Snapshot().Get(id); !ok {
			return fmt.Errorf("--hook %s: no such hook", id)
		}
	}
	show := newProgress(c.DryRun)
	res, err := core.proc.Replay(ctx, processor.ReplayConfig{
		From: from, To: to, HookIDs: c.Hook, Source: c.Source, Event: c.Event,
		Rate: c.Rate, DryRun: c.DryRun, DLQ: c.DLQ, Reason: c.Reason, HonourGates: c.HonourGates, Progress: show.update,
	})
	show.finish()
	if err != nil {
		return err
	}
	c.summary(res, core.refusal)
	if c.DryRun {
		return nil
	}
	return nothingDelivered(res.Outcomes)
}

// nothingDelivered is the error of a replay that had deliveries to make and made none:
// the command then exits non-zero.
func nothingDelivered(outcomes map[string]processor.ReplayOutcomes) error {
	var sum processor.ReplayOutcomes
	for _, o := range outcomes {
		sum.Delivered += o.Delivered
		sum.Parked += o.Parked
		sum.DeadLettered += o.DeadLettered
		sum.Failed += o.Failed
	}
	if sum.Delivered > 0 || sum.Total() == 0 {
		return nil
	}
	return fmt.Errorf("replay: nothing was delivered (%d parked, %d dead-lettered, %d failed)",
		sum.Parked, sum.DeadLettered, sum.Failed)
}

// refusal is the SSRF guard's warning about hook id's destination, "" when it has none.
func (c *core) refusal(id string) string {
	h, ok := c.store.Snapshot().Get(id)
	if !ok {
		return ""
	}
	return c.destinationWarning(h)
}

// summary prints what the replay read and, per hook, how its deliveries ended; refusal
// explains the failures of a hook whose destination the SSRF guard refuses.
func (c *ReplayCmd) summary(res processor.ReplayProgress, refusal func(hookID string) string) {
	ids := make([]string, 0, len(res.Outcomes))
	for id := range res.Outcomes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Printf("read %d of %d records, %d skipped, %d gated\n", res.Read, res.Total, res.Skipped, res.Gated)
	for _, id := range ids {
		o := res.Outcomes[id]
		if c.DryRun {
			fmt.Printf("  hook %s: would deliver %d\n", id, o.Delivered)
			continue
		}
		fmt.Printf("  hook %s: delivered %d, parked %d, dead-lettered %d, failed %d\n",
			id, o.Delivered, o.Parked, o.DeadLettered, o.Failed)
		if o.DeadLettered+o.Failed > 0 {
			if why := refusal(id); why != "" {
				fmt.Printf("    %s\n", why)
			}
		}
	}
	if !res.Done {
		args := []string{"eventhooks replay", "--from", res.Next.String()}
		if c.To != "" {
			args = append(args, "--to", c.To)
		}
		for _, id := range c.Hook {
			args = append(args, "--hook", id)
		}
		if c.DLQ {
			args = append(args, "--dlq")
		}
		fmt.Printf("interrupted; resume with:\n  %s\n", strings.Join(args, " "))
	}
}

// progress shows a bar with events/s and ETA on a terminal, plain lines otherwise.
type progress struct {
	bar      *progressbar.ProgressBar
	lastLine time.Time
	label    string
}

func newProgress(dry bool) *progress {
	p := &progress{label: "replaying"}
	if dry {
		p.label = "counting"
	}
	return p
}

func (p *progress) update(pr processor.ReplayProgress) {
	if term.IsTerminal(int(os.Stderr.Fd())) {
		if p.bar == nil {
			p.bar = progressbar.NewOptions64(pr.Total, progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(p.label), progressbar.OptionShowCount(),
				progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
				progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond))
		}
		_ = p.bar.Set64(pr.Read)
		return
	}
	if time.Since(p.lastLine) >= 5*time.Second || pr.Done {
		p.lastLine = time.Now()
		fmt.Fprintf(os.Stderr, "%s: %d/%d records\n", p.label, pr.Read, pr.Total)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
}
