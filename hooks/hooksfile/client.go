package hooksfile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eventhooks/eventhooks/hooks"
)

// Doer sends one Admin API request (path with its query) and returns the status, the
// body and the Warning header.
type Doer func(ctx context.Context, method, path string, body []byte) (status int, resp []byte, warning string, err error)

// Client reads and writes hooks through the Admin API.
type Client struct {
	Do Doer
}

// HTTPDoer returns a Doer for the Admin API at base (http://host:port) sending token, if
// any, as a bearer token.
func HTTPDoer(base, token string, timeout time.Duration) (Doer, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin url %q: want http(s)://host:port", base)
	}
	base = strings.TrimSuffix(base, "/")
	hc := &http.Client{Timeout: timeout}
	return func(ctx context.Context, method, path string, body []byte) (int, []byte, string, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, "", fmt.Errorf("%s %s: %w", method, path, err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, "", fmt.Errorf("%s %s: %w", method, path, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, nil, "", fmt.Errorf("%s %s: read answer: %w", method, path, err)
		}
		return resp.StatusCode, out, resp.Header.Get("Warning"), nil
	}, nil
}

// call sends a request and decodes a 2xx answer into out (when not nil); any other
// status is an error carrying the Admin API's message. It returns the Warning header.
func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) (string, error) {
	status, resp, warning, err := c.Do(ctx, method, path, body)
	if err != nil {
		return "", err
	}
	if status < 200 || status > 299 {
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(resp, &msg) != nil || msg.Message == "" {
			msg.Message = strings.TrimSpace(string(resp))
		}
		return "", fmt.Errorf("%s %s: %d %s", method, path, status, msg.Message)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return "", fmt.Errorf("%s %s: invalid answer: %w", method, path, err)
		}
	}
	return warning, nil
}

// List returns every hook, with secret values when reveal (so that a plan compares them;
// older servers show them anyway).
func (c *Client) List(ctx context.Context, reveal bool) ([]*hooks.Hook, error) {
	var all []*hooks.Hook
	q := url.Values{"size": {"1000"}}
	if reveal {
		q.Set("reveal", "true")
	}
	for {
		var page struct {
			Data   []*hooks.Hook `json:"data"`
			Offset string        `json:"offset"`
		}
		if _, err := c.call(ctx, http.MethodGet, "/event-hooks?"+q.Encode(), nil, &page); err != nil {
			return nil, fmt.Errorf("list hooks: %w", err)
		}
		all = append(all, page.Data...)
		if page.Offset == "" {
			return all, nil
		}
		q.Set("offset", page.Offset)
	}
}

// Catalogue returns the server's catalogue of sources, so that a plan checks sources as
// the server will.
func (c *Client) Catalogue(ctx context.Context) (*hooks.Catalogue, error) {
	var resp struct {
		Data map[string]map[string]hooks.EventInfo `json:"data"`
	}
	if _, err := c.call(ctx, http.MethodGet, "/event-hooks/sources", nil, &resp); err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	cat := hooks.NewCatalogue()
	for src, events := range resp.Data {
		for ev := range events {
			cat.Seen(src, ev)
		}
	}
	return cat, nil
}

// Put creates or replaces the hook h.ID (PUT /event-hooks/{id}) and returns the Admin
// API's warning, if any.
func (c *Client) Put(ctx context.Context, h *hooks.Hook) (string, error) {
	body, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode hook %s: %w", h.ID, err)
	}
	return c.call(ctx, http.MethodPut, "/event-hooks/"+h.ID, body, nil)
}

// Delete deletes the hook id.
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, "/event-hooks/"+id, nil, nil)
	return err
}
