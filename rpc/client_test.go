package rpc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers every RPC request with a small result, on real TCP.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil || b[0] != ConnRPC {
					return
				}
				br := bufio.NewReader(c)
				for {
					var req Request
					if err := readFrame(br, &req); err != nil {
						return
					}
					if err := writeFrame(c, handle, &Response{Seq: req.Seq, Result: map[string]any{"ok": true}}); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestClientDoesNotWaitOnABlackHoledAddress(t *testing.T) {
	good := echoServer(t)
	const hole = "192.0.2.1:50051" // never dialled: the fake dialer holds it
	var mu sync.Mutex
	holePending := false
	released := make(chan struct{})
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		if addr == hole {
			// A cut-off server: the SYN goes unanswered until the dial
			// gives up.
			mu.Lock()
			holePending = true
			mu.Unlock()
			<-ctx.Done()
			close(released)
			return nil, ctx.Err()
		}
		return DialTCP(ctx, addr)
	}
	c := NewClientWith([]string{hole, good}, Credentials{Dial: dial})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := c.CallAddr(ctx, MethodStatus, &StatusArgs{}, nil)
	if err != nil || addr != good {
		t.Fatalf("call: %v via %s, want success via %s", err, addr, good)
	}
	mu.Lock()
	pending := holePending
	mu.Unlock()
	if !pending {
		t.Fatal("the black-holed address was never tried first")
	}
	// The call succeeded while the dial to the black hole was still
	// pending: it did not wait for it. The losing dial is abandoned.
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("the abandoned dial was never cancelled")
	}
	if c.Current() != good {
		t.Fatalf("the client prefers %s after the call, want %s", c.Current(), good)
	}
}

func TestClientTriesNextAddressAtOnceWhenRefused(t *testing.T) {
	good := echoServer(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := ln.Addr().String()
	ln.Close() // nothing listens: connect is refused
	c := NewClientWith([]string{refused, good}, Credentials{})
	defer c.Close()
	if addr, err := c.CallAddr(context.Background(), MethodStatus, &StatusArgs{}, nil); err != nil || addr != good {
		t.Fatalf("call: %v via %s", err, addr)
	}
}

func TestClientAllDownIsUnavailable(t *testing.T) {
	var addrs []string
	for range 3 {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	c := NewClientWith(addrs, Credentials{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.CallAddr(ctx, MethodStatus, &StatusArgs{}, nil)
	var e *Error
	if !errors.As(err, &e) || (e.Code != CodeUnavailable && e.Code != CodeDeadlineExceeded) {
		t.Fatalf("all servers down: %v", err)
	}
}
