// Package bearer checks request tokens in constant time. It owns nothing else.
package bearer

import (
	"bytes"
	"crypto/subtle"

	"github.com/valyala/fasthttp"
)

// Equal reports, in constant time, whether got is token (not empty).
func Equal(got []byte, token string) bool {
	return token != "" && subtle.ConstantTimeCompare(got, []byte(token)) == 1
}

// Is reports, in constant time, whether the request carries
// "Authorization: Bearer <token>" with this token (not empty).
func Is(ctx *fasthttp.RequestCtx, token string) bool {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if token == "" || len(auth) <= 7 || !bytes.EqualFold(auth[:7], []byte("Bearer ")) {
		return false
	}
	return Equal(bytes.TrimSpace(auth[7:]), token)
}
