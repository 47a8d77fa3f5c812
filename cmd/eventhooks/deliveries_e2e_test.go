package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventhooks/eventhooks/internal/testkit"
)

var seqField = regexp.MustCompile(`"seq":(\d+)`)

// flakyReceiver answers 400 to every hundredth seq until fixed, 500 to the first two
// requests of every tenth seq (5, 15, …), 200 otherwise.
func flakyReceiver(t *testing.T) (*testkit.Receiver, *atomic.Bool) {
	var fixed atomic.Bool
	var mu sync.Mutex
	seen := map[int]int{}
	rc := testkit.NewReceiver(t)
	rc.Respond = func(_ int, r *testkit.Request) int {
		m := seqField.FindSubmatch(r.Body)
		if m == nil {
			return 200
		}
		seq, _ := strconv.Atoi(string(m[1]))
		mu.Lock()
		seen[seq]++
		n := seen[seq]
		mu.Unlock()
		switch {
		case seq%100 == 0 && !fixed.Load():
			return 400
		case seq%10 == 5 && n <= 2:
			return 500
		}
		return 200
	}
	return rc, &fixed
}

// flakyHook starts `dev` with a hook (ordering none, maxAttempts attempts) on a
// flakyReceiver and sends it events health events on 4 partitions.
func flakyHook(t *testing.T, events, maxAttempts int) (p *proc, rc *testkit.Receiver, fixed *atomic.Bool, id string) {
	t.Helper()
	rc, fixed = flakyReceiver(t)
	kafka := testkit.FreeAddr(t)
	p = start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "4")
	hook := p.createHook(t, fmt.Sprintf(`{"source":"balancer","event":"health","handler":"webhook","ordering":"none",
		"config":{"url":"%s/flaky"},"retry":{"max_attempts":%d,"initial_backoff_ms":20,"max_backoff_ms":50}}`, rc.URL, maxAttempts))
	produceHealthFrom(t, kafka, 0, events, 50)
	return p, rc, fixed, hook["id"].(string)
}

// listAll pages through a deliveries listing (Kong paging with next).
func listAll(t *testing.T, p *proc, path string) []map[string]any {
	t.Helper()
	var all []map[string]any
	for path != "" {
		code, page := p.call(t, "GET", path, "")
		if code != 200 {
			t.Fatalf("GET %s: %d %v", path, code, page)
		}
		for _, d := range page["data"].([]any) {
			all = append(all, d.(map[string]any))
		}
		path, _ = page["next"].(string)
	}
	return all
}

