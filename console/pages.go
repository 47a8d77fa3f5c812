package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/eventhooks/eventhooks/deliveries"
	"github.com/eventhooks/eventhooks/hooks"
)

// page is what every template gets.
type page struct {
	Title string
	// Nav names the active navigation item.
	Nav   string
	Error string
	// Logout shows the sign-out button (a token is configured).
	Logout bool
	Data   any
}

// pageNames are the templates under templates/, each rendered inside layout.html.
var pageNames = []string{"login", "hooks", "hook", "edit", "delivery", "deadletters", "notfound"}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a whole page.
func (c *Console) render(ctx *fasthttp.RequestCtx, name string, p page) {
	p.Logout = c.cfg.Token != "" && c.signedIn(ctx)
	c.execute(ctx, name, "layout", p)
}

// execute runs one template of a page into the response.
func (c *Console) execute(ctx *fasthttp.RequestCtx, name, tmpl string, data any) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, tmpl, data); err != nil {
		c.cfg.Logger.Error("console: render", "page", name, "err", err)
		ctx.Error("The console could not render this page: "+err.Error(), fasthttp.StatusInternalServerError)
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetBody(buf.Bytes())
}

// page routes a signed-in page request by its path segments below /ui.
func (c *Console) page(ctx *fasthttp.RequestCtx, seg []string) {
	switch {
	case len(seg) == 1 && seg[0] == "":
		c.hooksPage(ctx)
	case len(seg) == 2 && seg[0] == "hooks" && seg[1] == "new":
		c.editPage(ctx, nil)
	case len(seg) >= 2 && seg[0] == "hooks":
		h, ok := c.cfg.Hooks().Get(seg[1])
		switch {
		case !ok:
			c.notFound(ctx, "There is no hook "+seg[1]+". It may have been deleted.")
		case len(seg) == 2:
			c.hookPage(ctx, h)
		case len(seg) == 3 && seg[2] == "edit":
			c.editPage(ctx, h)
		case len(seg) == 3 && seg[2] == "rows":
			c.execute(ctx, "hook", "rows", c.deliveryRows(ctx, h))
		default:
			c.notFound(ctx, "")
		}
	case len(seg) == 2 && seg[0] == "deliveries":
		c.deliveryPage(ctx, seg[1])
	case len(seg) == 1 && seg[0] == "dead-letters":
		c.deadLettersPage(ctx)
	default:
		c.notFound(ctx, "")
	}
}

func (c *Console) notFound(ctx *fasthttp.RequestCtx, msg string) {
	if msg == "" {
		msg = "There is no such page in the console."
	}
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	c.render(ctx, "notfound", page{Title: "Not found", Error: msg})
}

// hookName is a hook's name, else its handler and event.
func hookName(h *hooks.Hook) string {
	if h.Name != nil && *h.Name != "" {
		return *h.Name
	}
	return h.Handler + " on " + h.Source + ":" + h.EventName()
}

// hookRow is one line of the hooks list.
type hookRow struct {
	ID, Name, Source, Event, Handler, Destination string
	Enabled                                       bool
	DisabledReason                                string
	PerSecond, Success, SuccessClass              string
	Attempts                                      int
	LastError                                     *deliveries.Attempt
	// Breaker is the destination's breaker state, HookBreaker the hook's own ("" when
	// this process has none).
	Breaker, HookBreaker string
}

func (c *Console) hooksPage(ctx *fasthttp.RequestCtx) {
	snap := c.cfg.Hooks()
	br := breakerStates()
	rows := make([]hookRow, 0, len(snap.Hooks))
	for _, h := range snap.Hooks {
		rows = append(rows, c.hookRow(h, br))
	}
	c.render(ctx, "hooks", page{Title: "Hooks", Nav: "hooks", Data: rows})
}

func (c *Console) hookRow(h *hooks.Hook, br breakers) hookRow {
	st := c.stats(h.ID)
	dest := destination(h)
	r := hookRow{
		ID: h.ID, Name: hookName(h), Source: h.Source, Event: h.EventName(), Handler: h.Handler,
		Destination: dest, Enabled: h.IsEnabled(), Breaker: br.dest[dest], HookBreaker: br.hook[h.ID], Attempts: st.Attempts,
		PerSecond: rateText(st.PerSecond), LastError: st.LastFailure, SuccessClass: "none", Success: "—",
	}
	if h.DisabledReason != nil {
		r.DisabledReason = *h.DisabledReason
	}
	if rate, ok := st.SuccessRate(); ok {
		r.Success = strconv.FormatFloat(rate*100, 'f', 1, 64) + " %"
		r.SuccessClass = map[bool]string{true: "good", false: "bad"}[rate >= 0.99]
		if rate >= 0.9 && rate < 0.99 {
			r.SuccessClass = "warn"
		}
	}
	return r
}

