package deliveries

import (
	"fmt"
	"strings"
	"testing"
)

func attempt(hook string, i int, outcome string) Attempt {
	return Attempt{HookID: hook, WebhookID: fmt.Sprintf("msg_%s_%d", hook, i/2), Attempt: i%2 + 1,
		AtMs: int64(1000 + i), Outcome: outcome, Offset: int64(i)}
}

func TestIndexBounds(t *testing.T) {
	tests := []struct {
		name           string
		perHook, total int
		adds           map[string]int
		want           map[string]int
	}{
		{"under both caps", 10, 100, map[string]int{"a": 5, "b": 7}, map[string]int{"a": 5, "b": 7}},
		{"per hook cap", 4, 100, map[string]int{"a": 9, "b": 2}, map[string]int{"a": 4, "b": 2}},
		{"global cap drops the oldest", 100, 10, map[string]int{"a": 8, "b": 8}, map[string]int{"b": 8, "a": 2}},
		{"per hook cap of one", 1, 3, map[string]int{"a": 3}, map[string]int{"a": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewIndex(tt.perHook, tt.total)
			for _, hook := range []string{"a", "b"} { // a first: a's are the oldest
				for i := range tt.adds[hook] {
					x.Add(attempt(hook, i, OutcomeDelivered))
				}
			}
			total := 0
			for hook, n := range tt.want {
				got := x.Attempts(hook, Query{Size: 1000}).Data
				if len(got) != n {
					t.Errorf("hook %s: %d attempts held, want %d", hook, len(got), n)
				}
				// The newest are kept, newest first.
				if n > 0 && got[0].Offset != int64(tt.adds[hook]-1) {
					t.Errorf("hook %s: newest is offset %d, want %d", hook, got[0].Offset, tt.adds[hook]-1)
				}
				total += n
			}
			if x.Len() != total {
				t.Errorf("Len = %d, want %d", x.Len(), total)
			}
			if held := len(x.hooks); held > len(tt.want) {
				t.Errorf("%d hooks tracked, want at most %d", held, len(tt.want))
			}
		})
	}
}

func TestIndexPagingAndFilters(t *testing.T) {
	x := NewIndex(100, 1000)
	for i := range 30 {
		out := OutcomeDelivered
		if i%3 == 0 {
			out = OutcomeFailed
		}
		x.Add(attempt("h", i, out))
	}
	var seen []int64
	q := Query{Size: 4}
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		pg := x.Attempts("h", q)
		for _, a := range pg.Data {
			seen = append(seen, a.Offset)
		}
		if pg.Next == 0 {
			break
		}
		q.Before = pg.Next
	}
	if len(seen) != 30 || seen[0] != 29 || seen[29] != 0 {
		t.Fatalf("paged %v, want 29 down to 0", seen)
	}
	failed := x.Attempts("h", Query{Size: 100, Outcomes: []string{OutcomeFailed}, SinceMs: 1010, UntilMs: 1020})
	for _, a := range failed.Data {
		if a.Outcome != OutcomeFailed || a.AtMs < 1010 || a.AtMs > 1020 {
			t.Errorf("filter let through %+v", a)
		}
	}
	if len(failed.Data) != 3 { // offsets 10..20 that are failures: 12, 15, 18
		t.Errorf("%d failed attempts in range, want 3", len(failed.Data))
	}
	got, ok := x.Delivery("msg_h_6") // offsets 12 and 13
	if !ok || len(got) != 2 || got[0].Offset != 12 || got[1].Offset != 13 {
		t.Errorf("Delivery = %+v, %v", got, ok)
	}
	if _, ok := x.Delivery("msg_nope"); ok {
		t.Error("unknown webhook id found")
	}
}

func TestExcerptCutsOnRuneBoundary(t *testing.T) {
	s := strings.Repeat("é", 200) // 400 bytes
	a := Attempt{HookID: "h", Response: s, Error: "short"}
	a.trim()
	if len(a.Response) > maxExcerpt || !strings.HasPrefix(s, a.Response) || len(a.Response)%2 != 0 {
		t.Errorf("excerpt of %d bytes: %q", len(a.Response), a.Response)
	}
	if a.Error != "short" {
		t.Errorf("short text changed: %q", a.Error)
	}
}

func TestStats(t *testing.T) {
	x := NewIndex(100, 1000)
	now := int64(10*60_000 + 30_000) // the attempts all fall in the last bucket
	for i := range 10 {
		out := OutcomeDelivered
		if i == 7 {
			out = OutcomeDeadLettered
		}
		x.Add(Attempt{HookID: "h", AtMs: now - int64(10-i)*1000, Outcome: out, DurationMs: float64(i)})
	}
	st := x.Stats("h", now)
	if st.Attempts != 10 || st.Delivered != 9 || st.Dead != 1 || st.PerSecond != 10.0/60 {
		t.Errorf("stats %+v", st)
	}
	if rate, ok := st.SuccessRate(); !ok || rate != 0.9 {
		t.Errorf("success rate %v %v", rate, ok)
	}
	if st.LastFailure == nil || st.LastFailure.DurationMs != 7 || st.Last.DurationMs != 9 {
		t.Errorf("last %+v, last failure %+v", st.Last, st.LastFailure)
	}
	b := st.Series[Buckets-1]
	if b.Attempts != 10 || b.Failures != 1 || b.MaxMs != 9 || b.MeanMs != 4.5 {
		t.Errorf("last bucket %+v", b)
	}
	if _, ok := x.Stats("none", now).SuccessRate(); ok {
		t.Error("a hook without attempts has a success rate")
	}
}

// TestDeliveryInAttemptOrder: a delivery's attempts come back in attempt order whatever
// order their lines were logged in (a lane's batch can land after the scheduler's line).
func TestDeliveryInAttemptOrder(t *testing.T) {
	x := NewIndex(10, 10)
	for _, n := range []int{3, 1, 2} {
		x.Add(Attempt{HookID: "h", WebhookID: "msg_1", Attempt: n, AtMs: int64(n)})
	}
	got, ok := x.Delivery("msg_1")
	if !ok || len(got) != 3 || got[0].Attempt != 1 || got[1].Attempt != 2 || got[2].Attempt != 3 {
		t.Fatalf("Delivery = %+v", got)
	}
}
