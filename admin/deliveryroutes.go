package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/deliveries"
)

// statusOutcomes maps the status filter of the deliveries listing to attempt outcomes.
var statusOutcomes = map[string]string{
	"delivered": deliveries.OutcomeDelivered,
	"failed":    deliveries.OutcomeFailed,
	"dead":      deliveries.OutcomeDeadLettered,
}

// listPage is Kong's collection shape for the delivery log's listings.
type listPage[T any] struct {
	Data   []T     `json:"data"`
	Next   *string `json:"next"`
	Offset string  `json:"offset,omitempty"`
}

// deliveryLog returns the delivery log, or 501 when none is wired.
func (s *Server) deliveryLog(ctx context.Context) (*deliveries.Log, error) {
	if s.cfg.Deliveries == nil {
		return nil, errNotImplemented
	}
	s.cfg.Deliveries.Touch(ctx) // the log is read while it is in use
	return s.cfg.Deliveries, nil
}

// GET /event-hooks/{id}/deliveries: the hook's attempts, newest first.
func (s *Server) listDeliveries(ctx *fasthttp.RequestCtx, p params) error {
	log, err := s.deliveryLog(ctx)
	if err != nil {
		return err
	}
	if _, err := s.lookup(p.id); err != nil {
		return err
	}
	args := ctx.QueryArgs()
	q := deliveries.Query{}
	if q.Size, q.Before, err = parseSeqPage(args); err != nil {
		return err
	}
	if q.SinceMs, q.UntilMs, err = parseTimeRange(args); err != nil {
		return err
	}
	if raw := string(args.Peek("status")); raw != "" {
		for st := range strings.SplitSeq(raw, ",") {
			o, ok := statusOutcomes[st]
			if !ok {
				return badRequest("invalid status '%s': use delivered, failed or dead (comma-separated for several)", st)
			}
			q.Outcomes = append(q.Outcomes, o)
		}
	}
	id, _ := canonicalID(p.id)
	return respondPage(ctx, log.Attempts.Attempts(id, q))
}

// GET /deliveries/{webhook-id}: every attempt held of one delivery, oldest first.
func (s *Server) getDelivery(ctx *fasthttp.RequestCtx, p params) error {
	log, err := s.deliveryLog(ctx)
	if err != nil {
		return err
	}
	attempts, ok := log.Attempts.Delivery(p.id)
	if !ok {
		return errNotFound
	}
	last := attempts[len(attempts)-1]
	return respond(ctx, fasthttp.StatusOK, map[string]any{
		"webhook_id": p.id, "hook_id": last.HookID, "event_id": last.EventID,
		"outcome": last.Outcome, "attempts": attempts,
	})
}

// POST /deliveries/{webhook-id}/retry: send the event to its hook again now, as a
// one-event replay job (progress at /replays/{id}).
func (s *Server) retryDelivery(ctx *fasthttp.RequestCtx, p params) error {
	log, err := s.deliveryLog(ctx)
	if err != nil {
		return err
	}
	if s.cfg.Replays == nil {
		return errNotImplemented
	}
	attempts, ok := log.Attempts.Delivery(p.id)
	if !ok {
		return errNotFound
	}
	a := attempts[len(attempts)-1]
	cctx, cancel := s.writeCtx()
	defer cancel()
	topic, from, to, err := log.RetryRange(cctx, a)
	switch {
	case errors.Is(err, deliveries.ErrOtherTopic):
		return &apiError{status: fasthttp.StatusConflict, Message: "cannot retry: " + err.Error()}
	case err != nil:
		return &apiError{status: fasthttp.StatusServiceUnavailable, Message: "cannot retry: " + err.Error()}
	}
	return s.startJob(ctx, map[string]any{"topic": topic, "from": from, "to": to, "hooks": []string{a.HookID}})
}

// startJob starts a replay job of req and answers 201 with its status and its Location.
func (s *Server) startJob(ctx *fasthttp.RequestCtx, req map[string]any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	st, err := s.cfg.Replays.Start(body)
	if err != nil {
		return err
	}
	var job struct {
		ID string `json:"id"`
	}
	if b, err := json.Marshal(st); err == nil && json.Unmarshal(b, &job) == nil && job.ID != "" {
		ctx.Response.Header.Set(fasthttp.HeaderLocation, patReplays+"/"+job.ID)
	}
	return respond(ctx, fasthttp.StatusCreated, st)
}

