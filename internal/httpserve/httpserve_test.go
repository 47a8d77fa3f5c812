package httpserve

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestReadError(t *testing.T) {
	if status, err := ReadError(fasthttp.ErrBodyTooLarge, 10); status != 413 || err.Error() != "request body exceeds 10 bytes" {
		t.Errorf("body too large: %d %v", status, err)
	}
	if status, _ := ReadError(os.ErrDeadlineExceeded, 10); status != 408 {
		t.Errorf("timeout: %d", status)
	}
	if status, _ := ReadError(errors.New("bad"), 10); status != 400 {
		t.Errorf("other: %d", status)
	}
}

func TestServeAnswersJSONAndShutdownEndsContext(t *testing.T) {
	s := New(Config{
		Handler: func(ctx *fasthttp.RequestCtx) { _ = JSON(ctx, 201, map[string]string{"a": "<b>"}) },
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(body) != `{"a":"<b>"}` || resp.Header.Get("Content-Type") != ContentTypeJSON {
		t.Errorf("got %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if s.Context().Err() != nil {
		t.Fatal("context ended before Shutdown")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after Shutdown", err)
	}
	if s.Context().Err() == nil {
		t.Error("context still live after Shutdown")
	}
}
