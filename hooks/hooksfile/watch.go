package hooksfile

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"time"
)

// Watch calls sync with the content of the file at path at once and then whenever the
// content changes, reading it every interval, until ctx ends. Polling the content (not
// file events) follows a Kubernetes ConfigMap mount, whose files change by a swap of
// symbolic links, and a GitOps sidecar that rewrites the file in place.
//
// A content that sync refuses as ErrInvalid is logged once and left until the file
// changes again; any other failure (the Admin API busy or the broker away) is retried
// at the next reading, logged when its message changes.
func Watch(ctx context.Context, path string, interval time.Duration, sync func(context.Context, []byte) error, log *slog.Logger) {
	var (
		done    [sha256.Size]byte
		hasDone bool
		lastErr string
	)
	fail := func(msg string, err error) {
		if err.Error() != lastErr {
			log.Error(msg, "file", path, "err", err)
			lastErr = err.Error()
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		data, err := os.ReadFile(path)
		switch sum := sha256.Sum256(data); {
		case err != nil:
			fail("hooks file: cannot read it; hooks unchanged", err)
		case hasDone && sum == done:
		default:
			err := sync(ctx, data)
			switch {
			case err == nil:
				done, hasDone, lastErr = sum, true, ""
			case errors.Is(err, ErrInvalid):
				done, hasDone = sum, true
				fail("hooks file: invalid, hooks unchanged; fix the file", err)
			case ctx.Err() == nil:
				fail("hooks file: cannot apply it; retrying", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
