package cluster

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Warm raft connections. With TLS a raft dial costs one more round trip
// than in plaintext (TCP, then the TLS 1.3 handshake, then the request).
// Across clouds that is ≈243 ms, paid exactly when it hurts: a successor
// asking the other cloud for its vote, and a new leader opening its
// replication streams. Measured on the emulated 3 AWS + 2 GCP network
// (e2e/fault TestLeaderKillFailover, 10 rounds): kill -9 of the leader to a
// new leader took p50 547 ms in plaintext and 822 ms with TLS.
//
// So every server keeps warmPerPeer handshaken connections ready per raft
// peer and the raft stream layer takes them instead of dialling. A ready
// connection has completed TLS but not yet sent its protocol byte: the
// peer's mux waits warmIdle for that byte from an authenticated peer
// (mux.go). Ready connections are replaced after warmRefresh, long before
// the peer gives up on them, and a connection whose peer has closed it
// (the peer restarted) is never handed out (connAlive).
//
// In plaintext (--insecure) a dial costs a TCP handshake, one round trip,
// and the same holds: the first failover after a cluster started (its
// successor had never sent the far cloud a raft request) took ≈1.62 s in
// bench/peer's silent scenario where later ones took ≈1.40 s. Plaintext
// ready connections are replaced sooner (warmRefreshPlain).
//
// Why more than one: a new leader opens several connections to each
// follower at once — the vote, then heartbeats and the pipelined
// replication stream each take their own — and with one ready connection
// the second paid a cold dial (two cross-cloud round trips) before the
// leader's first entry could reach the other cloud: a silent leader's
// successor took ≈0.9 s from TimeoutNow to an established leadership
// where a vote and a commit take ≈0.5 s (bench/RESULTS-peer.md).

const (
	// warmIdle is how long a server waits for the protocol byte on a TLS
	// connection whose peer presented a valid certificate.
	warmIdle = 60 * time.Second
	// warmRefresh is the age at which a ready connection is replaced. It
	// stays in the pool, and is handed out, until its replacement is ready
	// or it is warmOverlap older: replacing a peer's connections all at
	// once left it none for the round trips a dial takes (one in twenty
	// silent-leader rounds in bench/peer paid a cold dial for the vote).
	warmRefresh = 30 * time.Second
	// warmOverlap is how long past warmRefresh a ready connection may
	// still be handed out while its replacement is dialled.
	warmOverlap = 2 * warmTick
	// warmRefreshPlain is that age in plaintext (--insecure): the peer's
	// mux then waits only routeTimeout for the protocol byte of a
	// connection it cannot authenticate, so ready connections are
	// replaced well before that.
	warmRefreshPlain = routeTimeout / 2
	// warmTick is how often the peer list is checked for missing ready
	// connections.
	warmTick = time.Second
	// warmRetry is the first, shorter wait before the next check while
	// some peer has no ready connection (at a start, after a peer's
	// restart); it doubles up to warmTick.
	warmRetry = 50 * time.Millisecond
	// warmPerPeer is how many ready connections are kept per peer: the
	// vote, the heartbeats and the replication pipeline.
	warmPerPeer = 3
)

// warmPool holds up to warmPerPeer ready connections per peer address.
type warmPool struct {
	dial func(addr string, timeout time.Duration) (net.Conn, error)
	age  time.Duration // replace ready connections at this age (warmRefresh, warmRefreshPlain)

	mu      sync.Mutex
	ready   map[string][]warmConn
	dialing map[string]int // dials in flight per address
	closed  bool
}

type warmConn struct {
	c  net.Conn
	at time.Time
}

func newWarmPool(dial func(addr string, timeout time.Duration) (net.Conn, error), age time.Duration) *warmPool {
	return &warmPool{dial: dial, age: age, ready: map[string][]warmConn{}, dialing: map[string]int{}}
}

// take hands out a ready connection to addr, or nil: aged or dead ones
// are closed, never handed out. Replacements are dialled on the next tick.
func (p *warmPool) take(addr string) net.Conn {
	for {
		p.mu.Lock()
		ws := p.ready[addr]
		if len(ws) == 0 {
			p.mu.Unlock()
			return nil
		}
		w := ws[len(ws)-1] // the newest
		p.ready[addr] = ws[:len(ws)-1]
		p.mu.Unlock()
		if !p.usable(w) || !connAlive(w.c) {
			w.c.Close()
			continue
		}
		return w.c
	}
}

// has reports whether a ready connection to addr is held that take
// would hand out (by age; whether the peer still holds it is checked only
// when it is taken).
func (p *warmPool) has(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.ready[addr], p.usable)
}

// usable reports whether a ready connection is young enough to hand out:
// past its age, it stays only for warmOverlap while its replacement is
// dialled.
func (p *warmPool) usable(w warmConn) bool { return time.Since(w.at) <= p.age+warmOverlap }

