package sinks

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/eventhooks/eventhooks/internal/jsonx"
)

// logSink is the compiled log handler: one structured line per event, at info (Kong 2.6 to
// 3.8 logged at debug, so nobody saw it).
type logSink struct {
	hookID string
	log    *slog.Logger
}

// compileLog builds the log handler; its config is empty (hooks.LogConfig).
func compileLog(h *hooks.Hook, log *slog.Logger) (*logSink, error) {
	return &logSink{hookID: h.ID, log: log}, nil
}

// Handler implements Sink.
func (s *logSink) Handler() string { return hooks.HandlerLog }

// Deliver implements Sink: it logs msg "event hook" with hook_id, source, event, key,
// event_id (when the envelope has one) and data as a JSON string. Always delivered.
func (s *logSink) Deliver(ctx context.Context, ev *hooks.Event, _ *Lane) Result {
	start := time.Now()
	if res, stop := unusable(ctx, s.hookID, ev, start); stop {
		return res
	}
	buf := getBuffer()
	if data := ev.Data(); data != nil {
		buf.B = jsonx.AppendValue(buf.B[:0], data, true)
	} else {
		buf.B = append(buf.B[:0], "null"...)
	}
	attrs := [6]slog.Attr{
		slog.String("hook_id", s.hookID),
		slog.String("source", ev.Source),
		slog.String("event", ev.Event),
		slog.String("key", string(ev.Key)),
		slog.String("data", string(buf.B)),
	}
	n := 5
	if len(ev.ID) > 0 {
		attrs[n] = slog.String("event_id", string(ev.ID))
		n++
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "event hook", attrs[:n]...)
	putBuffer(buf)
	return Result{Delivered: true, Duration: time.Since(start)}
}
