package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := mustHook(t, `{"source":"crud","event":"consumers","handler":"log"}`)
	s, err := Compile(h, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if s.Handler() != "log" {
		t.Errorf("Handler() = %q", s.Handler())
	}
	ev := newEvent(t, "crud", "consumers", consumerData)
	res := s.Deliver(context.Background(), ev, nil)
	if !res.Delivered || res.Err != nil {
		t.Fatalf("result = %+v", res)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("want one line, got %d: %s", len(lines), buf.Bytes())
	}
	var rec map[string]any
	if err := json.Unmarshal(lines[0], &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"level": "INFO", "msg": "event hook", "hook_id": h.ID, "source": "crud",
		"event": "consumers", "key": "0fd2b1c6", "event_id": "01JDQ4Z9X8Y7W6V5T4S3R2Q1P0",
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %q", k, rec[k], want)
		}
	}
	data, ok := rec["data"].(string)
	if !ok {
		t.Fatalf("data = %#v, want a JSON string", rec["data"])
	}
	assertSameJSON(t, []byte(data), []byte(consumerData))
}
