package scripting

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/eventhooks/eventhooks/internal/jsonx"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// The helper functions templates and lambdas share. In templates they are called as
// `{{ hmac_sha256 "key" .body }}` or in a pipeline `{{ .body | sha256 }}`; lambdas see
// the ones that JavaScript lacks on the global object `helpers` (helpers.sha256(s)).
// They never panic: a value of the wrong type is converted with toString.

// nowFunc is the clock of now and unix_now; tests replace it.
var nowFunc = time.Now

// funcMap returns the template FuncMap: the documented helpers plus the internal
// functions the compiler inserts (their names start with "_eh_"). The helpers that can
// build a string much longer than their arguments (replace, join) fail with
// ErrOutputTooLarge rather than build one over limit bytes.
func funcMap(limit int) template.FuncMap {
	return template.FuncMap{
		"json":        jsonHelper,
		"b64enc":      b64enc,
		"b64dec":      b64dec,
		"hmac_sha256": hmacSHA256,
		"sha256":      sha256Hex,
		"upper":       func(v any) string { return strings.ToUpper(toString(v)) },
		"lower":       func(v any) string { return strings.ToLower(toString(v)) },
		"trim":        func(v any) string { return strings.TrimSpace(toString(v)) },
		"default":     defaultHelper,
		"now":         nowRFC3339,
		"unix_now":    unixNow,
		"join":        func(sep, list any) (string, error) { return joinHelper(sep, list, limit) },
		"replace":     func(old, new, s any) (string, error) { return replaceHelper(old, new, s, limit) },
		"quote":       func(v any) string { return string(jsonx.AppendString(nil, toString(v), false)) },
		// urlpath escapes a URL path segment: "a b/c" → "a%20b%2Fc" (urlquery gives
		// "a+b%2Fc", and in a path "+" is a plus).
		"urlpath": func(v any) string { return url.PathEscape(toString(v)) },

		fnField: fieldHelper,
		fnPrint: printHelper,
		fnTick:  func() string { return "" },
	}
}

// Names of the functions the template compiler inserts.
const (
	fnField = "_eh_field"
	fnPrint = "_eh_print"
	fnTick  = "_eh_tick"
)

// builtinNames are text/template's own functions and keywords: a bare `{{ name }}` with
// one of these names (or a helper's) is Go syntax, not a Kong field.
var builtinNames = map[string]bool{
	"and": true, "call": true, "html": true, "index": true, "slice": true, "js": true,
	"len": true, "not": true, "or": true, "print": true, "printf": true, "println": true,
	"urlquery": true, "eq": true, "ge": true, "gt": true, "le": true, "lt": true, "ne": true,
	"end": true, "else": true, "break": true, "continue": true, "nil": true, "true": true,
	"false": true, "define": true, "block": true, "template": true, "range": true, "if": true,
	"with": true,
}

// jsonHelper marshals v as compact JSON without HTML escaping.
func jsonHelper(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("cannot encode JSON: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func b64enc(v any) string { return base64.StdEncoding.EncodeToString([]byte(toString(v))) }

// b64dec decodes standard base64, padded or not.
func b64dec(v any) (string, error) {
	s := strings.TrimSpace(toString(v))
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("cannot decode base64: %w", err)
	}
	return string(b), nil
}

// hmacSHA256 returns the lowercase hex HMAC-SHA256 of msg keyed with key.
func hmacSHA256(key, msg any) string {
	m := hmac.New(sha256.New, []byte(toString(key)))
	m.Write([]byte(toString(msg)))
	return hex.EncodeToString(m.Sum(nil))
}

func sha256Hex(v any) string {
	sum := sha256.Sum256([]byte(toString(v)))
	return hex.EncodeToString(sum[:])
}

func nowRFC3339() string { return nowFunc().UTC().Format(time.RFC3339) }

func unixNow() int64 { return nowFunc().Unix() }

// defaultHelper returns value unless it is empty (nil, "", false, 0, an empty list or
// object), then def: `{{ .name | default "anonymous" }}`.
func defaultHelper(def, value any) any {
	if isEmpty(value) {
		return def
	}
	return value
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case int64:
		return x == 0
	case int:
		return x == 0
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array, reflect.String:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return rv.IsZero()
}

// joinHelper joins the elements of a list with sep: `{{ join ", " .tags }}`. A value that
// is not a list is returned as a string.
func joinHelper(sep, list any, limit int) (string, error) {
	s := toString(sep)
	var parts []string
	switch x := list.(type) {
	case []any:
		parts = make([]string, len(x))
		for i, e := range x {
			parts[i] = toString(e)
		}
	case []string:
		parts = x
	default:
		rv := reflect.ValueOf(list)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return toString(list), nil
		}
		parts = make([]string, rv.Len())
		for i := range parts {
			parts[i] = toString(rv.Index(i).Interface())
		}
	}
	n := len(s) * max(len(parts)-1, 0)
	for _, p := range parts {
		n += len(p)
	}
	if n > limit {
		return "", fmt.Errorf("join would build %d bytes: %w", n, ErrOutputTooLarge)
	}
	return strings.Join(parts, s), nil
}

// replaceHelper replaces every old with new in s: `{{ replace "-" "_" .name }}`.
func replaceHelper(old, new, s any, limit int) (string, error) {
	str, o, n := toString(s), toString(old), toString(new)
	count := len(str) + 1
	if o != "" {
		count = strings.Count(str, o)
	}
	if size := len(str) + count*(len(n)-len(o)); size > limit {
		return "", fmt.Errorf("replace would build %d bytes: %w", size, ErrOutputTooLarge)
	}
	return strings.ReplaceAll(str, o, n), nil
}

// fieldHelper walks keys through nested objects and returns nil when a key is missing or
// a value on the way is not an object: the compiler turns every field access
// (.entity.username, $e.name) into a call so that missing and null values render empty
// instead of failing.
func fieldHelper(v any, keys ...string) any {
	for _, k := range keys {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		default:
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
				return nil
			}
			e := rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()))
			if !e.IsValid() {
				return nil
			}
			v = e.Interface()
		}
	}
	return v
}

// printHelper ends every printing action: nil (a missing field, a JSON null) prints as ""
// rather than "<no value>", a float prints as JavaScript prints it (1234567.5, not
// 1.2345675e+06), and an object or a list prints as JSON.
func printHelper(v any) any {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return formatFloat(x)
	case map[string]any, []any:
		return toString(x)
	}
	return v
}

// toString renders a value the way a template prints it: strings as is, integers without
// a fraction, nil as "", lists and objects as JSON.
func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return formatFloat(x)
	case bool:
		return strconv.FormatBool(x)
	case []byte:
		return string(x)
	case map[string]any, []any:
		s, err := jsonHelper(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return s
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// formatFloat formats f as JavaScript's Number.prototype.toString (and JSON.stringify) do:
// shortest round-trip digits, plain notation for 1e-6 <= |f| < 1e21, otherwise
// exponent notation without leading zeros ("1e+21", "1.5e-7"). NaN and infinities
// print as JavaScript prints them.
func formatFloat(f float64) string {
	return string(appendFloat(nil, f))
}

func appendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	if f == 0 {
		return append(dst, '0') // also -0, as JavaScript prints it
	}
	if abs := math.Abs(f); abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
	// Go writes "1.5e-07"; JavaScript writes "1.5e-7".
	e := bytes.LastIndexByte(dst[start:], 'e') + start
	if e+3 < len(dst) && dst[e+2] == '0' {
		dst = append(dst[:e+2], dst[e+3:]...)
	}
	return dst
}
