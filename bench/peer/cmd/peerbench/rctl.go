package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// rctlPort is the port every rctl server listens on where hosts have
// addresses of their own (rctl's default).
const rctlPort = 50051

// rctlSystem runs `rctl serve` processes of one build with one timing
// profile.
type rctlSystem struct {
	name     string // rctl, or rctl-base for the build of --rctl-base-bin
	bin      string
	timing   string  // lan or wan
	logLevel string  // --log-level of the servers
	pki      *pkiSet // nil: plaintext (--insecure); else mutual TLS and an ACL token
}

func (s *rctlSystem) Name() string { return s.name }
func (s *rctlSystem) Timing() string {
	if s.pki != nil {
		return "--timing " + s.timing + " --tls-ca CA --tls-cert CRT --tls-key KEY"
	}
	return "--timing " + s.timing
}

// cred is what the benchmark's clients present, dialling with dial: the
// operator certificate and the management token with TLS, nothing
// without.
func (s *rctlSystem) cred(dial rpc.DialFunc, token bool) rpc.Credentials {
	c := rpc.Credentials{Dial: dial}
	if s.pki != nil {
		c.TLS = s.pki.opTLS
		if token {
			c.Token = s.pki.secret
		}
	}
	return c
}

func (s *rctlSystem) Start(nw Network, hosts []Host, dir string, opt StartOptions) (Cluster, error) {
	c := &rctlCluster{sys: s, nw: nw, dir: dir, ctl: rpc.NewPoolWith(s.cred(nw.ControlDial, true))}
	if s.pki != nil {
		c.boot = rpc.NewPoolWith(s.cred(nw.ControlDial, false))
	}
	var peers []string
	for _, h := range hosts {
		addr, err := nw.Addr(h, rctlPort)
		if err != nil {
			return nil, err
		}
		c.addrs = append(c.addrs, addr)
		peers = append(peers, h.Name+"="+addr)
	}
	for i, h := range hosts {
		data := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		args := []string{"serve", "--node-id", h.Name, "--data-dir", data, "--bind", c.addrs[i],
			"--peers", strings.Join(peers, ","), "--timing", s.timing, "--log-level", s.logLevel}
		if s.pki != nil {
			f, err := s.pki.server(h)
			if err != nil {
				return nil, err
			}
			args = append(args, "--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key)
		} else {
			args = append(args, "--insecure")
		}
		if h.Cloud != "" {
			args = append(args, "--cloud", h.Cloud, "--region", h.Cloud+"-1")
		}
		if opt.PinLeader {
			args = append(args, "--leader-placement", "off")
		}
		// Named after the system: rctl-base's kept logs are not rctl's.
		c.procs = append(c.procs, &Proc{Name: s.name + "-" + h.Name, Host: h, Bin: s.bin, Args: args,
			LogPath: filepath.Join(dir, h.Name+".log"), Net: nw})
	}
	if err := startAll(c.procs); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// rctlCluster talks to its servers over the msgpack RPC (docs/rpc.md).
type rctlCluster struct {
	sys   *rctlSystem
	nw    Network
	dir   string
	addrs []string
	procs []*Proc
	ctl   *rpc.Pool // over the control network; with TLS it sends the token
	// With TLS: boot calls ACL.Bootstrap (the operator certificate, no
	// token yet); bootstrapped is set once one call succeeded.
	boot         *rpc.Pool
	bootstrapped atomic.Bool
}

// bootstrap creates the management token (with the fixed secret, so a
// second call is harmless) through the first running server that manages
// it: the call is forwarded to the leader, so it succeeds once there is
// one. Without TLS it does nothing.
func (c *rctlCluster) bootstrap(ctx context.Context) error {
	if c.boot == nil || c.bootstrapped.Load() {
		return nil
	}
	err := errNoLeader
	for i, p := range c.procs {
		if !p.Running() {
			continue
		}
		if err = c.bootCall(ctx, c.boot, c.addrs[i]); err == nil {
			return nil
		}
	}
	return fmt.Errorf("ACL bootstrap: %w", err)
}

// bootCall calls ACL.Bootstrap at addr through pool.
func (c *rctlCluster) bootCall(ctx context.Context, pool *rpc.Pool, addr string) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var reply rpc.ACLTokenReply
	if err := pool.Call(cctx, addr, rpc.MethodACLBootstrap, &rpc.ACLBootstrapArgs{Secret: c.sys.pki.secret}, &reply); err != nil {
		return err
	}
	c.bootstrapped.Store(true)
	return nil
}

func (c *rctlCluster) Procs() []*Proc { return c.procs }

func (c *rctlCluster) status(ctx context.Context, i int) (*rpc.StatusReply, error) {
	var st rpc.StatusReply
	if err := c.ctl.Call(ctx, c.addrs[i], rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (c *rctlCluster) view() statusView[*rpc.StatusReply] {
	return statusView[*rpc.StatusReply]{procs: c.procs, status: c.status,
		leads: func(st *rpc.StatusReply) (bool, uint64) { return st.State == "leader", st.Term },
		behind: func(st, lst *rpc.StatusReply) error {
			if st.LeaderID != lst.ID || st.AppliedIndex < lst.CommitIndex {
				return fmt.Errorf("leader %q, applied %d of %d", st.LeaderID, st.AppliedIndex, lst.CommitIndex)
			}
			return nil
		}}
}

// Leader returns the running server that says it leads. With TLS the
// first call that finds a leader bootstraps ACLs (as does CaughtUp):
// Status.Get needs a token.
func (c *rctlCluster) Leader(ctx context.Context) (int, error) {
	if err := c.bootstrap(ctx); err != nil {
		return -1, err
	}
	return c.view().leader(ctx)
}

func (c *rctlCluster) TransferLeader(ctx context.Context, i int) error {
	l, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	if l == i {
		return nil
	}
	args := rpc.TransferArgs{ID: c.procs[i].Host.Name}
	if err := c.ctl.Call(ctx, c.addrs[l], rpc.MethodRaftTransfer, &args, nil); err != nil {
		return fmt.Errorf("rctl: transfer leadership to %s: %w", args.ID, err)
	}
	return waitFor(ctx, func() bool { l, err := c.Leader(ctx); return err == nil && l == i })
}

// CaughtUp: every server knows the same leader and has applied the
// leader's commit index.
func (c *rctlCluster) CaughtUp(ctx context.Context) (bool, error) {
	if err := c.bootstrap(ctx); err != nil {
		return false, err
	}
	return c.view().caughtUp(ctx)
}

func (c *rctlCluster) Writer(i int) (Writer, error) {
	return &rctlWriter{c: c, addr: c.addrs[i], pool: rpc.NewPoolWith(c.sys.cred(c.nw.ClientDial, true))}, nil
}

func (c *rctlCluster) Stop() {
	killAll(c.procs)
	c.ctl.Close()
	if c.boot != nil {
		c.boot.Close()
	}
	_ = os.RemoveAll(c.dir)
}

// rctlWriter adds tasks through one server over one connection.
type rctlWriter struct {
	c    *rctlCluster
	addr string
	pool *rpc.Pool
	// boot: with TLS, before the cluster's ACLs are bootstrapped (only in
	// cold start), the writer bootstraps them itself over a connection of
	// its own, as an operator's first `rctl acl bootstrap` would.
	bootMu sync.Mutex
	boot   *rpc.Pool
}

// taskSeq makes task ids unique within the benchmark process.
var taskSeq atomic.Int64

func (w *rctlWriter) Write(ctx context.Context) error {
	if w.c.boot != nil && !w.c.bootstrapped.Load() {
		w.bootMu.Lock()
		if w.boot == nil {
			w.boot = rpc.NewPoolWith(w.c.sys.cred(w.c.nw.ClientDial, false))
		}
		boot := w.boot
		w.bootMu.Unlock()
		if err := w.c.bootCall(ctx, boot, w.addr); err != nil {
			return fmt.Errorf("ACL bootstrap: %w", err)
		}
	}
	args := rpc.TaskAddArgs{ID: fmt.Sprintf("pb-%d", taskSeq.Add(1)), Type: "sleep"}
	return w.pool.Call(ctx, w.addr, rpc.MethodTaskAdd, &args, nil)
}

func (w *rctlWriter) Close() {
	w.pool.Close()
	w.bootMu.Lock()
	defer w.bootMu.Unlock()
	if w.boot != nil {
		w.boot.Close()
	}
}
