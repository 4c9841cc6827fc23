package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/rctl-dev/rctl/rpc"
)

// rctlPort is the port every rctl server listens on where hosts have
// addresses of their own (rctl's default).
const rctlPort = 50051

// rctlSystem runs `rctl serve` processes with one timing profile.
type rctlSystem struct {
	bin      string
	timing   string // lan or wan
	logLevel string // --log-level of the servers
}

func (*rctlSystem) Name() string     { return "rctl" }
func (s *rctlSystem) Timing() string { return "--timing " + s.timing }

func (s *rctlSystem) Start(nw Network, hosts []Host, dir string, opt StartOptions) (Cluster, error) {
	c := &rctlCluster{nw: nw, dir: dir, ctl: rpc.NewPoolWithDialer(nw.ControlDial)}
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
			"--peers", strings.Join(peers, ","), "--timing", s.timing, "--log-level", s.logLevel, "--insecure"}
		if h.Cloud != "" {
			args = append(args, "--cloud", h.Cloud, "--region", h.Cloud+"-1")
		}
		if opt.PinLeader {
			args = append(args, "--leader-placement", "off")
		}
		c.procs = append(c.procs, &Proc{Name: "rctl-" + h.Name, Host: h, Bin: s.bin, Args: args,
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
	nw    Network
	dir   string
	addrs []string
	procs []*Proc
	ctl   *rpc.Pool // over the control network
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

// Leader returns the running server that says it leads.
func (c *rctlCluster) Leader(ctx context.Context) (int, error) { return c.view().leader(ctx) }

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
func (c *rctlCluster) CaughtUp(ctx context.Context) (bool, error) { return c.view().caughtUp(ctx) }

func (c *rctlCluster) Writer(i int) (Writer, error) {
	return &rctlWriter{addr: c.addrs[i], pool: rpc.NewPoolWithDialer(c.nw.ClientDial)}, nil
}

func (c *rctlCluster) Stop() {
	killAll(c.procs)
	c.ctl.Close()
	_ = os.RemoveAll(c.dir)
}

// rctlWriter adds tasks through one server over one connection.
type rctlWriter struct {
	addr string
	pool *rpc.Pool
}

// taskSeq makes task ids unique within the benchmark process.
var taskSeq atomic.Int64

func (w *rctlWriter) Write(ctx context.Context) error {
	args := rpc.TaskAddArgs{ID: fmt.Sprintf("pb-%d", taskSeq.Add(1)), Type: "sleep"}
	return w.pool.Call(ctx, w.addr, rpc.MethodTaskAdd, &args, nil)
}

func (w *rctlWriter) Close() { w.pool.Close() }
