package cluster

import (
	"net"
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
// So every server keeps one handshaken connection ready per raft peer and
// the raft stream layer takes it instead of dialling. A ready connection
// has completed TLS but not yet sent its protocol byte: the peer's mux
// waits warmIdle for that byte from an authenticated peer (mux.go). Ready
// connections are replaced after warmRefresh, long before the peer gives up
// on them, and a connection whose peer has closed it (the peer restarted)
// is never handed out (connAlive).

const (
	// warmIdle is how long a server waits for the protocol byte on a TLS
	// connection whose peer presented a valid certificate.
	warmIdle = 60 * time.Second
	// warmRefresh is the age at which a ready connection is replaced.
	warmRefresh = 30 * time.Second
	// warmTick is how often the peer list is checked for missing ready
	// connections.
	warmTick = time.Second
)

// warmPool holds at most one ready connection per peer address.
type warmPool struct {
	dial func(addr string, timeout time.Duration) (net.Conn, error)

	mu      sync.Mutex
	ready   map[string]warmConn
	dialing map[string]bool
	closed  bool
}

type warmConn struct {
	c  net.Conn
	at time.Time
}

func newWarmPool(dial func(addr string, timeout time.Duration) (net.Conn, error)) *warmPool {
	return &warmPool{dial: dial, ready: map[string]warmConn{}, dialing: map[string]bool{}}
}

// take hands out the ready connection to addr, or nil: a missing, aged or
// dead one is not handed out. A replacement is dialled on the next tick.
func (p *warmPool) take(addr string) net.Conn {
	p.mu.Lock()
	w, ok := p.ready[addr]
	delete(p.ready, addr)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	if time.Since(w.at) > warmRefresh+warmTick || !connAlive(w.c) {
		w.c.Close()
		return nil
	}
	return w.c
}

// refresh dials, in the background, a ready connection for every address
// that has none or whose connection is due for replacement, and drops
// those of addresses no longer listed.
func (p *warmPool) refresh(addrs []string, timeout time.Duration) {
	want := map[string]bool{}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, a := range addrs {
		want[a] = true
		w, ok := p.ready[a]
		if (ok && time.Since(w.at) < warmRefresh) || p.dialing[a] {
			continue
		}
		p.dialing[a] = true
		go p.fill(a, timeout)
	}
	for a, w := range p.ready {
		if !want[a] {
			w.c.Close()
			delete(p.ready, a)
		}
	}
}

func (p *warmPool) fill(addr string, timeout time.Duration) {
	c, err := p.dial(addr, timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.dialing, addr)
	if err != nil {
		return // the peer is down; try again next tick
	}
	if p.closed {
		c.Close()
		return
	}
	if old, ok := p.ready[addr]; ok {
		old.c.Close()
	}
	p.ready[addr] = warmConn{c: c, at: time.Now()}
}

func (p *warmPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for a, w := range p.ready {
		w.c.Close()
		delete(p.ready, a)
	}
}

// warmPeers keeps the pool filled for the current raft peers until
// shutdown.
func (s *Server) warmPeers() {
	t := time.NewTicker(warmTick)
	defer t.Stop()
	for {
		select {
		case <-s.shutdownCh:
			return
		case <-t.C:
		}
		f := s.raft.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		var addrs []string
		for _, srv := range f.Configuration().Servers {
			if srv.ID != raft.ServerID(s.cfg.NodeID) {
				addrs = append(addrs, string(srv.Address))
			}
		}
		s.mux.warm.refresh(addrs, s.timing.HeartbeatTimeout)
	}
}