// GET /dead-letters: the dead letters held, newest first.
func (s *Server) listDeadLetters(ctx *fasthttp.RequestCtx, _ params) error {
	log, err := s.deliveryLog(ctx)
	if err != nil {
		return err
	}
	args := ctx.QueryArgs()
	q := deliveries.DeadLetterQuery{HookID: string(args.Peek("hook")), Reason: string(args.Peek("reason"))}
	if q.Size, q.Before, err = parseSeqPage(args); err != nil {
		return err
	}
	if q.SinceMs, q.UntilMs, err = parseTimeRange(args); err != nil {
		return err
	}
	return respondPage(ctx, log.DeadLetters.List(q))
}

// redriveRequest is the body of POST /dead-letters/redrive; every field is optional.
// Its filters are those of GET /dead-letters.
type redriveRequest struct {
	Hook   string `json:"hook"`
	Reason string `json:"reason"`
	Since  string `json:"since"`
	Until  string `json:"until"`
}

// POST /dead-letters/redrive: re-drive dead letters (all, or one hook's, of one reason,
// in a time range) as `eventhooks replay --dlq` does, as a replay job.
func (s *Server) redriveDeadLetters(ctx *fasthttp.RequestCtx, _ params) error {
	if s.cfg.Replays == nil {
		return errNotImplemented
	}
	body, err := readBody(ctx, nil)
	if err != nil {
		return err
	}
	var rr redriveRequest
	if len(body) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rr); err != nil {
			return schemaViolation("@entity", "cannot parse JSON body: "+err.Error()+
				` (fields: "hook", "reason", "since", "until")`)
		}
	}
	req := map[string]any{"dlq": true}
	if rr.Hook != "" {
		req["hooks"] = []string{rr.Hook}
	}
	if rr.Reason != "" {
		req["reason"] = rr.Reason
	}
	for field, raw := range map[string]string{"from": rr.Since, "to": rr.Until} {
		if raw == "" {
			continue
		}
		ms, err := parseTime(raw)
		if err != nil {
			return schemaViolation(map[string]string{"from": "since", "to": "until"}[field], err.Error())
		}
		req[field] = time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	}
	return s.startJob(ctx, req)
}

// parseSeqPage reads size (default 100, at most 1000) and offset, a cursor of the
// delivery log.
func parseSeqPage(args *fasthttp.Args) (size int, before uint64, err error) {
	size = defaultPageSize
	if raw := args.Peek("size"); raw != nil {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 || n > maxPageSize {
			return 0, 0, &apiError{status: fasthttp.StatusBadRequest, Code: codeInvalidSize, Name: "invalid size",
				Message: "size must be an integer between 1 and " + strconv.Itoa(maxPageSize)}
		}
		size = n
	}
	if raw := string(args.Peek("offset")); raw != "" {
		b, derr := base64.RawURLEncoding.DecodeString(raw)
		n, perr := strconv.ParseUint(string(b), 10, 64)
		if derr != nil || perr != nil || n == 0 {
			return 0, 0, &apiError{status: fasthttp.StatusBadRequest, Code: codeInvalidOffset, Name: "invalid offset",
				Message: "'" + raw + "' is not a valid offset"}
		}
		before = n
	}
	return size, before, nil
}

// respondPage answers a page, with next naming the request's own query and the next offset.
func respondPage[T any](ctx *fasthttp.RequestCtx, pg deliveries.Page[T]) error {
	resp := listPage[T]{Data: pg.Data}
	if pg.Next != 0 {
		resp.Offset = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(pg.Next, 10)))
		var args fasthttp.Args
		ctx.QueryArgs().CopyTo(&args)
		args.Set("offset", resp.Offset)
		next := string(ctx.Path()) + "?" + args.String()
		resp.Next = &next
	}
	return respond(ctx, fasthttp.StatusOK, resp)
}

// parseTimeRange reads since and until (RFC 3339 or unix seconds) as unix milliseconds.
func parseTimeRange(args *fasthttp.Args) (since, until int64, err error) {
	for name, dst := range map[string]*int64{"since": &since, "until": &until} {
		if raw := string(args.Peek(name)); raw != "" {
			if *dst, err = parseTime(raw); err != nil {
				return 0, 0, badRequest("invalid %s: %s", name, err)
			}
		}
	}
	return since, until, nil
}

// parseTime reads an RFC 3339 time or unix seconds (fractions allowed) as unix ms.
func parseTime(raw string) (int64, error) {
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t.UnixMilli(), nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f > 1e11 {
		return 0, errors.New("'" + raw + "' is neither an RFC 3339 time nor unix seconds")
	}
	return int64(f * 1000), nil
}