// rateText says a rate per second with the precision it deserves: two significant digits
// below 10 (a hook sending once a minute reads 0.017, not 0.0), "<0.01" below that, one
// decimal below 100 and whole numbers above.
func rateText(perSecond float64) string {
	switch {
	case perSecond <= 0:
		return "0"
	case perSecond < 0.01:
		return "<0.01"
	case perSecond < 10:
		return strconv.FormatFloat(perSecond, 'g', 2, 64)
	case perSecond < 99.95: // 99.96 reads 100, not 100.0
		return strconv.FormatFloat(perSecond, 'f', 1, 64)
	}
	return strconv.FormatFloat(perSecond, 'f', 0, 64)
}

func (c *Console) stats(hookID string) deliveries.Stats {
	if c.cfg.Log == nil {
		return deliveries.Stats{}
	}
	return c.cfg.Log.Attempts.Stats(hookID, c.cfg.Now().UnixMilli())
}

// hookView is the hook page.
type hookView struct {
	Row    hookRow
	Config string
	Chart  chart
	Rows   rowsView
	HasLog bool
}

func (c *Console) hookPage(ctx *fasthttp.RequestCtx, h *hooks.Hook) {
	shown, _ := json.MarshalIndent(h.View(c.cfg.Now(), false), "", "  ")
	st := c.stats(h.ID)
	v := hookView{
		Row: c.hookRow(h, breakerStates()), Config: string(shown), Chart: newChart(st),
		Rows: c.deliveryRows(ctx, h), HasLog: c.cfg.Log != nil,
	}
	c.render(ctx, "hook", page{Title: v.Row.Name, Nav: "hooks", Data: v})
}

// rowsView is the live deliveries table of a hook, with its filters.
type rowsView struct {
	HookID        string
	Status, Since string
	Attempts      []deliveries.Attempt
	Older         string // the offset of the next page, "" at the end
	Offset        string
}

// sinceWindows are the console's time filters.
var sinceWindows = map[string]time.Duration{"15m": 15 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour}

// consoleOutcomes maps the status filter to outcomes, as the deliveries API does.
var consoleOutcomes = map[string]string{
	"delivered": deliveries.OutcomeDelivered, "failed": deliveries.OutcomeFailed, "dead": deliveries.OutcomeDeadLettered,
}

func (c *Console) deliveryRows(ctx *fasthttp.RequestCtx, h *hooks.Hook) rowsView {
	args := ctx.QueryArgs()
	v := rowsView{HookID: h.ID, Status: string(args.Peek("status")), Since: string(args.Peek("since")), Offset: string(args.Peek("offset"))}
	if c.cfg.Log == nil {
		return v
	}
	q := deliveries.Query{Size: 50}
	if o, ok := consoleOutcomes[v.Status]; ok {
		q.Outcomes = []string{o}
	}
	if d, ok := sinceWindows[v.Since]; ok {
		q.SinceMs = c.cfg.Now().Add(-d).UnixMilli()
	}
	q.Before, _ = strconv.ParseUint(v.Offset, 10, 64)
	pg := c.cfg.Log.Attempts.Attempts(h.ID, q)
	v.Attempts = pg.Data
	if pg.Next != 0 {
		v.Older = strconv.FormatUint(pg.Next, 10)
	}
	return v
}

// editView is the create/edit page.
type editView struct {
	ID, Name, Source, Event, Handler, Config string
	Enabled, LogRequestBody                  bool
	Handlers                                 []string
}

// sampleConfig is a new webhook hook's config.
const sampleConfig = "{\n  \"url\": \"https://example.com/hooks\"\n}"

