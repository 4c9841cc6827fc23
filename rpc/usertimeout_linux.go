package rpc

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT on a TCP connection: the kernel
// closes it when data it sent stays unacknowledged for d (tcp(7)).
func setUserTimeout(nc net.Conn, d time.Duration) error {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn() // TLS: the TCP connection under it
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil // not TCP (a test's pipe): nothing to bound
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	}); err != nil {
		return err
	}
	return serr
}
