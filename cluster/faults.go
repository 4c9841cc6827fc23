package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// netFaults cuts a server off from the other servers in-process, for the
// cluster tests: while isolated, every raft connection (dialled or
// accepted) and every server-to-server RPC dial fails, and connections
// open at the moment of isolation are closed. Clients' RPC connections to
// the isolated server keep working, as for a client on its side of a
// partition. The fault harness (e2e/) partitions real processes instead.
type netFaults struct {
	isolated atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

var errIsolated = errors.New("network isolated by test")

func newNetFaults() *netFaults { return &netFaults{conns: map[net.Conn]struct{}{}} }

func (f *netFaults) setIsolated(v bool) {
	f.isolated.Store(v)
	if !v {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = map[net.Conn]struct{}{}
}

// track registers c so isolation can close it; it refuses c when isolated.
func (f *netFaults) track(c net.Conn) (net.Conn, error) {
	if f == nil {
		return c, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isolated.Load() {
		c.Close()
		return nil, errIsolated
	}
	f.conns[c] = struct{}{}
	return c, nil
}

// dial is an rpc.DialFunc honouring the fault switch.
func (f *netFaults) dial(ctx context.Context, addr string) (net.Conn, error) {
	if f != nil && f.isolated.Load() {
		return nil, errIsolated
	}
	c, err := rpc.DialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return f.track(c)
}

func (f *netFaults) dialRaft(addr string, timeout time.Duration) (net.Conn, error) {
	if f != nil && f.isolated.Load() {
		return nil, errIsolated
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return f.track(c)
}
