package scripting

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors callers branch on; test with errors.Is.
var (
	// ErrOutputTooLarge is returned when a rendered template or a lambda's result would
	// exceed its MaxOutputBytes. Rendering stops as soon as the cap is crossed.
	ErrOutputTooLarge = errors.New("output exceeds the size limit")
	// ErrInputTooLarge is returned by Runtime.Call when the event data exceeds
	// RuntimeConfig.MaxInputBytes.
	ErrInputTooLarge = errors.New("input exceeds the size limit")
	// ErrTimeout is returned when a template render or a lambda call ran out of time.
	ErrTimeout = errors.New("script timed out")
	// ErrThrown is wrapped by the LambdaError of a function that threw (including
	// "Maximum call stack size exceeded" and the RangeErrors of capped built-ins), and
	// by the error of a template whose execution failed (a helper's error).
	ErrThrown = errors.New("script threw an exception")
)

// TemplateError reports a template that cannot be compiled, e.g.
// `template payload.text: line 2: unexpected "}" in operand`.
type TemplateError struct {
	// Name is the template's name as given to CompileTemplate ("payload.text").
	Name string
	// Line is the 1-based line of the error in the source as given; 0 when unknown.
	Line int
	// Message says what is wrong.
	Message string
}

// Error implements error.
func (e *TemplateError) Error() string {
	if e.Line > 0 {
		return "template " + e.Name + ": line " + strconv.Itoa(e.Line) + ": " + e.Message
	}
	return "template " + e.Name + ": " + e.Message
}

// LambdaError reports a failure of one function of a lambda: a syntax error or a
// non-function at compile time; an exception, a timeout or a stack overflow at run time.
// It formats as `functions[2]: SyntaxError: Unexpected token ) (line 1:14)`.
type LambdaError struct {
	// Index is the function's index in the functions array (0-based, like Kong's JSON
	// array as sent).
	Index int
	// Line and Column locate the error in that function's source (1-based); 0 when
	// unknown.
	Line, Column int
	// Message is the JavaScript message ("TypeError: Cannot read property 'x' of
	// undefined") or ours ("does not evaluate to a function").
	Message string
	// Err is the sentinel this error wraps: ErrThrown, ErrTimeout, or nil for compile
	// errors.
	Err error
}

// Error implements error.
func (e *LambdaError) Error() string {
	s := "functions[" + strconv.Itoa(e.Index) + "]: " + e.Message
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d:%d)", e.Line, e.Column)
	}
	return s
}

// Unwrap returns the sentinel (ErrThrown, ErrTimeout) or nil.
func (e *LambdaError) Unwrap() error { return e.Err }
