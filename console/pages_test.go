package console

import "testing"

func TestRateText(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{-1, "0"},
		{0.001, "<0.01"},
		{0.0099, "<0.01"},
		{0.01, "0.01"},
		{1.0 / 60, "0.017"}, // once a minute: one decimal said 0.0
		{0.05, "0.05"},
		{0.5, "0.5"},
		{1, "1"},
		{2.345, "2.3"},
		{9.94, "9.9"},
		{9.96, "10"},
		{12.34, "12.3"},
		{99.94, "99.9"},
		{99.96, "100"},
		{100, "100"},
		{1234.6, "1235"},
	}
	for _, tt := range tests {
		if got := rateText(tt.in); got != tt.want {
			t.Errorf("rateText(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedriveLabel(t *testing.T) {
	tests := []struct{ hook, reason, want string }{
		{"", "", "Re-drive all"},
		{"", "permanent", "Re-drive all permanent"},
		{"orders to ops", "", "Re-drive all of orders to ops"},
		{"orders to ops", "max_attempts", "Re-drive all max_attempts of orders to ops"},
	}
	for _, tt := range tests {
		if got := redriveLabel(tt.hook, tt.reason); got != tt.want {
			t.Errorf("redriveLabel(%q, %q) = %q, want %q", tt.hook, tt.reason, got, tt.want)
		}
	}
}
