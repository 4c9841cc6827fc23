//go:build !linux

package cli

import "syscall"

// threadID is not available here; only Linux tests read it.
func threadID() int { return 0 }

// childAttr: without a parent-death signal on this platform, children
// outlive a killed rctl dev (Linux has Pdeathsig; see dev_sys_linux.go).
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
