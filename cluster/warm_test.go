package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
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
// waitReady waits until addr has warmPerPeer ready connections.
func waitReady(t *testing.T, p *warmPool, addr string) {
	t.Helper()
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.ready[addr]); n < warmPerPeer {
			return fmt.Errorf("%d of %d ready connections to %s yet", n, warmPerPeer, addr)
		}
		return nil
	})
}

func TestWarmPoolHandsOutOnlyLiveConnections(t *testing.T) {
	var mu sync.Mutex
	var servers []net.Conn // the far ends, in the order dialled
	p := newWarmPool(func(addr string, timeout time.Duration) (net.Conn, error) {
		c, s := tcpPair(t)
		mu.Lock()
		servers = append(servers, s)
		mu.Unlock()
		return c, nil
	}, warmRefresh)
	defer p.close()
	if c := p.take("a"); c != nil {
		t.Fatal("take before any refresh returned a connection")
	}
	p.refresh([]string{"a"}, time.Second)
	waitReady(t, p, "a")
	got := map[net.Conn]bool{}
	for range warmPerPeer {
		c := p.take("a")
		if c == nil || got[c] {
			t.Fatalf("ready live connection %d of %d: %v (handed out before: %v)", len(got)+1, warmPerPeer, c, got[c])
		}
		got[c] = true
	}
	if p.take("a") != nil {
		t.Fatal("more connections handed out than were ready")
	}
	// Ready connections whose peer went away are not handed out.
	p.refresh([]string{"a"}, time.Second)
	waitReady(t, p, "a")
	mu.Lock()
	for _, s := range servers {
		s.Close()
	}
	mu.Unlock()
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, w := range p.ready["a"] {
			if connAlive(w.c) {
				return errors.New("close not seen yet")
			}
		}
		return nil
	})
	if p.take("a") != nil {
		t.Fatal("a dead ready connection was handed out")
	}
	// Addresses no longer listed lose their ready connections.
	p.refresh([]string{"b"}, time.Second)
	waitReady(t, p, "b")
	p.refresh([]string{}, time.Second)
	p.mu.Lock()
	n := len(p.ready)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("ready connections for %d unlisted peers", n)
	}
}

// A peer's ready connections due for replacement stay, and are handed
// out, while their replacements are dialled: the pool never runs dry for
// the round trips a dial takes. A replacement takes the oldest one's place.
func TestWarmPoolOverlapsReplacements(t *testing.T) {
	release := make(chan struct{})
	var blocking bool
	var mu sync.Mutex
	p := newWarmPool(func(addr string, timeout time.Duration) (net.Conn, error) {
		mu.Lock()
		b := blocking
		mu.Unlock()
		if b {
			<-release
		}
		c, _ := tcpPair(t)
		return c, nil
	}, time.Minute)
	defer p.close()
	p.refresh([]string{"a"}, time.Second)
	waitReady(t, p, "a")

	// All three are due for replacement (within the overlap).
	p.mu.Lock()
	old := map[net.Conn]bool{}
	for i := range p.ready["a"] {
		p.ready["a"][i].at = time.Now().Add(-time.Minute - time.Duration(3-i)*time.Millisecond)
		old[p.ready["a"][i].c] = true
	}
	p.mu.Unlock()
	mu.Lock()
	blocking = true
	mu.Unlock()
	p.refresh([]string{"a"}, time.Second) // three replacement dials, held
	p.mu.Lock()
	kept, dialing := len(p.ready["a"]), p.dialing["a"]
	p.mu.Unlock()
	if kept != warmPerPeer || dialing != warmPerPeer {
		t.Fatalf("while replacements are dialled: %d ready (want %d kept), %d dialling (want %d)", kept, warmPerPeer, dialing, warmPerPeer)
	}
	c := p.take("a")
	if c == nil || !old[c] {
		t.Fatalf("take while replacements are dialled = %v, want a connection due for replacement", c)
	}

	// One replacement arrives: the pool is full again (two old, one new),
	// and the oldest left is the next to go.
	release <- struct{}{}
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.ready["a"]); n != warmPerPeer {
			return fmt.Errorf("%d ready, want %d", n, warmPerPeer)
		}
		return nil
	})
	release <- struct{}{}
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		newN := 0
		for _, w := range p.ready["a"] {
			if !old[w.c] {
				newN++
			}
		}
		if len(p.ready["a"]) != warmPerPeer || newN != 2 {
			return fmt.Errorf("%d ready, %d of them new; want %d, 2 new", len(p.ready["a"]), newN, warmPerPeer)
		}
		return nil
	})
	close(release) // the third
	succeedsWithin(t, 2*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.dialing["a"] != 0 {
			return fmt.Errorf("%d dials still under way", p.dialing["a"])
		}
		return nil
	})

	// Past the overlap, a connection is neither kept nor handed out.
	p.mu.Lock()
	for i := range p.ready["a"] {
		p.ready["a"][i].at = time.Now().Add(-time.Minute - warmOverlap - time.Millisecond)
	}
	p.mu.Unlock()
	if c := p.take("a"); c != nil {
		t.Fatalf("take handed out a connection past its overlap")
	}
}

