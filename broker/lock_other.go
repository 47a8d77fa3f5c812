//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package broker

// lockDir does not lock on this platform: nothing stops two brokers from
// sharing a data dir.
func lockDir(string) (func(), error) { return func() {}, nil }
