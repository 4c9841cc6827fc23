package cluster

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether a ready (handshaken, idle) connection is still
// open at the other end, without reading from it: the socket is peeked.
// Servers send nothing unsolicited after the handshake (no session
// tickets, pki.Store.ServerConfig), so anything readable — a close_notify
// alert, the end of the stream, a reset — means the peer gave up on it or
// restarted.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true // cannot tell; the first use will
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	cerr := raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true // done, whatever the answer
	})
	return cerr == nil && alive
}
