package hooksfile

import (
	"context"
	"fmt"
	"io"
)

// Apply makes the plan's changes in order through c, writing a line per change to out.
// It stops at the first failure and says what was done by then: every hook was
// validated before, so a failure is the server's (unreachable, or a change made
// concurrently), and applying the file again finishes the job.
func (p *Plan) Apply(ctx context.Context, c *Client, out io.Writer) error {
	for i, ch := range p.Changes {
		var (
			warning string
			err     error
		)
		if ch.Op == OpDelete {
			err = c.Delete(ctx, ch.Hook.ID)
		} else {
			warning, err = c.Put(ctx, ch.Hook)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w (%d of %d changes made; apply again to finish)", ch.Op, ch.Label, err, i, len(p.Changes))
		}
		if _, err := fmt.Fprintf(out, "%sd %s (id %s)\n", ch.Op, ch.Label, ch.Hook.ID); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		if warning != "" {
			if _, err := fmt.Fprintf(out, "  warning: %s\n", warning); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
		}
	}
	return nil
}

// SyncConfig is what Sync needs besides the file.
type SyncConfig struct {
	// Client reaches the Admin API.
	Client *Client
	// Lookup resolves ${VAR} references (os.LookupEnv).
	Lookup func(string) (string, bool)
	// Options check the hooks and say whether to prune.
	Options Options
	// DryRun prints the plan without applying it.
	DryRun bool
	// Out receives the plan and the report of what was applied.
	Out io.Writer
}

// Sync parses a hooks file, plans it against the hooks the Admin API lists, prints the
// plan and, unless cfg.DryRun, applies it. An invalid file is an ErrInvalid error and
// changes nothing.
func Sync(ctx context.Context, data []byte, cfg SyncConfig) (*Plan, error) {
	f, err := Parse(data, cfg.Lookup)
	if err != nil {
		return nil, err
	}
	current, err := cfg.Client.List(ctx, true)
	if err != nil {
		return nil, err
	}
	p, err := NewPlan(f, current, cfg.Options)
	if err != nil {
		return nil, err
	}
	if err := p.Print(cfg.Out); err != nil {
		return nil, fmt.Errorf("write plan: %w", err)
	}
	if cfg.DryRun || p.Empty() {
		return p, nil
	}
	return p, p.Apply(ctx, cfg.Client, cfg.Out)
}
