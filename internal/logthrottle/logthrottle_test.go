package logthrottle

import (
	"sync"
	"testing"
)

func TestThrottleLetsOneLinePerIntervalPerKey(t *testing.T) {
	var th Throttle
	if ok, _ := th.Allow("a"); !ok {
		t.Fatal("first line of a key throttled")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if ok, _ := th.Allow("a"); ok {
				t.Error("a second line within the interval was let through")
			}
		})
	}
	wg.Wait()
	if ok, _ := th.Allow("b"); !ok {
		t.Fatal("another key was throttled")
	}
	v, _ := th.keys.Load("a")
	if hits := v.(*throttleKey).hits.Load(); hits != 8 {
		t.Fatalf("%d lines counted as swallowed, want 8", hits)
	}
}
