//go:build !linux

package main

import (
	"os"
	"syscall"
)

// procsSupported: the separate-process bench needs Linux's /proc/<pid>.
const procsSupported = false

func childSysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup kills p (there is nothing gentler everywhere).
func signalGroup(p *os.Process, _ bool) { _ = p.Kill() }
