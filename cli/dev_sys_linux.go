package cli

import "syscall"

// threadID is the calling OS thread's id (the spawner's, dev_proc.go).
func threadID() int { return syscall.Gettid() }

// childAttr puts a dev child in its own process group and has the kernel
// send it SIGTERM when the spawner's thread ends (dev_proc.go).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