func (c *Console) editPage(ctx *fasthttp.RequestCtx, h *hooks.Hook) {
	v := editView{Handler: "webhook", Config: sampleConfig, Enabled: true,
		Handlers: []string{"webhook", "webhook-custom", "log", "lambda"}}
	title := "New hook"
	if h != nil {
		shown := h.View(c.cfg.Now(), false)
		cfg, _ := json.MarshalIndent(shown.Config, "", "  ")
		v = editView{ID: h.ID, Source: h.Source, Event: h.EventName(), Handler: h.Handler, Config: string(cfg),
			Enabled: h.IsEnabled(), LogRequestBody: h.LogRequestBody, Handlers: v.Handlers}
		if h.Name != nil {
			v.Name = *h.Name
		}
		title = "Edit " + hookName(h)
	}
	c.render(ctx, "edit", page{Title: title, Nav: "hooks", Data: v})
}

// deliveryView is one delivery's page.
type deliveryView struct {
	WebhookID, HookID, HookName string
	Last                        deliveries.Attempt
	Attempts                    []deliveries.Attempt
}

func (c *Console) deliveryPage(ctx *fasthttp.RequestCtx, webhookID string) {
	var attempts []deliveries.Attempt
	ok := false
	if c.cfg.Log != nil {
		attempts, ok = c.cfg.Log.Attempts.Delivery(webhookID)
	}
	if !ok {
		c.notFound(ctx, "No attempts of delivery "+webhookID+" are held: the log keeps the latest attempts of each hook only.")
		return
	}
	last := attempts[len(attempts)-1]
	v := deliveryView{WebhookID: webhookID, HookID: last.HookID, HookName: last.HookID, Last: last, Attempts: attempts}
	if h, ok := c.cfg.Hooks().Get(last.HookID); ok {
		v.HookName = hookName(h)
	}
	c.render(ctx, "delivery", page{Title: "Delivery " + webhookID, Nav: "hooks", Data: v})
}

// deadLettersView is the dead letters page.
type deadLettersView struct {
	Hook, Reason string
	// Redrive says what the re-drive button sends again: the filters shown.
	Redrive string
	Hooks   []hookOption
	Letters []deadLetterRow
	HasLog  bool
}

type hookOption struct{ ID, Name string }

type deadLetterRow struct {
	deliveries.DeadLetter
	HookName string
}

func (c *Console) deadLettersPage(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	v := deadLettersView{Hook: string(args.Peek("hook")), Reason: string(args.Peek("reason")), HasLog: c.cfg.Log != nil}
	snap := c.cfg.Hooks()
	names := map[string]string{}
	for _, h := range snap.Hooks {
		names[h.ID] = hookName(h)
		v.Hooks = append(v.Hooks, hookOption{ID: h.ID, Name: hookName(h)})
	}
	v.Redrive = redriveLabel(names[v.Hook], v.Reason)
	if c.cfg.Log != nil {
		pg := c.cfg.Log.DeadLetters.List(deliveries.DeadLetterQuery{HookID: v.Hook, Reason: v.Reason, Size: 200})
		for _, dl := range pg.Data {
			name := names[dl.HookID]
			if name == "" {
				name = dl.HookID + " (deleted)"
			}
			v.Letters = append(v.Letters, deadLetterRow{DeadLetter: dl, HookName: name})
		}
	}
	c.render(ctx, "deadletters", page{Title: "Dead letters", Nav: "dead", Data: v})
}

// redriveLabel is the re-drive button's text for the filters shown: the hook's name ("" for
// every hook) and the reason ("" for every reason).
func redriveLabel(hookName, reason string) string {
	label := "Re-drive all"
	if reason != "" {
		label += " " + reason
	}
	if hookName != "" {
		label += " of " + hookName
	}
	return label
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago":      ago,
	"clock":    func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000 UTC") },
	"ms":       func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " ms" },
	"outcome":  outcomeLabel,
	"nonempty": func(s string) bool { return strings.TrimSpace(s) != "" },
	"list":     func(s ...string) []string { return s },
	"short":    shortError,
}

// hookPrefix is how delivery errors start; the page already says which hook.
var hookPrefix = regexp.MustCompile(`^deliver hook [0-9a-f-]{36}: `)

// shortError is an attempt's error without the hook prefix.
func shortError(s string) string { return hookPrefix.ReplaceAllString(s, "") }

// ago says how long before now ms was, coarsely.
func ago(ms int64) string {
	d := time.Since(time.UnixMilli(ms))
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h ago"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02")
}

// outcomeLabel is an attempt outcome as the console says it.
func outcomeLabel(o string) string {
	switch o {
	case deliveries.OutcomeDelivered:
		return "delivered"
	case deliveries.OutcomeFailed:
		return "failed, will retry"
	case deliveries.OutcomeDeadLettered:
		return "dead-lettered"
	}
	return o
}
