package scripting

import (
	"testing"
	"time"

	"github.com/dop251/goja"
)

func TestParseDiff(t *testing.T) {
	plain := goja.New()
	rt := NewRuntime(RuntimeConfig{})
	for _, s := range []string{`NaN`, `nan`, `Infinity`, `inf`, `01`, `'a'`, `[1,]`, ` 1 `, `{"a":1,}`, `"\x"`, `1e400`, `-0`, `"\ud800"`, `{"a":1,"a":2}`, `tru`, `[1 2]`, `.5`, `1.`, `+1`, `0x10`, "\"\t\""} {
		want, err1 := plain.RunString("JSON.stringify(JSON.parse(" + quoteJS(s) + "))")
		got, err2 := rt.Call(mustLambda(t, "(d) => JSON.stringify(JSON.parse("+quoteJS(s)+"))"), "h", []byte(`{}`), "e", "s", time.Second)
		w := ""
		if want != nil {
			w = want.String()
		}
		t.Logf("%-12q goja=%q err=%v | ours=%s err=%v", s, w, err1 != nil, got, err2 != nil)
	}
}

func quoteJS(s string) string { return string(appendJSONString(nil, s)) }
