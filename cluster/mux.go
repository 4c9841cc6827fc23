package cluster

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/rpc"
)

// mux accepts connections on the server's one port and routes each by its
// first byte: rpc.ConnRaft to the raft transport, rpc.ConnRPC and
// rpc.ConnSnapshot to the RPC server. Unknown bytes are logged and closed.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	log       *slog.Logger

	raftCh chan net.Conn
	faults *netFaults // nil outside tests
	rpc    func(net.Conn)
	snap   func(net.Conn)
	// raftClosed runs when an accepted raft connection ends (succession.go).
	raftClosed func()

	stopping  atomic.Bool // the listener was closed on purpose
	closeOnce sync.Once
	closed    chan struct{}
}

func newMux(ln net.Listener, advertise net.Addr, log *slog.Logger) *mux {
	return &mux{ln: ln, advertise: advertise, log: log, raftCh: make(chan net.Conn, 16), closed: make(chan struct{})}
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if m.stopping.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			m.log.Error("accept failed; listener stops", "err", err)
			return
		}
		go m.route(c)
	}
}

func (m *mux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch b[0] {
	case rpc.ConnRaft:
		if _, err := m.faults.track(c); err != nil {
			return
		}
		if m.raftClosed != nil {
			c = &watchedConn{Conn: c, closed: m.raftClosed}
		}
		select {
		case m.raftCh <- c:
		case <-m.closed:
			c.Close()
		}
	case rpc.ConnRPC:
		m.rpc(c)
	case rpc.ConnSnapshot:
		m.snap(c)
	default:
		m.log.Warn("connection with unknown protocol byte closed", "remote", c.RemoteAddr().String(), "byte", b[0])
		c.Close()
	}
}

// stopListening closes the listener; connections already routed live on
// until close.
func (m *mux) stopListening() {
	m.stopping.Store(true)
	m.ln.Close()
}

func (m *mux) close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.ln.Close()
	})
}

// raftLayer is the raft.StreamLayer over the mux.
type raftLayer mux

var _ raft.StreamLayer = (*raftLayer)(nil)

func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.raftCh:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *raftLayer) Close() error { (*mux)(l).close(); return nil }

func (l *raftLayer) Addr() net.Addr { return l.advertise }

func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := l.faults.dialRaft(string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{rpc.ConnRaft}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// tcpAddr is a net.Addr for an advertise host:port that may be a name.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }
