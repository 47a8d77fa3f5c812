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
	rc, fixed := flakyReceiver(t)
	kafka := testkit.FreeAddr(t)
	p := start(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--partitions", "4")
	hook := p.createHook(t, `{"source":"balancer","event":"health","handler":"webhook","ordering":"none",
		"config":{"url":"`+rc.URL+`/flaky"},"retry":{"max_attempts":5,"initial_backoff_ms":20,"max_backoff_ms":50}}`)
	id := hook["id"].(string)
	produceHealthFrom(t, kafka, 0, events, 50)

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
	before := len(rc.Requests())
	code, job := p.call(t, "POST", "/dead-letters/redrive", `{"hook":"`+id+`"}`)
	if code != 201 {
		t.Fatalf("redrive: %d %v", code, job)
	}
	testkit.Eventually(t, 2*time.Minute, "re-drive done", func() bool {
		_, st := p.call(t, "GET", "/replays/"+job["id"].(string), "")
		return st["state"] == "done"
	})
	redriven := map[string]bool{}
	for _, r := range rc.WaitFor(t, before+events/100, time.Minute)[before:] {
		if m := seqField.FindSubmatch(r.Body); m != nil && r.Status == 200 {
			redriven[string(m[1])] = true
		}
	}
	for seq := 0; seq < events; seq += 100 {
		if !redriven[strconv.Itoa(seq)] {
			t.Errorf("seq %d was not delivered by the re-drive (got %v)", seq, redriven)
		}
	}
}
