// Package defaults fills in configuration values left unset. It owns nothing else.
package defaults

// Positive sets *v to d when *v is not positive: zero means "use the default", and a
// negative count, size or duration means nothing else either.
func Positive[T ~int | ~int32 | ~int64](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
