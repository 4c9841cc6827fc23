package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// mux accepts connections on the server's one port and routes each by its
// first byte (docs/rpc.md, "Connections"):
//
//   - 0x16, a TLS ClientHello: the handshake must present a client
//     certificate from the cluster's CA; inside the TLS stream the first
//     byte selects Raft, RPC or a snapshot stream, and only server
//     certificates may open Raft streams;
//   - rpc.ConnRaft, rpc.ConnRPC, rpc.ConnSnapshot in plaintext: served only
//     by a server started with --insecure, refused otherwise.
//
// Connections are capped per remote IP and in total; every step before a
// connection is routed has a deadline.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	log       *slog.Logger
	self      string
	tls       *pki.Store // nil: plaintext (--insecure)
	limits    ConnLimits

	raftCh chan net.Conn
	warm   *warmPool    // ready raft connections (warm.go)
	dial   rpc.DialFunc // Config.Dial: every connection to another server
	rpc    func(net.Conn, pki.Identity)
	snap   func(net.Conn, pki.Identity)
	// raftClosed runs when an accepted raft connection ends (succession.go).
	raftClosed func()

	connMu  sync.Mutex
	total   int
	perIP   map[string]int
	open    map[*countedConn]struct{} // every admitted connection; closed by close
	lastLog atomic.Int64              // unix nanos of the last "refused" log line

	stopping  atomic.Bool // the listener was closed on purpose
	closeOnce sync.Once
	closed    chan struct{}
}

// tlsHandshakeByte is the first byte of every TLS connection (a handshake
// record carrying the ClientHello).
const tlsHandshakeByte = 0x16

// routeTimeout bounds everything before a connection is routed: the first
// byte, the TLS handshake, and the first byte inside TLS.
const routeTimeout = 10 * time.Second

// ConnLimits cap the connections a server holds open.
type ConnLimits struct {
	// PerIP caps connections from one remote address (default 512).
	PerIP int
	// Total caps all connections (default: the open-file limit less
	// fdReserve).
	Total int
}

// fdReserve is the part of the open-file limit kept for what is not an
// inbound connection: raft's log and stable store, snapshots, outgoing
// connections to other servers.
const fdReserve = 1024

// DefaultConnLimits are generous for fleets (agents keep one or two
// connections each: 10,000 agents hold 10,000 on the leader) and tight
// enough that one host cannot exhaust the server's file descriptors: the
// total follows the process's open-file limit (Go raises the soft limit to
// the hard one at start; the package's unit sets LimitNOFILE=65536).
func DefaultConnLimits() ConnLimits {
	return ConnLimits{PerIP: 512, Total: max(openFileLimit()-fdReserve, 256)}
}

func newMux(ln net.Listener, advertise net.Addr, log *slog.Logger) *mux {
	return &mux{ln: ln, advertise: advertise, log: log, raftCh: make(chan net.Conn, 16), closed: make(chan struct{}),
		limits: DefaultConnLimits(), perIP: map[string]int{}, open: map[*countedConn]struct{}{}}
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
		cc, ok := m.admit(c)
		if !ok {
			c.Close()
			continue
		}
		go m.route(cc)
	}
}

// admit counts c against the limits; the returned connection gives its
// slot back when closed.
func (m *mux) admit(c net.Conn) (net.Conn, bool) {
	ip := remoteIP(c)
	cc := &countedConn{Conn: c}
	// Complete before it is shared: close() may close it as soon as it is
	// in m.open.
	cc.release = func() {
		m.connMu.Lock()
		defer m.connMu.Unlock()
		m.total--
		if m.perIP[ip]--; m.perIP[ip] <= 0 {
			delete(m.perIP, ip)
		}
		delete(m.open, cc)
	}
	m.connMu.Lock()
	over := ""
	switch {
	case m.isClosed(): // close() takes connMu after closing m.closed
		m.connMu.Unlock()
		return nil, false
	case m.limits.Total > 0 && m.total >= m.limits.Total:
		over = fmt.Sprintf("the server holds %d connections (the limit)", m.total)
	case m.limits.PerIP > 0 && m.perIP[ip] >= m.limits.PerIP:
		over = fmt.Sprintf("%s holds %d connections (the per-IP limit)", ip, m.perIP[ip])
	default:
		m.total++
		m.perIP[ip]++
		m.open[cc] = struct{}{}
	}
	m.connMu.Unlock()
	if over != "" {
		m.logRefused("connection refused: "+over, "remote", ip)
		return nil, false
	}
	return cc, true
}

