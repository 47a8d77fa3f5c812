package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/eventhooks/eventhooks/hooks"
)

// ReplayJobs runs replays in the background for the Admin API (POST /replays): each job
// is one Replay with its own goroutine, owned and waited for by ReplayJobs.
type ReplayJobs struct {
	p    *Processor
	hook func(id string) bool // reports whether a hook exists

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*replayJob
}

// ReplayRequest is the body of POST /replays.
type ReplayRequest struct {
	// Topic is the input topic to read (default: the first; with DLQ, the DLQ topic).
	Topic       string   `json:"topic"`
	From        string   `json:"from"`
	To          string   `json:"to"`
	Hooks       []string `json:"hooks"`
	Source      string   `json:"source"`
	Event       string   `json:"event"`
	Rate        float64  `json:"rate"`
	DryRun      bool     `json:"dry_run"`
	HonourGates bool     `json:"honour_gates"`
	DLQ         bool     `json:"dlq"`
	// Reason, with DLQ, re-drives only the dead letters of that eh-reason.
	Reason string `json:"reason,omitempty"`
}

// ReplayStatus is what GET /replays/{id} answers.
type ReplayStatus struct {
	ID         string           `json:"id"`
	State      string           `json:"state"` // running, done, interrupted, failed
	Request    ReplayRequest    `json:"request"`
	Read       int64            `json:"read"`
	Total      int64            `json:"total"`
	Served     map[string]int64 `json:"served"`
	Skipped    int64            `json:"skipped"`
	Gated      int64            `json:"gated"`
	Next       string           `json:"next"`
	Error      string           `json:"error,omitempty"`
	StartedAt  int64            `json:"started_at"`
	FinishedAt int64            `json:"finished_at,omitempty"`
}

type replayJob struct {
	mu     sync.Mutex
	status ReplayStatus
	cancel context.CancelFunc
}

// maxFinishedJobs bounds the finished jobs kept for GET.
const maxFinishedJobs = 100

// NewReplayJobs returns a job runner on p; hookExists validates the requested hook ids.
func NewReplayJobs(p *Processor, hookExists func(id string) bool) *ReplayJobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &ReplayJobs{p: p, hook: hookExists, ctx: ctx, cancel: cancel, jobs: map[string]*replayJob{}}
}

// Start validates a POST /replays body and starts the job. Invalid bodies are
// *hooks.SchemaError.
func (j *ReplayJobs) Start(body []byte) (any, error) {
	var req ReplayRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, &hooks.SchemaError{Fields: map[string]string{"@entity": "cannot parse JSON body: " + err.Error()}}
	}
	rc, err := j.config(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(j.ctx)
	job := &replayJob{cancel: cancel, status: ReplayStatus{
		ID: uuid.NewString(), State: "running", Request: req, StartedAt: time.Now().Unix(), Served: map[string]int64{},
	}}
	rc.Progress = job.update
	j.mu.Lock()
	j.jobs[job.status.ID] = job
	j.pruneLocked()
	j.mu.Unlock()
	j.wg.Go(func() {
		res, err := j.p.Replay(ctx, rc)
		job.finish(res, err)
	})
	return job.snapshot(), nil
}

// config turns a request into a ReplayConfig, reporting bad fields.
func (j *ReplayJobs) config(req ReplayRequest) (ReplayConfig, error) {
	e := &hooks.SchemaError{Fields: map[string]string{}}
	from, err := ParseBound(req.From)
	if err != nil {
		e.Fields["from"] = err.Error()
	}
	to, err := ParseBound(req.To)
	if err != nil {
		e.Fields["to"] = err.Error()
	}
	if req.To == "" {
		to.Time = time.Now()
	}
	if req.Rate < 0 {
		e.Fields["rate"] = "value should be 0 (unlimited) or more"
	}
	switch {
	case req.Topic == "":
	case req.DLQ:
		e.Fields["topic"] = "not with dlq: a re-drive reads the DLQ topic"
	case !slices.Contains(j.p.cfg.Topics, req.Topic):
		e.Fields["topic"] = "not an input topic: expected one of " + strings.Join(j.p.cfg.Topics, ", ")
	}
	if req.Reason != "" && !req.DLQ {
		e.Fields["reason"] = "only with dlq: it selects dead letters by their reason"
	}
	for _, id := range req.Hooks {
		if !j.hook(id) {
			e.Fields["hooks"] = "no such hook: " + id
		}
	}
	if len(e.Fields) > 0 {
		return ReplayConfig{}, e
	}
	return ReplayConfig{
		Topic: req.Topic, From: from, To: to, HookIDs: req.Hooks, Source: req.Source, Event: req.Event,
		Rate: req.Rate, DryRun: req.DryRun, HonourGates: req.HonourGates, DLQ: req.DLQ, Reason: req.Reason,
	}, nil
}

// pruneLocked forgets the oldest finished jobs beyond maxFinishedJobs.
func (j *ReplayJobs) pruneLocked() {
	var finished []*replayJob
	for _, job := range j.jobs {
		if s := job.snapshot(); s.State != "running" {
			finished = append(finished, job)
		}
	}
	if len(finished) <= maxFinishedJobs {
		return
	}
	sort.Slice(finished, func(a, b int) bool { return finished[a].snapshot().StartedAt < finished[b].snapshot().StartedAt })
	for _, job := range finished[:len(finished)-maxFinishedJobs] {
		delete(j.jobs, job.snapshot().ID)
	}
}

// Get returns a job's status.
func (j *ReplayJobs) Get(id string) (any, bool) {
	j.mu.Lock()
	job, ok := j.jobs[id]
	j.mu.Unlock()
	if !ok {
		return nil, false
	}
	return job.snapshot(), true
}

// List returns every job's status, newest first.
func (j *ReplayJobs) List() any {
	j.mu.Lock()
	out := make([]ReplayStatus, 0, len(j.jobs))
	for _, job := range j.jobs {
		out = append(out, job.snapshot())
	}
	j.mu.Unlock()
	sort.Slice(out, func(a, b int) bool { return out[a].StartedAt > out[b].StartedAt })
	return out
}

// Cancel interrupts a running job; it reports whether the job exists.
func (j *ReplayJobs) Cancel(id string) bool {
	j.mu.Lock()
	job, ok := j.jobs[id]
	j.mu.Unlock()
	if ok {
		job.cancel()
	}
	return ok
}

// Close interrupts every job and waits for them.
func (j *ReplayJobs) Close() {
	j.cancel()
	j.wg.Wait()
}

func (job *replayJob) update(pr ReplayProgress) {
	job.mu.Lock()
	defer job.mu.Unlock()
	job.status.Read, job.status.Total, job.status.Served = pr.Read, pr.Total, pr.Served
	job.status.Skipped, job.status.Gated, job.status.Next = pr.Skipped, pr.Gated, pr.Next.String()
}

func (job *replayJob) finish(pr ReplayProgress, err error) {
	job.update(pr)
	job.mu.Lock()
	defer job.mu.Unlock()
	job.status.FinishedAt = time.Now().Unix()
	switch {
	case err != nil:
		job.status.State, job.status.Error = "failed", err.Error()
	case pr.Done:
		job.status.State = "done"
	default:
		job.status.State = "interrupted"
	}
}

func (job *replayJob) snapshot() ReplayStatus {
	job.mu.Lock()
	defer job.mu.Unlock()
	s := job.status
	s.Served = make(map[string]int64, len(job.status.Served))
	for k, v := range job.status.Served {
		s.Served[k] = v
	}
	return s
}
