package scripting

import (
	"testing"

	"github.com/valyala/fastjson"
)

func TestValidate(t *testing.T) {
	for _, s := range []string{`NaN`, `nan`, `inf`, `01`, `"\x"`, `1e400`, `.5`, `1.`, `+1`, "\"\t\"", `1`, `{"a":[1,2.5e-3,"\u00e9"]}`, `-0`} {
		t.Logf("%-10q %v", s, fastjson.Validate(s))
	}
}
