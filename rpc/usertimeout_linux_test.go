package rpc

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeoutOf reads TCP_USER_TIMEOUT off a connection.
func userTimeoutOf(t *testing.T, nc net.Conn) time.Duration {
	t.Helper()
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ms int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		ms, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return time.Duration(ms) * time.Millisecond
}

// TestClientConnectionsHaveAUserTimeout: a Client's connections give up
// on a server whose host leaves what was sent unacknowledged for
// ClientUserTimeout (the kernel closes them; the calls on them fail as
// unavailable and the client moves on), where a plain pool's, as the
// servers use for their own calls, keep the kernel's default (0: the
// retransmission limit, ~15 minutes). That a silent server's calls move
// on is shown on the emulated network by e2e/fault's TestLeaderIsolated.
func TestClientConnectionsHaveAUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	cl := NewClient([]string{addr})
	defer cl.Close()
	conn, _, err := cl.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := userTimeoutOf(t, conn.nc); got != ClientUserTimeout {
		t.Errorf("a Client's connection has TCP_USER_TIMEOUT %s, want %s", got, ClientUserTimeout)
	}

	pool := NewPool()
	defer pool.Close()
	pc, err := pool.Get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := userTimeoutOf(t, pc.nc); got != 0 {
		t.Errorf("a server pool's connection has TCP_USER_TIMEOUT %s, want the kernel's default", got)
	}
}
