package cluster

import (
	"errors"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a real TCP connection on loopback.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestConnAlive(t *testing.T) {
	c, s := tcpPair(t)
	if !connAlive(c) {
		t.Fatal("an idle open connection is not alive")
	}
	// Anything unsolicited from the server (a close_notify alert) means
	// it gave up on the connection; peeking must not consume it.
	_, _ = s.Write([]byte{0x15})
	succeedsWithin(t, 2*time.Second, func() error {
		if connAlive(c) {
			return errors.New("still alive with data waiting")
		}
		return nil
	})
	var b [1]byte
	if n, err := c.Read(b[:]); n != 1 || err != nil || b[0] != 0x15 {
		t.Fatalf("peeking consumed the byte: %d %v %x", n, err, b)
	}
	c2, s2 := tcpPair(t)
	s2.Close()
	succeedsWithin(t, 2*time.Second, func() error {
		if connAlive(c2) {
			return errors.New("still alive after the peer closed")
		}
		return nil
	})
}

// waitReady waits until the pool holds a ready connection to addr.
func waitReady(t *testing.T, p *warmPool, addr string) {
	t.Helper()
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, ok := p.ready[addr]; !ok {
			return errors.New("no ready connection to " + addr + " yet")
		}
		return nil
	})
}

func TestWarmPoolHandsOutOnlyLiveConnections(t *testing.T) {
	var servers []net.Conn // dialled one at a time: refresh runs once per address
	p := newWarmPool(func(addr string, timeout time.Duration) (net.Conn, error) {
		c, s := tcpPair(t)
		servers = append(servers, s)
		return c, nil
	})
	defer p.close()
	if c := p.take("a"); c != nil {
		t.Fatal("take before any refresh returned a connection")
	}
	p.refresh([]string{"a"}, time.Second)
	waitReady(t, p, "a")
	c := p.take("a")
	if c == nil {
		t.Fatal("a ready live connection was not handed out")
	}
	if p.take("a") != nil {
		t.Fatal("one ready connection was handed out twice")
	}
	// A ready connection whose peer went away is not handed out.
	p.refresh([]string{"a"}, time.Second)
	waitReady(t, p, "a")
	servers[len(servers)-1].Close()
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		w := p.ready["a"]
		p.mu.Unlock()
		if connAlive(w.c) {
			return errors.New("close not seen yet")
		}
		return nil
	})
	if p.take("a") != nil {
		t.Fatal("a dead ready connection was handed out")
	}
	// Addresses no longer listed lose their ready connection.
	p.refresh([]string{"b"}, time.Second)
	waitReady(t, p, "b")
	p.refresh([]string{}, time.Second)
	p.mu.Lock()
	n := len(p.ready)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d ready connections for unlisted peers", n)
	}
}

func TestTLSClusterKeepsRaftConnectionsWarm(t *testing.T) {
	c, _ := newTLSCluster(t, 3)
	c.waitLeader(10 * time.Second)
	succeedsWithin(t, 5*time.Second, func() error {
		for i, s := range c.servers {
			s.mux.warm.mu.Lock()
			n := len(s.mux.warm.ready)
			s.mux.warm.mu.Unlock()
			if n != 2 {
				return errors.New(c.cfgs[i].NodeID + " does not hold a ready connection to both peers")
			}
		}
		return nil
	})
}