// hasAll reports whether a ready connection is held to every address.
func (p *warmPool) hasAll(addrs []string) bool {
	for _, a := range addrs {
		if !p.has(a) {
			return false
		}
	}
	return true
}

// refresh dials, in the background, replacements for the ready
// connections due for replacement and up to warmPerPeer for every address
// listed, closes those past their overlap, and drops those of addresses
// no longer listed. A connection due for replacement stays until a new one
// takes its place (fill).
func (p *warmPool) refresh(addrs []string, timeout time.Duration) {
	want := map[string]bool{}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, a := range addrs {
		want[a] = true
		kept, young := p.ready[a][:0], 0
		for _, w := range p.ready[a] {
			switch age := time.Since(w.at); {
			case age < p.age:
				young++
				kept = append(kept, w)
			case age < p.age+warmOverlap:
				kept = append(kept, w)
			default:
				w.c.Close()
			}
		}
		p.ready[a] = kept
		for n := young + p.dialing[a]; n < warmPerPeer; n++ {
			p.dialing[a]++
			go p.fill(a, timeout)
		}
	}
	for a, ws := range p.ready {
		if !want[a] {
			for _, w := range ws {
				w.c.Close()
			}
			delete(p.ready, a)
		}
	}
}

func (p *warmPool) fill(addr string, timeout time.Duration) {
	c, err := p.dial(addr, timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dialing[addr]--; p.dialing[addr] <= 0 {
		delete(p.dialing, addr)
	}
	if err != nil {
		return // the peer is down; try again next tick
	}
	if p.closed {
		c.Close()
		return
	}
	ws := p.ready[addr]
	if len(ws) >= warmPerPeer {
		// It replaces the oldest (ready connections are in the order
		// dialled).
		ws[0].c.Close()
		ws = ws[1:]
	}
	p.ready[addr] = append(ws, warmConn{c: c, at: time.Now()})
}

func (p *warmPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for a, ws := range p.ready {
		for _, w := range ws {
			w.c.Close()
		}
		delete(p.ready, a)
	}
}

// warmPeers keeps ready raft connections (TLS) and one open RPC
// connection to every current raft peer until shutdown. The RPC
// connections carry succession's quorum probe and forwarded calls: cold,
// the probe of a silent leader's voters paid TCP and TLS handshakes
// before its Status.Get, three cross-cloud round trips instead of one
// (≈760 ms instead of ≈250; bench/RESULTS-peer.md). A server closes an
// RPC connection idle for rpc.IdleTimeout; the next tick dials again.
//
// The first pass runs at once, and while some peer has no ready raft
// connection the next pass comes sooner: warmRetry, doubling up to
// warmTick. A server restarted a moment before its leader died, and
// first in the order of successors, had no ready connection to the other
// cloud yet, and its vote requests there paid the TCP and TLS handshakes
// (an election of ≈0.75 s instead of ≈0.25 s, TestLeaderKillFailover);
// succession now passes such a server's turn on (coldVotes), which helps
// only while it is rare.
func (s *Server) warmPeers() {
	t := time.NewTimer(0)
	defer t.Stop()
	retry := warmRetry
	for {
		select {
		case <-s.shutdownCh:
			return
		case <-t.C:
		}
		next := warmTick
		f := s.raft.GetConfiguration()
		if f.Error() != nil {
			t.Reset(next)
			continue
		}
		var addrs []string
		for _, srv := range f.Configuration().Servers {
			if srv.ID != raft.ServerID(s.cfg.NodeID) {
				addrs = append(addrs, string(srv.Address))
			}
		}
		if s.mux.warm != nil {
			if s.mux.warm.hasAll(addrs) {
				retry = warmRetry
			} else {
				next, retry = retry, min(2*retry, warmTick)
			}
			s.mux.warm.refresh(addrs, s.timing.HeartbeatTimeout)
		}
		s.warmRPC(addrs)
		t.Reset(next)
	}
}

// warmRPC dials, in the background, an RPC connection to each address the
// server's pool has none to (one dial at a time per address).
func (s *Server) warmRPC(addrs []string) {
	pool := s.rpc.Pool()
	for _, a := range addrs {
		if pool.Live(a) {
			continue
		}
		s.rpcWarmMu.Lock()
		busy := s.rpcWarmDialing[a]
		if !busy {
			if s.rpcWarmDialing == nil {
				s.rpcWarmDialing = map[string]bool{}
			}
			s.rpcWarmDialing[a] = true
		}
		s.rpcWarmMu.Unlock()
		if busy {
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(s.ctx, s.timing.HeartbeatTimeout)
			defer cancel()
			_, _ = pool.Get(ctx, a) // a peer that is down: next tick
			s.rpcWarmMu.Lock()
			delete(s.rpcWarmDialing, a)
			s.rpcWarmMu.Unlock()
		}()
	}
}
