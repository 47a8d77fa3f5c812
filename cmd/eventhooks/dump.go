package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/eventhooks/eventhooks/hooks/hooksfile"
)

// DumpCmd writes the current hooks in the hooks-file format.
type DumpCmd struct {
	AdminClientFlags `embed:""`
	Output           string `short:"o" help:"File to write (default: standard output)."`
	Format           string `help:"yaml or json." default:"yaml" enum:"yaml,json"`
	RevealSecrets    bool   `help:"Write secret values; by default each is written as a reference to an environment variable, to set before applying the file."`
}

// Run lists the hooks through the Admin API and writes them.
func (c *DumpCmd) Run(log *slog.Logger) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	list, err := cl.List(context.Background(), c.RevealSecrets)
	if err != nil {
		return err
	}
	d, err := hooksfile.Dump(list, c.Format, c.RevealSecrets)
	if err != nil {
		return err
	}
	if c.Output == "" {
		_, err = os.Stdout.Write(d.Data)
	} else {
		err = os.WriteFile(c.Output, d.Data, 0o600)
	}
	if err != nil {
		return fmt.Errorf("write dump: %w", err)
	}
	for _, v := range d.Vars {
		log.Info("dump: a secret is written as a reference; set it before applying", "variable", v)
	}
	return nil
}
