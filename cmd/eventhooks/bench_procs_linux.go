package main

import (
	"os"
	"syscall"
)

// procsSupported: the separate-process bench reads /proc/<pid> for each process's CPU
// and memory.
const procsSupported = true

// childSysProcAttr puts a bench child in a process group of its own (signalled as a
// whole, not by the terminal's Ctrl-C, which the bench handles) and has the kernel kill
// it if the bench dies, however it dies.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends SIGTERM, or SIGKILL when kill, to p's process group.
func signalGroup(p *os.Process, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-p.Pid, sig)
}
