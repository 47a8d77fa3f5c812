package main

import (
	"runtime/debug"
	"testing"
)

func TestCheckAdminExposure(t *testing.T) {
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:8080", "", true},
		{"[::1]:8080", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"10.0.0.5:8080", "", false},
		{"0.0.0.0:8080", "s3cret", true},
		{"nonsense", "", false},
	}
	for _, tt := range tests {
		err := checkAdminExposure(AdminFlags{AdminAddr: tt.addr, AdminToken: tt.token})
		if (err == nil) != tt.ok {
			t.Errorf("checkAdminExposure(%q, token=%q) = %v", tt.addr, tt.token, err)
		}
	}
}

func TestGCPercentDefaultsUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tt := range []struct {
		env  string
		want int
	}{{"", defaultGCPercent}, {"50", 77}} {
		t.Setenv("GOGC", tt.env)
		debug.SetGCPercent(77) // what the runtime would have read from GOGC
		setGCPercent()
		if got := debug.SetGCPercent(77); got != tt.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tt.env, got, tt.want)
		}
	}
}
