//go:build !linux

package rpc

import (
	"net"
	"time"
)

// setUserTimeout is a no-op where TCP_USER_TIMEOUT is not available: a
// client there waits for its context's deadline on a server that went
// silent.
func setUserTimeout(net.Conn, time.Duration) error { return nil }