// openConns is how many connections ip holds open.
func (m *mux) openConns(ip string) int {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	return m.perIP[ip]
}

// logRefused logs at most one refusal line per second: a flood must not
// become a log flood.
func (m *mux) logRefused(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := m.lastLog.Load()
	if now-last < int64(time.Second) || !m.lastLog.CompareAndSwap(last, now) {
		return
	}
	m.log.Warn(msg, append(args, "event", "conn_refused")...)
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// countedConn releases its connection slot once, on Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (m *mux) route(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(routeTimeout))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return
	}
	switch {
	case b[0] == tlsHandshakeByte && m.tls != nil:
		m.routeTLS(c, b[0])
	case m.tls != nil:
		m.logRefused("plaintext connection refused: this server requires mutual TLS", "remote", c.RemoteAddr().String(), "byte", b[0])
		if b[0] == rpc.ConnRPC {
			rpc.RefusePlaintext(c, m.self)
			return
		}
		c.Close()
	case b[0] == tlsHandshakeByte:
		m.logRefused("TLS connection refused: this server runs --insecure (plaintext)", "remote", c.RemoteAddr().String())
		c.Close()
	default:
		_ = c.SetDeadline(time.Time{})
		m.dispatch(b[0], c, pki.Identity{})
	}
}

// routeTLS completes the TLS handshake on c (whose first byte, already
// read, was first), reads the connection type inside TLS and dispatches.
func (m *mux) routeTLS(c net.Conn, first byte) {
	tc := tls.Server(&replayConn{Conn: c, first: []byte{first}}, m.tls.ServerConfig())
	if err := tc.Handshake(); err != nil {
		m.logRefused("TLS handshake refused", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	id, err := pki.PeerIdentity(tc.ConnectionState())
	if err != nil {
		m.logRefused("TLS peer refused", "remote", c.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	// An authenticated peer may hold a handshaken connection ready before
	// it says what it is for (warm.go).
	_ = tc.SetDeadline(time.Now().Add(warmIdle))
	var b [1]byte
	if _, err := io.ReadFull(tc, b[:]); err != nil {
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	m.dispatch(b[0], tc, id)
}

func (m *mux) dispatch(kind byte, c net.Conn, id pki.Identity) {
	switch kind {
	case rpc.ConnRaft:
		if m.tls != nil && id.Role != pki.RoleServer {
			m.log.Warn("raft stream refused: only server certificates speak raft", "event", "conn_refused",
				"remote", c.RemoteAddr().String(), "peer", id.String())
			c.Close()
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
		m.rpc(c, id)
	case rpc.ConnSnapshot:
		m.snap(c, id)
	default:
		m.logRefused("connection with unknown protocol byte closed", "remote", c.RemoteAddr().String(), "byte", kind)
		c.Close()
	}
}

// replayConn returns first before reading on from Conn: the mux has read
// the TLS record's first byte to choose the protocol.
type replayConn struct {
	net.Conn
	first []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// stopListening closes the listener; connections already routed live on
// until close.
func (m *mux) stopListening() {
	m.stopping.Store(true)
	m.ln.Close()
}

func (m *mux) isClosed() bool {
	select {
	case <-m.closed:
		return true
	default:
		return false
	}
}

// close stops the listener and ends every admitted connection, raft's
// included: raft's transport does not close the connections it accepted,
// and their readers would otherwise outlive the server until the peer
// hangs up.
func (m *mux) close() {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.ln.Close()
		m.connMu.Lock()
		open := make([]*countedConn, 0, len(m.open))
		for c := range m.open {
			open = append(open, c)
		}
		m.connMu.Unlock()
		for _, c := range open {
			c.Close()
		}
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
	var c net.Conn
	if l.warm != nil {
		c = l.warm.take(string(addr))
	}
	if c == nil {
		var err error
		if c, err = (*mux)(l).dialTLS(string(addr), timeout); err != nil {
			return nil, err
		}
	}
	if _, err := c.Write([]byte{rpc.ConnRaft}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dialTLS opens a connection to a peer's port, with a completed TLS
// handshake when the cluster uses TLS; nothing is written yet.
func (m *mux) dialTLS(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := m.dial(ctx, addr)
	if err != nil || m.tls == nil {
		return c, err
	}
	return rpc.ClientHandshake(ctx, c, m.tls)
}

// tcpAddr is a net.Addr for an advertise host:port that may be a name.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }
