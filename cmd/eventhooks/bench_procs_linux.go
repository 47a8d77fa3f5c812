package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
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

// startPinned starts cmd on cpu alone: the fork happens on an OS thread of the bench
// pinned to cpu for it, and the child's threads inherit its affinity. That thread stays
// locked, running nothing else, until exited is closed: the bench's goroutines never run
// on it, and the child's parent-death signal (sent when the thread that forked it ends)
// comes only if the bench dies. taskset does the same from outside, when installed.
func startPinned(cmd *exec.Cmd, cpu int, exited <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- fmt.Errorf("pin to CPU %d: sched_setaffinity: %w", cpu, err)
			return
		}
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-exited
		}
	}()
	return <-errc
}
