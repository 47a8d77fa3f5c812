package scripting

import (
	"time"

	"github.com/dlclark/regexp2/v2"
)

// RegexpMatchTimeout bounds one match of a regular expression that goja runs on regexp2
// (patterns Go's regexp cannot run: backreferences, lookaround…), which goja's
// Interrupt cannot stop. regexp2 checks it against a clock that ticks every 100 ms, so a
// catastrophic pattern (/(a+)+\1b/ on "aaaa…") is abandoned 100 to 200 ms after this
// bound. goja reads the abandoned match as "no match", but by then a call with a timeout
// of up to RegexpMatchTimeout + 100 ms (DefaultTimeout and below: the default lambda
// timeout) has passed its deadline, and it fails with ErrTimeout (see Runtime.Call). A
// call with a longer timeout reads the abandoned match as no match.
//
// It is set once, in this package's init, as regexp2.DefaultMatchTimeout, which every
// regexp2 pattern compiled after it uses (goja compiles patterns when a script is
// compiled or runs new RegExp, always after init).
const RegexpMatchTimeout = DefaultTimeout

func init() {
	// Before any goroutine can compile a pattern: regexp2 reads it without
	// synchronisation.
	regexp2.DefaultMatchTimeout = RegexpMatchTimeout
}

// lateness reports whether a call armed at armedAt with timeout ran past its deadline.
func lateness(armedAt time.Time, timeout time.Duration) bool {
	return time.Since(armedAt) >= timeout
}