func TestTLSClusterKeepsRaftConnectionsWarm(t *testing.T) {
	c, _ := newTLSCluster(t, 3)
	c.waitLeader(10 * time.Second)
	succeedsWithin(t, 5*time.Second, func() error {
		for i, s := range c.servers {
			s.mux.warm.mu.Lock()
			n, each := len(s.mux.warm.ready), 0
			for _, ws := range s.mux.warm.ready {
				each = max(each, len(ws))
			}
			s.mux.warm.mu.Unlock()
			if n != 2 || each != warmPerPeer {
				return fmt.Errorf("%s holds ready connections to %d peers (want both), up to %d each (want %d)", c.cfgs[i].NodeID, n, each, warmPerPeer)
			}
		}
		return nil
	})
}

// Every server keeps an RPC connection open to each peer (succession's
// quorum probe and forwarded calls do not pay a handshake), and dials
// again when one closes.
// In plaintext too (the first failover after a start paid a TCP
// handshake across clouds for its vote), with the shorter refresh.
func TestPlaintextClusterKeepsRaftConnectionsWarm(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader(10 * time.Second)
	succeedsWithin(t, 5*time.Second, func() error {
		for i, s := range c.servers {
			s.mux.warm.mu.Lock()
			n, each, age := len(s.mux.warm.ready), 0, s.mux.warm.age
			for _, ws := range s.mux.warm.ready {
				each = max(each, len(ws))
			}
			s.mux.warm.mu.Unlock()
			if n != 2 || each != warmPerPeer || age != warmRefreshPlain {
				return fmt.Errorf("%s holds ready connections to %d peers (want both), up to %d each (want %d), replaced at %s (want %s)",
					c.cfgs[i].NodeID, n, each, warmPerPeer, age, warmRefreshPlain)
			}
		}
		return nil
	})
}

// TestRestartedServerWarmsAtOnce: a server dials its ready connections as
// it starts, not a warmTick later (a successor restarted a moment before
// the leader died paid cold dials across clouds for its votes).
func TestRestartedServerWarmsAtOnce(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	r := (l + 1) % 3
	c.stop(r)
	c.start(r)
	started := time.Now()
	s := c.servers[r]
	succeedsWithin(t, 5*time.Second, func() error {
		s.mux.warm.mu.Lock()
		defer s.mux.warm.mu.Unlock()
		if n := len(s.mux.warm.ready); n != 2 {
			return fmt.Errorf("%s holds ready connections to %d peers, want 2", c.cfgs[r].NodeID, n)
		}
		return nil
	})
	// On loopback the dials take milliseconds; a pass that waited for
	// the first tick would take warmTick.
	if took := time.Since(started); took >= warmTick {
		t.Fatalf("ready connections %s after the restart, want them before the first tick (%s)", took, warmTick)
	}
}

func TestServersKeepRPCConnectionsToPeers(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitLeader(10 * time.Second)
	allLive := func() error {
		for i, s := range c.servers {
			for j, cfg := range c.cfgs {
				if i != j && !s.rpc.Pool().Live(cfg.Bind) {
					return fmt.Errorf("%s has no open RPC connection to %s", c.cfgs[i].NodeID, cfg.NodeID)
				}
			}
		}
		return nil
	}
	succeedsWithin(t, 5*time.Second, allLive)
	c.servers[0].rpc.Pool().Close() // every connection of s1 gone
	succeedsWithin(t, 5*time.Second, func() error {
		if c.servers[0].rpc.Pool().Live(c.cfgs[1].Bind) {
			return nil
		}
		return errors.New("s1 did not dial s2 again")
	})
}
