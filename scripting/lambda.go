package scripting

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// Lambda is a compiled lambda handler: its functions, compiled once to goja programs. It
// is immutable and safe to share between Runtimes (each Runtime evaluates the programs
// into its own function values, once).
type Lambda struct {
	fns []lambdaFunc
}

type lambdaFunc struct {
	name string // "functions[2]", the program's file name in stack traces
	prog *goja.Program
	pos  posMap
}

// compileEvalTimeout bounds evaluating a function's source at compile time (its top
// level, not a call).
const compileEvalTimeout = time.Second

// CompileLambda compiles the functions of a lambda hook (config.functions). Each source
// must evaluate to a function, which is called as fn(data, event, source) with the
// previous function's result as data. Three shapes are accepted:
//
//	(data, event, source) => ({ ...data, seen: true })          // an expression
//	function (d) { return d }                                   // also an expression
//	const k = "x"; return (d) => ({ ...d, k })                  // a body returning one, as Kong's Lua does
//
// (a body whose last statement is an expression yielding the function works too). Every
// source runs in strict mode, and a body runs in its own function scope, so its
// declarations never become globals. The sources are evaluated once here, in a throwaway
// Runtime, to check that they yield functions.
//
// Errors are *LambdaError values naming the index and position:
// `functions[2]: SyntaxError: Unexpected token ) (line 1:14)`,
// `functions[1]: does not evaluate to a function`.
func CompileLambda(functions []string) (*Lambda, error) {
	if len(functions) == 0 {
		return nil, errors.New("cannot compile lambda: no functions")
	}
	l := &Lambda{fns: make([]lambdaFunc, len(functions))}
	for i, src := range functions {
		f, err := compileFunction(i, src)
		if err != nil {
			return nil, err
		}
		l.fns[i] = f
	}
	rt := checkers.Get().(*Runtime)
	defer checkers.Put(rt)
	rt.arm(compileEvalTimeout)
	_, err := rt.evaluate(l)
	rt.disarm()
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Len returns the number of functions.
func (l *Lambda) Len() int { return len(l.fns) }

// checkers are the Runtimes CompileLambda evaluates sources in; console output from a
// function's top level is dropped there.
var checkers = sync.Pool{New: func() any {
	return NewRuntime(RuntimeConfig{Logger: slog.New(slog.DiscardHandler)})
}}

// Wrappers around a function's source. The expression wrapper keeps the source on its
// own, so declarations and statements cannot appear at the top level; the body wrapper
// runs the source as a function body.
const (
	exprPrefix = "("
	exprSuffix = "\n)"
	bodyPrefix = "(function () {"
	bodySuffix = "\n})()"
	returnWord = "return "
)

var parserOpts = []parser.Option{parser.WithDisableSourceMaps}

func compileFunction(i int, src string) (lambdaFunc, error) {
	name := fmt.Sprintf("functions[%d]", i)
	if strings.TrimSpace(src) == "" {
		return lambdaFunc{}, &LambdaError{Index: i, Message: "empty source"}
	}
	// 1. An expression: (d) => d, function (d) { … }.
	exprPos := posMap{src: src, compiled: exprPrefix + src + exprSuffix, prefix: len(exprPrefix), insertAt: -1}
	prog, exprErr := compileChecked(name, exprPos.compiled, exprPos, isExpression)
	if exprErr == nil {
		return lambdaFunc{name: name, prog: prog, pos: exprPos}, nil
	}
	// 2. A function body that returns the function (Kong's Lua shape), or whose last
	// statement is an expression yielding it.
	bodyPos := posMap{src: src, prefix: len(bodyPrefix), insertAt: -1}
	wrapped := bodyPrefix + src + bodySuffix
	prg, bodyErr := parseChecked(name, wrapped, bodyPos, isBody(len(bodyPrefix)-1, len(bodyPrefix)+len(src)+1))
	if bodyErr == nil {
		if at := lastExpressionOffset(prg); at >= 0 {
			wrapped = wrapped[:at] + returnWord + wrapped[at:]
			bodyPos.insertAt, bodyPos.insertLen = at, len(returnWord)
		}
		bodyPos.compiled = wrapped
		prog, bodyErr = compileChecked(name, wrapped, bodyPos, nil)
		if bodyErr == nil {
			return lambdaFunc{name: name, prog: prog, pos: bodyPos}, nil
		}
	}
	// Report the error of the reading that got further into the source.
	ee, be := exprErr.(*LambdaError), bodyErr.(*LambdaError)
	ee.Index, be.Index = i, i
	if be.Line > ee.Line || (be.Line == ee.Line && be.Column > ee.Column) {
		return lambdaFunc{}, be
	}
	return lambdaFunc{}, ee
}

// isExpression accepts a program that is a single expression statement: what the
// expression wrapper yields unless the source escapes its parentheses.
func isExpression(p *ast.Program) bool {
	if len(p.Body) != 1 {
		return false
	}
	_, ok := p.Body[0].(*ast.ExpressionStatement)
	return ok
}

// isBody returns a check that the program is exactly the body wrapper: one call of a
// function literal whose braces are the wrapper's own, so the source is its whole body.
func isBody(left, right int) func(*ast.Program) bool {
	return func(p *ast.Program) bool {
		fl := bodyLiteral(p)
		// file.Idx is the 0-based offset plus one.
		return fl != nil && int(fl.Body.LeftBrace)-1 == left && int(fl.Body.RightBrace)-1 == right
	}
}

func bodyLiteral(p *ast.Program) *ast.FunctionLiteral {
	if len(p.Body) != 1 {
		return nil
	}
	es, ok := p.Body[0].(*ast.ExpressionStatement)
	if !ok {
		return nil
	}
	call, ok := es.Expression.(*ast.CallExpression)
	if !ok || len(call.ArgumentList) != 0 {
		return nil
	}
	fl, _ := call.Callee.(*ast.FunctionLiteral)
	if fl == nil || fl.Body == nil {
		return nil
	}
	return fl
}

// lastExpressionOffset returns the offset of the body's last statement when it is an
// expression (to be returned), or -1.
func lastExpressionOffset(p *ast.Program) int {
	fl := bodyLiteral(p)
	list := fl.Body.List
	for len(list) > 0 {
		if _, empty := list[len(list)-1].(*ast.EmptyStatement); !empty {
			break
		}
		list = list[:len(list)-1]
	}
	if len(list) == 0 {
		return -1
	}
	if es, ok := list[len(list)-1].(*ast.ExpressionStatement); ok {
		return int(es.Idx0()) - 1
	}
	return -1
}

func parseChecked(name, src string, pm posMap, shape func(*ast.Program) bool) (*ast.Program, error) {
	prg, err := parser.ParseFile(nil, name, src, 0, parserOpts...)
	if err != nil {
		var list parser.ErrorList
		if errors.As(err, &list) && len(list) > 0 {
			line, col := pm.lineCol(offsetOf(src, list[0].Position))
			return nil, &LambdaError{Line: line, Column: col, Message: "SyntaxError: " + list[0].Message}
		}
		return nil, &LambdaError{Message: "SyntaxError: " + err.Error()}
	}
	if shape != nil && !shape(prg) {
		return nil, &LambdaError{Message: "SyntaxError: unexpected token outside the function", Line: 1, Column: 1}
	}
	return prg, nil
}

func compileChecked(name, src string, pm posMap, shape func(*ast.Program) bool) (*goja.Program, error) {
	prg, err := parseChecked(name, src, pm, shape)
	if err != nil {
		return nil, err
	}
	prog, err := goja.CompileAST(prg, true)
	if err != nil {
		var se *goja.CompilerSyntaxError
		if errors.As(err, &se) {
			line, col := pm.lineCol(se.Offset)
			return nil, &LambdaError{Line: line, Column: col, Message: "SyntaxError: " + se.Message}
		}
		return nil, &LambdaError{Message: err.Error()}
	}
	return prog, nil
}

// offsetOf converts a parser position (1-based line, 1-based byte column) into an offset.
func offsetOf(src string, p file.Position) int {
	off := 0
	for line := 1; line < p.Line; line++ {
		nl := strings.IndexByte(src[off:], '\n')
		if nl < 0 {
			return len(src)
		}
		off += nl + 1
	}
	return min(off+p.Column-1, len(src))
}

// posMap maps offsets in the compiled (wrapped) source back to the user's source.
type posMap struct {
	src       string
	compiled  string
	prefix    int
	insertAt  int // offset of an inserted "return ", -1 when none
	insertLen int
}

// lineCol returns the 1-based line and column in the user's source of an offset in the
// compiled source.
func (m posMap) lineCol(off int) (int, int) {
	if m.insertAt >= 0 && off >= m.insertAt {
		off = max(off-m.insertLen, m.insertAt)
	}
	off = min(max(off-m.prefix, 0), len(m.src))
	line := 1 + strings.Count(m.src[:off], "\n")
	col := off + 1
	if nl := strings.LastIndexByte(m.src[:off], '\n'); nl >= 0 {
		col = off - nl
	}
	return line, col
}

// position locates a runtime position (line/column in the compiled source) in the
// user's source.
func (f *lambdaFunc) position(p file.Position) (int, int) {
	if p.Line == 0 {
		return 0, 0
	}
	return f.pos.lineCol(offsetOf(f.pos.compiled, p))
}
