package admin

import (
	"encoding/base64"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/eventhooks/eventhooks/hooks"
	"github.com/valyala/fasthttp"
)

// Page sizes, as in Kong.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// page is a parsed list request. Hooks are listed in Snapshot order (created_at, id), and
// the offset token is the position of the last hook returned, so deleting or adding hooks
// between pages neither repeats nor skips the others.
type page struct {
	size    int
	after   *cursor
	tags    []string
	anyTag  bool
	rawTags string
}

type cursor struct {
	createdAt int64
	id        string
}

// listResponse is Kong's collection shape.
type listResponse struct {
	Data   []*hooks.Hook `json:"data"`
	Next   *string       `json:"next"`
	Offset string        `json:"offset,omitempty"`
}

func parsePage(args *fasthttp.Args) (page, error) {
	pg := page{size: defaultPageSize}
	if raw := args.Peek("size"); raw != nil {
		n, err := strconv.Atoi(string(raw))
		if err != nil {
			return pg, &apiError{status: fasthttp.StatusBadRequest, Code: codeInvalidSize, Name: "invalid size", Message: "size must be a number"}
		}
		if n < 1 || n > maxPageSize {
			return pg, &apiError{status: fasthttp.StatusBadRequest, Code: codeInvalidSize, Name: "invalid size",
				Message: "size must be an integer between 1 and " + strconv.Itoa(maxPageSize)}
		}
		pg.size = n
	}
	if raw := string(args.Peek("offset")); raw != "" {
		c, ok := decodeCursor(raw)
		if !ok {
			return pg, &apiError{status: fasthttp.StatusBadRequest, Code: codeInvalidOffset, Name: "invalid offset",
				Message: "'" + raw + "' is not a valid offset: bad base64 encoding"}
		}
		pg.after = &c
	}
	if raw := string(args.Peek("tags")); raw != "" {
		pg.rawTags = raw
		pg.anyTag = strings.Contains(raw, "/")
		pg.tags = strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '/' })
	}
	return pg, nil
}

func encodeCursor(h *hooks.Hook) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(h.CreatedAt, 10) + "," + h.ID))
}

func decodeCursor(s string) (cursor, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false
	}
	ts, id, ok := strings.Cut(string(raw), ",")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return cursor{}, false
	}
	return cursor{createdAt: n, id: id}, true
}

// list returns one page of all, which is sorted by (CreatedAt, ID).
func (pg page) list(all []*hooks.Hook) listResponse {
	start := 0
	if c := pg.after; c != nil {
		start = sort.Search(len(all), func(i int) bool {
			h := all[i]
			return h.CreatedAt > c.createdAt || (h.CreatedAt == c.createdAt && h.ID > c.id)
		})
	}
	resp := listResponse{Data: make([]*hooks.Hook, 0, min(pg.size, len(all)-start))}
	for _, h := range all[start:] {
		if !pg.matches(h) {
			continue
		}
		if len(resp.Data) == pg.size {
			resp.Offset = encodeCursor(resp.Data[len(resp.Data)-1])
			next := pg.nextURL(resp.Offset)
			resp.Next = &next
			break
		}
		resp.Data = append(resp.Data, h)
	}
	return resp
}

func (pg page) matches(h *hooks.Hook) bool {
	if len(pg.tags) == 0 {
		return true
	}
	for _, want := range pg.tags {
		has := false
		for _, t := range h.Tags {
			if t == want {
				has = true
				break
			}
		}
		if has == pg.anyTag {
			return has
		}
	}
	return !pg.anyTag
}

func (pg page) nextURL(offset string) string {
	q := "offset=" + offset + "&size=" + strconv.Itoa(pg.size)
	if pg.rawTags != "" {
		q += "&tags=" + url.QueryEscape(pg.rawTags)
	}
	return patHooks + "?" + q
}