// TestDeliveriesAPIThroughTheBroker sends 1,000 events to a hook whose receiver fails
// one in ten with 500 (twice, then accepts) and one in a hundred with 400: the
// deliveries API lists every attempt with its outcome, a delivery shows its retries, the
// 400s are dead letters, and a re-drive once the receiver is fixed delivers them.
func TestDeliveriesAPIThroughTheBroker(t *testing.T) {
	const events = 1000
	p, rc, fixed, id := flakyHook(t, events, 5)

	want := map[string]int{"delivered": events - events/100, "failed": 2 * events / 10, "dead_lettered": events / 100}
	var attempts []map[string]any
	testkit.Eventually(t, 3*time.Minute, "every attempt listed", func() bool {
		attempts = listAll(t, p, "/event-hooks/"+id+"/deliveries?size=500")
		return len(attempts) >= want["delivered"]+want["failed"]+want["dead_lettered"]
	})
	got := map[string]int{}
	var retried string
	for _, a := range attempts {
		got[a["outcome"].(string)]++
		if a["outcome"] == "failed" && a["status"] == 500.0 {
			retried = a["webhook_id"].(string)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	for status, n := range map[string]int{"dead": want["dead_lettered"], "failed": want["failed"]} {
		if got := len(listAll(t, p, "/event-hooks/"+id+"/deliveries?status="+status)); got != n {
			t.Errorf("status=%s lists %d, want %d", status, got, n)
		}
	}

	code, d := p.call(t, "GET", "/deliveries/"+retried, "")
	if code != 200 {
		t.Fatalf("GET /deliveries/%s: %d %v", retried, code, d)
	}
	var trail []string
	for _, a := range d["attempts"].([]any) {
		a := a.(map[string]any)
		trail = append(trail, fmt.Sprint(a["attempt"], ":", a["outcome"], ":", a["status"]))
	}
	if fmt.Sprint(trail) != "[1:failed:500 2:failed:500 3:delivered:200]" {
		t.Errorf("delivery %s attempts %v", retried, trail)
	}

	dead := listAll(t, p, "/dead-letters?hook="+url.QueryEscape(id))
	if len(dead) != events/100 {
		t.Fatalf("%d dead letters, want %d", len(dead), events/100)
	}
	for _, dl := range dead {
		if dl["reason"] != "permanent" || dl["last_status"] != 400.0 {
			t.Errorf("dead letter %v", dl)
		}
	}

	fixed.Store(true)
	_, redriven := redrive(t, p, rc, `{"hook":"`+id+`"}`, events/100)
	for seq := 0; seq < events; seq += 100 {
		if !redriven[seq] {
			t.Errorf("seq %d was not delivered by the re-drive (got %v)", seq, redriven)
		}
	}
}

// redrive posts body to /dead-letters/redrive, waits for the job and for want requests
// to reach rc, and returns the job's status and the seqs it delivered.
func redrive(t *testing.T, p *proc, rc *testkit.Receiver, body string, want int) (map[string]any, map[int]bool) {
	t.Helper()
	before := len(rc.Requests())
	code, job := p.call(t, "POST", "/dead-letters/redrive", body)
	if code != 201 {
		t.Fatalf("redrive %s: %d %v", body, code, job)
	}
	testkit.Eventually(t, 2*time.Minute, "re-drive done", func() bool {
		_, job = p.call(t, "GET", "/replays/"+job["id"].(string), "")
		return job["state"] == "done"
	})
	delivered := map[int]bool{}
	for _, r := range rc.WaitFor(t, before+want, time.Minute)[before:] {
		if m := seqField.FindSubmatch(r.Body); m != nil && r.Status == 200 {
			seq, _ := strconv.Atoi(string(m[1]))
			delivered[seq] = true
		}
	}
	return job, delivered
}

// TestRedriveSelectsByReason: of a hook's dead letters, the 400s ("permanent") and the
// 500s that ran out of attempts ("max_attempts"), a re-drive with reason permanent sends
// only the 400s; one with reason max_attempts then still finds the others.
func TestRedriveSelectsByReason(t *testing.T) {
	const events = 200
	p, rc, fixed, id := flakyHook(t, events, 2)

	byReason := map[string][]int{} // seqs 0 and 100 answer 400; 5, 15, … 500 twice
	testkit.Eventually(t, 2*time.Minute, "every dead letter listed", func() bool {
		return len(listAll(t, p, "/dead-letters?hook="+url.QueryEscape(id))) == events/100+events/10
	})
	for _, reason := range []string{"permanent", "max_attempts"} {
		for _, dl := range listAll(t, p, "/dead-letters?reason="+reason) {
			m := seqField.FindStringSubmatch(dl["value"].(string))
			seq, _ := strconv.Atoi(m[1])
			byReason[reason] = append(byReason[reason], seq)
		}
	}
	if len(byReason["permanent"]) != events/100 || len(byReason["max_attempts"]) != events/10 {
		t.Fatalf("dead letters by reason: %v", byReason)
	}

	fixed.Store(true)
	for _, reason := range []string{"permanent", "max_attempts"} {
		job, delivered := redrive(t, p, rc, `{"hook":"`+id+`","reason":"`+reason+`"}`, len(byReason[reason]))
		if served := job["served"].(map[string]any)[id]; served != float64(len(byReason[reason])) {
			t.Errorf("reason=%s served %v, want %d", reason, served, len(byReason[reason]))
		}
		for _, seq := range byReason[reason] {
			if !delivered[seq] {
				t.Errorf("reason=%s did not deliver seq %d (got %v)", reason, seq, delivered)
			}
		}
		if len(delivered) != len(byReason[reason]) {
			t.Errorf("reason=%s delivered seqs %v, want only %v", reason, delivered, byReason[reason])
		}
	}
}
