//go:build !linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// procsSupported: the separate-process bench needs Linux's /proc/<pid>.
const procsSupported = false

func childSysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup kills p (there is nothing gentler everywhere).
func signalGroup(p *os.Process, _ bool) { _ = p.Kill() }

// startPinned refuses: pinning is Linux's sched_setaffinity.
func startPinned(*exec.Cmd, int, <-chan struct{}) error {
	return errors.New("pinning a process to a CPU: Linux only")
}
