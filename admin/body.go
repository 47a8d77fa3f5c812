package admin

import (
	"encoding/json"
	"mime"
	"regexp"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// formTypes gives the JSON type of the hook fields a flat Kong form can set that are not
// strings; every other form value is a string.
var formTypes = map[string]string{
	"snooze": "int", "timeout_ms": "int", "created_at": "int", "updated_at": "int", "auto_disable_after": "int",
	"retry.max_attempts": "int", "retry.initial_backoff_ms": "int", "retry.max_backoff_ms": "int",
	"rate_limit.per_second": "number", "rate_limit.burst": "int", "max_in_flight": "int",
	"on_change": "bool", "enabled": "bool", "log_request_body": "bool", "config.ssl_verify": "bool",
	"config.headers_format": "bool", "config.payload_format": "bool", "config.body_format": "bool",
	"config.pipeline": "bool", "config.pipeline_max_conns": "int", "config.pipeline_max_pending": "int",
	"tags": "array", "config.functions": "array",
}

// sourceFormTypes are the non-string fields of a source registration's flat form:
// `fields=invoice` is a list of one, as `tags=a` is for a hook.
var sourceFormTypes = map[string]string{"fields": "array", "unique": "array"}

// arraySuffix matches Kong's array notations in form keys: "tags[]", "config.functions[1]".
var arraySuffix = regexp.MustCompile(`\[\d*\]$`)

// readBody returns the request body as JSON. JSON bodies pass through; flat Kong forms
// (application/x-www-form-urlencoded) are converted, the fields named in types typed as
// given there (formTypes for hooks, sourceFormTypes for sources; nil: all strings).
func readBody(ctx *fasthttp.RequestCtx, types map[string]string) ([]byte, error) {
	ct := string(ctx.Request.Header.ContentType())
	if ct == "" {
		return ctx.PostBody(), nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, &apiError{status: fasthttp.StatusUnsupportedMediaType, Message: "invalid Content-Type '" + ct + "': " + err.Error()}
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return ctx.PostBody(), nil
	case mt == "application/x-www-form-urlencoded":
		if looksLikeJSONObject(ctx.PostBody()) {
			// curl -d '{…}' sends JSON under this type; no Kong form starts with "{".
			return ctx.PostBody(), nil
		}
		return formToJSON(ctx.PostArgs(), types)
	}
	return nil, &apiError{status: fasthttp.StatusUnsupportedMediaType,
		Message: "unsupported Content-Type '" + mt + "': use application/json or application/x-www-form-urlencoded"}
}

// looksLikeJSONObject reports whether b starts, after white space, with "{".
func looksLikeJSONObject(b []byte) bool {
	s := strings.TrimLeft(string(b), " \t\r\n")
	return strings.HasPrefix(s, "{")
}

// formToJSON turns "config.url=…&tags[]=a" into {"config":{"url":"…"},"tags":["a"]}.
// An empty value is null, as in Kong.
func formToJSON(args *fasthttp.Args, types map[string]string) ([]byte, error) {
	root := map[string]any{}
	for k, v := range args.All() {
		key := string(k)
		isArray := arraySuffix.MatchString(key)
		key = arraySuffix.ReplaceAllString(key, "")
		kind := types[key]
		setPath(root, strings.Split(key, "."), formValue(string(v), kind), isArray || kind == "array")
	}
	return json.Marshal(root)
}

// formValue converts a form value to the JSON type kind; a value that does not convert
// stays a string so that validation names the field.
func formValue(v, kind string) any {
	if v == "" {
		return nil
	}
	switch kind {
	case "int":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	case "number":
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	case "bool":
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}

func setPath(m map[string]any, path []string, v any, appendTo bool) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	last := path[len(path)-1]
	if !appendTo {
		m[last] = v
		return
	}
	list, _ := m[last].([]any)
	if v != nil {
		list = append(list, v)
	}
	if list == nil {
		list = []any{}
	}
	m[last] = list
}
