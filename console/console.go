package console

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"path"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/deliveries"
	"github.com/eventhooks/eventhooks/hooks"
)

// basePath is where the console is served.
const basePath = "/ui"

// apiHeader must be on every /ui/api request: a page of another site cannot set it
// without a CORS preflight this server never grants, so the session cookie alone never
// authorizes a call (SameSite=Strict already keeps it from being sent; this is a second
// lock).
const apiHeader = "X-Eventhooks-Console"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Config configures a Console.
type Config struct {
	// Hooks returns the current hooks; required.
	Hooks func() *hooks.Snapshot
	// Log is the delivery log; nil shows no deliveries.
	Log *deliveries.Log
	// Token is the Admin API token; "" needs no login.
	Token string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives template errors (default slog.Default()).
	Logger *slog.Logger
}

// Console is the web console; create it with New.
type Console struct {
	cfg     Config
	session string
	pages   map[string]*template.Template
	assets  fs.FS
}

// New parses the embedded templates and returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	assets, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, pages: pages, assets: assets}
	if cfg.Token != "" {
		c.session = sessionValue(cfg.Token)
	}
	return c, nil
}

// Serve answers a request under /ui; api is the Admin API's handler.
func (c *Console) Serve(ctx *fasthttp.RequestCtx, api fasthttp.RequestHandler) {
	rest := strings.TrimPrefix(string(ctx.Path()), basePath)
	rest = strings.Trim(rest, "/")
	ctx.Response.Header.Set("X-Frame-Options", "DENY")
	ctx.Response.Header.Set("Referrer-Policy", "no-referrer")
	switch {
	case strings.HasPrefix(rest, "assets/"):
		c.asset(ctx, strings.TrimPrefix(rest, "assets/"))
	case rest == "login" && c.cfg.Token == "":
		ctx.Redirect(basePath+"/", fasthttp.StatusSeeOther)
	case rest == "login" && ctx.IsPost():
		c.login(ctx)
	case rest == "login":
		c.render(ctx, "login", page{Title: "Sign in"})
	case rest == "logout" && ctx.IsPost():
		c.logout(ctx)
	case strings.HasPrefix(rest, "api/"):
		c.proxy(ctx, api, strings.TrimPrefix(rest, "api"))
	case !c.signedIn(ctx):
		ctx.Redirect(basePath+"/login", fasthttp.StatusSeeOther)
	default:
		if c.cfg.Log != nil {
			c.cfg.Log.Touch(ctx) // the log is read while it is in use
		}
		c.page(ctx, strings.Split(rest, "/"))
	}
}

// proxy hands an /ui/api/… request of a signed-in page to the Admin API as apiPath.
func (c *Console) proxy(ctx *fasthttp.RequestCtx, api fasthttp.RequestHandler, apiPath string) {
	if len(ctx.Request.Header.Peek(apiHeader)) == 0 || !c.signedIn(ctx) {
		ctx.SetContentType("application/json")
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		ctx.SetBodyString(`{"message":"Your console session has ended: sign in again."}`)
		return
	}
	uri := apiPath
	if q := ctx.URI().QueryString(); len(q) > 0 {
		uri += "?" + string(q)
	}
	ctx.Request.SetRequestURI(uri)
	if c.cfg.Token != "" {
		ctx.Request.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+c.cfg.Token)
	}
	api(ctx)
}

// asset serves an embedded file.
func (c *Console) asset(ctx *fasthttp.RequestCtx, name string) {
	b, err := fs.ReadFile(c.assets, path.Clean(name))
	if err != nil {
		ctx.Error("Not found", fasthttp.StatusNotFound)
		return
	}
	ctx.SetContentType(mime.TypeByExtension(path.Ext(name)))
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-cache")
	ctx.SetBody(b)
}
