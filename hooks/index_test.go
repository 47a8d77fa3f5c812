package hooks

import (
	"reflect"
	"testing"
)

func TestIndexMatch(t *testing.T) {
	ix := BuildIndex([]IndexEntry[string]{
		{Source: "crud", Event: "consumers", Value: "consumers"},
		{Source: "crud", Event: "consumers:create", Value: "consumers:create"},
		{Source: "crud", Event: "", Value: "crud-all"},
		{Source: "balancer", Event: "health", Value: "health"},
		{Source: "crud", Event: "routes", Value: "routes"},
	})
	tests := []struct {
		source, event string
		want          []string
	}{
		{"crud", "consumers", []string{"consumers", "crud-all"}},
		{"crud", "consumers:create", []string{"consumers", "consumers:create", "crud-all"}},
		{"crud", "consumers:delete", []string{"consumers", "crud-all"}},
		{"crud", "services", []string{"crud-all"}},
		{"crud", "routes:update", []string{"crud-all", "routes"}},
		{"balancer", "health", []string{"health"}},
		{"balancer", "other", nil},
		{"nope", "x", nil},
	}
	for _, tt := range tests {
		got := ix.Match(tt.source, tt.event)
		if len(got) == 0 && len(tt.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Match(%s, %s) = %v, want %v", tt.source, tt.event, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ix.Match("crud", "consumers:create") }); n != 0 {
		t.Errorf("Match allocates %.0f", n)
	}
}

func BenchmarkIndexMatch(b *testing.B) {
	var entries []IndexEntry[int]
	for i, ev := range []string{"consumers", "services", "routes", "plugins", "upstreams", "targets"} {
		entries = append(entries, IndexEntry[int]{Source: "crud", Event: ev, Value: i})
	}
	entries = append(entries, IndexEntry[int]{Source: "balancer", Event: "health", Value: 99})
	ix := BuildIndex(entries)
	b.ReportAllocs()
	for b.Loop() {
		if len(ix.Match("crud", "routes:update")) != 1 {
			b.Fatal("no match")
		}
	}
}
