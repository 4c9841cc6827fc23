package cluster

import (
	"context"
	"errors"
	"net"
	"sync"

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
var testNet = &network{isolated: map[string]bool{}, conns: map[*netConn]struct{}{}}

type network struct {
	mu       sync.Mutex
	isolated map[string]bool // by server address
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

func (c *netConn) Close() error {
	testNet.mu.Lock()
	delete(testNet.conns, c)
	testNet.mu.Unlock()
	return c.Conn.Close()
}

// isolate cuts server i off from the other servers (v) or heals it.
func (c *testCluster) isolate(i int, v bool) { testNet.isolate(c.cfgs[i].Bind, v) }
