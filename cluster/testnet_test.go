package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// testNet cuts servers off from each other in-process, for the cluster
// tests. Every test server dials other servers through testNet.dialer
// (Config.Dial): raft streams, forwarded calls, probes and warm
// connections. While a server is isolated, every dial from it or to it
// fails, and the connections between it and other servers that were open
// are closed (both ends: the dialler's end is tracked here, and closing it
// ends the accepting side's too). Clients' RPC connections (rpc.NewClient
// in the tests) do not go through it and keep working, as for a client on
// the isolated server's side of a partition. The fault harness (e2e/fault)
// partitions real processes instead.
//
// A server can also be made slow (setSlow): every write on a connection it
// dialled or that was dialled to it waits that long first, a one-way
// latency for requests (the answers, written by the accepting side, are
// not delayed).
var testNet = &network{isolated: map[string]bool{}, slow: map[string]time.Duration{}, conns: map[*netConn]struct{}{}}

type network struct {
	mu       sync.Mutex
	isolated map[string]bool          // by server address
	slow     map[string]time.Duration // by server address
	conns    map[*netConn]struct{}
}

// netConn is a connection between two servers, by their addresses.
type netConn struct {
	net.Conn
	from, to string
}

var errIsolated = errors.New("network isolated by test")

// dialer is the Config.Dial of the server at from.
func (n *network) dialer(from string) rpc.DialFunc {
	return func(ctx context.Context, to string) (net.Conn, error) {
		if n.cut(from, to) {
			return nil, errIsolated
		}
		c, err := rpc.DialTCP(ctx, to)
		if err != nil {
			return nil, err
		}
		nc := &netConn{Conn: c, from: from, to: to}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.isolated[from] || n.isolated[to] { // isolated while dialling
			c.Close()
			return nil, errIsolated
		}
		n.conns[nc] = struct{}{}
		return nc, nil
	}
}

func (n *network) cut(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.isolated[from] || n.isolated[to]
}

// isolate cuts the server at addr off (v) or heals it.
func (n *network) isolate(addr string, v bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !v {
		delete(n.isolated, addr)
		return
	}
	n.isolated[addr] = true
	for c := range n.conns {
		if c.from == addr || c.to == addr {
			c.Conn.Close()
			delete(n.conns, c)
		}
	}
}

// setSlow delays every write on the connections dialled by or to the
// server at addr by d (0: none).
func (n *network) setSlow(addr string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d == 0 {
		delete(n.slow, addr)
	} else {
		n.slow[addr] = d
	}
}

func (n *network) delay(from, to string) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return max(n.slow[from], n.slow[to])
}

func (c *netConn) Write(p []byte) (int, error) {
	if d := testNet.delay(c.from, c.to); d > 0 {
		time.Sleep(d) // the emulated latency, not a wait for a condition
	}
	return c.Conn.Write(p)
}

func (c *netConn) Close() error {
	testNet.mu.Lock()
	delete(testNet.conns, c)
	testNet.mu.Unlock()
	return c.Conn.Close()
}

// isolate cuts server i off from the other servers (v) or heals it.
func (c *testCluster) isolate(i int, v bool) { testNet.isolate(c.cfgs[i].Bind, v) }

// slow delays the requests server i sends and receives by d (0: none).
func (c *testCluster) slow(i int, d time.Duration) {
	addr := c.cfgs[i].Bind
	testNet.setSlow(addr, d)
	c.t.Cleanup(func() { testNet.setSlow(addr, 0) })
}
