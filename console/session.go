package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"github.com/valyala/fasthttp"
)

// cookieName is the console's session cookie.
const cookieName = "eh_console"

// sessionValue is what the session cookie holds: an HMAC of a fixed label keyed with the
// admin token. It proves the token was typed without being the token, it needs no server
// state (any instance with the same token accepts it), and changing the token ends every
// session.
func sessionValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("eventhooks console session v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// signedIn reports whether the request carries a valid session (always, without a token).
func (c *Console) signedIn(ctx *fasthttp.RequestCtx) bool {
	if c.cfg.Token == "" {
		return true
	}
	got := ctx.Request.Header.Cookie(cookieName)
	return hmac.Equal(got, []byte(c.session))
}

// setSession sets (maxAge > 0) or clears (maxAge < 0) the session cookie: HttpOnly, so
// scripts cannot read it, SameSite=Strict, so no other site's page can send it, and
// scoped to /ui.
func (c *Console) setSession(ctx *fasthttp.RequestCtx, value string, maxAge int) {
	var ck fasthttp.Cookie
	ck.SetKey(cookieName)
	ck.SetValue(value)
	ck.SetPath(basePath)
	ck.SetHTTPOnly(true)
	ck.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	ck.SetSecure(ctx.IsTLS())
	ck.SetMaxAge(maxAge)
	ctx.Response.Header.SetCookie(&ck)
}

// login checks the posted token and starts a session.
func (c *Console) login(ctx *fasthttp.RequestCtx) {
	if !hmac.Equal(ctx.PostArgs().Peek("token"), []byte(c.cfg.Token)) {
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		c.render(ctx, "login", page{Title: "Sign in", Error: "That is not this Admin API's token. Paste the value of --admin-token (EVENTHOOKS_ADMIN_TOKEN)."})
		return
	}
	c.setSession(ctx, c.session, 12*3600)
	ctx.Redirect(basePath+"/", fasthttp.StatusSeeOther)
}

// logout ends the session.
func (c *Console) logout(ctx *fasthttp.RequestCtx) {
	c.setSession(ctx, "", -1)
	ctx.Redirect(basePath+"/login", fasthttp.StatusSeeOther)
}
