package bearer

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestIs(t *testing.T) {
	for _, tt := range []struct {
		auth, token string
		want        bool
	}{
		{"Bearer s3cret", "s3cret", true},
		{"bearer  s3cret ", "s3cret", true},
		{"Bearer s3cre", "s3cret", false},
		{"Basic s3cret", "s3cret", false},
		{"Bearer ", "", false},
		{"", "", false},
	} {
		var ctx fasthttp.RequestCtx
		if tt.auth != "" {
			ctx.Request.Header.Set(fasthttp.HeaderAuthorization, tt.auth)
		}
		if got := Is(&ctx, tt.token); got != tt.want {
			t.Errorf("Is(%q, %q) = %v, want %v", tt.auth, tt.token, got, tt.want)
		}
	}
}

func TestEqualRefusesAnEmptyToken(t *testing.T) {
	if Equal(nil, "") || Equal([]byte{}, "") {
		t.Error("an empty token matched")
	}
	if !Equal([]byte("x"), "x") {
		t.Error("x did not match x")
	}
}
