package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// etcd's default ports, used where hosts have addresses of their own.
const (
	etcdClientPort = 2379
	etcdPeerPort   = 2380
)

// etcdValue is the value of every Put: about the size of the log entry
// an rctl Task.Add commits (a task with its id, type, timestamps and
// first history event).
var etcdValue = strings.Repeat("v", 128)

// etcdSystem runs the etcd server built from cmd/etcd with one pair of
// timeouts.
type etcdSystem struct {
	bin                  string
	heartbeatMs, electMs int
	pki                  *pkiSet // nil: plaintext; else client and peer TLS with client certificate auth
}

func (*etcdSystem) Name() string { return sysEtcd }
func (s *etcdSystem) Timing() string {
	t := fmt.Sprintf("--heartbeat-interval %d --election-timeout %d", s.heartbeatMs, s.electMs)
	if s.pki != nil {
		t += " --cert-file --key-file --trusted-ca-file --client-cert-auth --peer-cert-file --peer-key-file --peer-trusted-ca-file --peer-client-cert-auth"
	}
	return t
}

func (s *etcdSystem) Start(nw Network, hosts []Host, dir string, _ StartOptions) (Cluster, error) {
	c := &etcdCluster{nw: nw, dir: dir}
	scheme := "http://"
	if s.pki != nil {
		scheme = "https://"
		var err error
		if c.tls, err = s.pki.etcdClientTLS(); err != nil {
			return nil, err
		}
	}
	var initial []string
	for _, h := range hosts {
		ca, err := nw.Addr(h, etcdClientPort)
		if err != nil {
			return nil, err
		}
		pa, err := nw.Addr(h, etcdPeerPort)
		if err != nil {
			return nil, err
		}
		c.addrs = append(c.addrs, ca)
		initial = append(initial, h.Name+"="+scheme+pa)
	}
	for i, h := range hosts {
		peerURL := initial[i][len(h.Name)+1:]
		args := []string{"--name", h.Name, "--data-dir", filepath.Join(dir, h.Name),
			"--listen-peer-urls", peerURL, "--listen-client-urls", scheme + c.addrs[i],
			"--initial-cluster", strings.Join(initial, ","),
			"--heartbeat-interval", strconv.Itoa(s.heartbeatMs), "--election-timeout", strconv.Itoa(s.electMs),
			"--log-level", "warn"}
		if s.pki != nil {
			f, err := s.pki.server(h)
			if err != nil {
				return nil, err
			}
			args = append(args, "--cert-file", f.Cert, "--key-file", f.Key, "--trusted-ca-file", f.CA, "--client-cert-auth",
				"--peer-cert-file", f.Cert, "--peer-key-file", f.Key, "--peer-trusted-ca-file", f.CA, "--peer-client-cert-auth")
		}
		c.procs = append(c.procs, &Proc{Name: "etcd-" + h.Name, Host: h, Bin: s.bin, Args: args,
			LogPath: filepath.Join(dir, h.Name+".log"), Net: nw})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Control clients first: they connect in the background and retry
	// quickly, so they are ready as soon as the servers listen.
	for _, a := range c.addrs {
		cl, err := newEtcdClient(a, nw.ControlDial, c.tls)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.ctl = append(c.ctl, cl)
	}
	if err := startAll(c.procs); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// newEtcdClient returns a client for one endpoint, dialling with dial.
// gRPC's reconnect backoff is cut from its 1 s base to 20 ms so that a
// client does not sit out a second after a server comes up (cold start)
// or back (restarts): rctl's client redials on every call. With tc the
// client speaks TLS (https://), presenting tc's certificate.
func newEtcdClient(addr string, dial func(context.Context, string) (net.Conn, error), tc *tls.Config) (*clientv3.Client, error) {
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	ep := addr
	if tc != nil {
		ep = "https://" + addr
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{ep},
		TLS:         tc,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithContextDialer(dial),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 2 * time.Second}),
		},
	})
}

// etcdCluster talks to its servers over etcd's gRPC API.
type etcdCluster struct {
	nw    Network
	tls   *tls.Config // nil: plaintext
	dir   string
	addrs []string // client URLs' host:port
	procs []*Proc
	ctl   []*clientv3.Client // one per server, over the control network
}

func (c *etcdCluster) Procs() []*Proc { return c.procs }

func (c *etcdCluster) status(ctx context.Context, i int, opts ...grpc.CallOption) (*pb.StatusResponse, error) {
	return pb.NewMaintenanceClient(c.ctl[i].ActiveConnection()).Status(ctx, &pb.StatusRequest{}, opts...)
}

func (c *etcdCluster) view() statusView[*pb.StatusResponse] {
	return statusView[*pb.StatusResponse]{procs: c.procs,
		status: func(ctx context.Context, i int) (*pb.StatusResponse, error) { return c.status(ctx, i) },
		leads: func(st *pb.StatusResponse) (bool, uint64) {
			return st.Leader != 0 && st.Leader == st.Header.MemberId, st.RaftTerm
		},
		behind: func(st, lst *pb.StatusResponse) error {
			if st.Leader != lst.Leader || st.RaftAppliedIndex < lst.RaftIndex {
				return fmt.Errorf("leader %x, applied %d of %d", st.Leader, st.RaftAppliedIndex, lst.RaftIndex)
			}
			return nil
		}}
}

// Leader returns the running server whose member id is the leader it
// reports.
func (c *etcdCluster) Leader(ctx context.Context) (int, error) { return c.view().leader(ctx) }

func (c *etcdCluster) TransferLeader(ctx context.Context, i int) error {
	l, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	if l == i {
		return nil
	}
	st, err := c.status(ctx, i, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	if _, err := c.ctl[l].MoveLeader(ctx, st.Header.MemberId); err != nil {
		return fmt.Errorf("etcd: move leader to %s: %w", c.procs[i].Host.Name, err)
	}
	return waitFor(ctx, func() bool { l, err := c.Leader(ctx); return err == nil && l == i })
}

// CaughtUp: every server knows the same leader and has applied the
// leader's last index.
func (c *etcdCluster) CaughtUp(ctx context.Context) (bool, error) { return c.view().caughtUp(ctx) }

func (c *etcdCluster) Writer(i int) (Writer, error) {
	cl, err := newEtcdClient(c.addrs[i], c.nw.ClientDial, c.tls)
	if err != nil {
		return nil, err
	}
	return &etcdWriter{cl: cl}, nil
}

func (c *etcdCluster) Stop() {
	killAll(c.procs)
	for _, cl := range c.ctl {
		_ = cl.Close()
	}
	_ = os.RemoveAll(c.dir)
}

// etcdWriter puts fresh keys through one server over one gRPC connection.
type etcdWriter struct{ cl *clientv3.Client }

func (w *etcdWriter) Write(ctx context.Context) error {
	_, err := w.cl.Put(ctx, fmt.Sprintf("/pb/%d", taskSeq.Add(1)), etcdValue)
	return err
}

func (w *etcdWriter) Close() { _ = w.cl.Close() }
