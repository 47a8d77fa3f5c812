package main

import "testing"

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
