//go:build linux

package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// ClusterConfig describes a cluster of real `rctl serve` processes, one per
// namespace, on an emulated network.
type ClusterConfig struct {
	// Bin is the rctl binary (required).
	Bin string
	// Servers are the voters, e.g. Shape(3, 2). Names become server ids.
	Servers []NodeSpec
	// Clients are extra namespaces for clients, e.g. ClientsPerCloud().
	Clients []NodeSpec
	// Agents are namespaces for node agents, e.g. AgentsPerCloud(2); the
	// agents start with StartAgents, not with the servers.
	Agents []NodeSpec
	// AgentBin is the node agent executable (rctl-agent); required to
	// start agents (FindAgentBin).
	AgentBin string
	// Net is the emulated network; zero means DefaultNet().
	Net NetConfig
	// Timing is the --timing profile; default "wan".
	Timing string
	// Port every server listens on (in its own namespace); default 50051.
	Port int
	// Args are extra `rctl serve` flags.
	Args []string
	// NoStart leaves the servers stopped; call StartAll.
	NoStart bool
	// Insecure runs every server with --insecure and every agent and
	// client in plaintext; by default all of them use mutual TLS and the
	// clients an ACL token (security.go).
	Insecure bool
}

// Shape returns server specs for aws servers aws1…awsN and gcp servers
// gcp1…gcpM: Shape(3, 3) is the seed's six, Shape(3, 2) the recommended
// five.
func Shape(aws, gcp int) []NodeSpec {
	var out []NodeSpec
	for i := 1; i <= aws; i++ {
		out = append(out, NodeSpec{Name: fmt.Sprintf("aws%d", i), Cloud: "aws"})
	}
	for i := 1; i <= gcp; i++ {
		out = append(out, NodeSpec{Name: fmt.Sprintf("gcp%d", i), Cloud: "gcp"})
	}
	return out
}

// ClientsPerCloud returns one client namespace per cloud: "c-aws", "c-gcp".
func ClientsPerCloud() []NodeSpec {
	return []NodeSpec{{Name: "c-aws", Cloud: "aws"}, {Name: "c-gcp", Cloud: "gcp"}}
}

// Cluster is a running set of rctl servers in their namespaces.
type Cluster struct {
	T       testing.TB
	Net     *Network
	Servers []*Server
	// Agents are the node agents (ClusterConfig.Agents), stopped until
	// StartAgents.
	Agents []*Agent
	// Dir holds every server's data dir and log. It is removed when the
	// test passes and kept (and logged) when it fails.
	Dir string
	cfg ClusterConfig
	ops *rpc.Pool
	pki *clusterPKI // nil with Insecure

	aclOnce sync.Once
	stopped chan struct{} // closed when the test ends
}

// Server is one `rctl serve` process.
type Server struct {
	Name, Cloud string
	Addr        string // ip:port, the same inside and outside its namespace
	DataDir     string
	LogPath     string
	Node        *Node
	args        []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logf    *os.File
	paused  bool
	starts  int
	exitErr error // of the last run, once done is closed
}

// StartCluster builds the network, starts every server and registers the
// teardown: servers are killed, then the network removed, whether the
// test passed or not.
func StartCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	SkipUnlessCapable(t)
	if cfg.Bin == "" {
		t.Fatal("fault: ClusterConfig.Bin (the rctl binary) is required")
	}
	if cfg.Net == (NetConfig{}) {
		cfg.Net = DefaultNet()
	}
	if cfg.Timing == "" {
		cfg.Timing = "wan"
	}
	if cfg.Port == 0 {
		cfg.Port = 50051
	}
	dir, err := os.MkdirTemp("", "rctl-fault-"+safeName(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	specs := append(append(append([]NodeSpec(nil), cfg.Servers...), cfg.Clients...), cfg.Agents...)
	net := NewNetwork(t, cfg.Net, specs...)
	c := &Cluster{T: t, Net: net, Dir: dir, cfg: cfg, stopped: make(chan struct{})}
	if !cfg.Insecure {
		if c.pki, err = newClusterPKI(dir); err != nil {
			t.Fatal(err)
		}
	}
	c.ops = rpc.NewPoolWith(c.opsCredentials())
	var peers []string
	for _, s := range cfg.Servers {
		node := net.Node(s.Name)
		sv := &Server{Name: s.Name, Cloud: s.Cloud, Node: node,
			Addr:    net2addr(node, cfg.Port),
			DataDir: filepath.Join(dir, s.Name, "data"),
			LogPath: filepath.Join(dir, s.Name+".log")}
		peers = append(peers, s.Name+"="+sv.Addr)
		c.Servers = append(c.Servers, sv)
	}
	for _, sv := range c.Servers {
		security := []string{"--insecure"}
		if c.pki != nil {
			if security, err = c.pki.flags(pki.RoleServer, sv.Name, sv.Node.IP.String()); err != nil {
				t.Fatal(err)
			}
		}
		sv.args = append([]string{"serve", "--node-id", sv.Name, "--data-dir", sv.DataDir,
			"--bind", sv.Addr, "--peers", strings.Join(peers, ","),
			"--timing", cfg.Timing, "--cloud", sv.Cloud, "--region", sv.Cloud + "-1"}, append(security, cfg.Args...)...)
		if lvl := os.Getenv("RCTL_FAULT_LOG_LEVEL"); lvl != "" {
			sv.args = append(sv.args, "--log-level", lvl)
		}
	}
	for _, s := range cfg.Agents {
		c.Agents = append(c.Agents, c.newAgent(s))
	}
	t.Cleanup(func() {
		close(c.stopped)
		c.ops.Close()
		for _, a := range c.Agents {
			a.Kill()
		}
		for _, sv := range c.Servers {
			sv.Kill()
		}
		if t.Failed() || os.Getenv("RCTL_FAULT_KEEP") == "1" {
			for _, sv := range c.Servers {
				t.Logf("---- last lines of %s (%s) ----\n%s", sv.Name, sv.LogPath, tail(sv.LogPath, 40))
			}
			for _, a := range c.Agents {
				t.Logf("---- last lines of agent %s (%s) ----\n%s", a.Name, a.LogPath, tail(a.LogPath, 30))
			}
			t.Logf("fault: server data and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	if !cfg.NoStart {
		c.StartAll()
		c.WaitACL()
	}
	return c
}

func net2addr(n *Node, port int) string {
	return net.JoinHostPort(n.IP.String(), strconv.Itoa(port))
}

// StartAll starts every server that is not running.
func (c *Cluster) StartAll() {
	c.T.Helper()
	for _, sv := range c.Servers {
		if !sv.Running() {
			c.Start(sv)
		}
	}
	if c.pki != nil {
		c.aclOnce.Do(func() { go c.bootstrapACL(c.stopped) })
	}
}

// Start starts (or restarts, on its data dir) one server.
func (c *Cluster) Start(sv *Server) {
	c.T.Helper()
	if err := sv.start(c.cfg.Bin); err != nil {
		c.T.Fatal(err)
	}
}

func (sv *Server) start(bin string) error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd != nil {
		select {
		case <-sv.done:
		default:
			return fmt.Errorf("fault: %s is already running", sv.Name)
		}
	}
	if err := os.MkdirAll(sv.DataDir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(sv.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	sv.starts++
	fmt.Fprintf(logf, "==== fault harness: start #%d at %s ====\n", sv.starts, time.Now().Format(time.RFC3339Nano))
	cmd := sv.Node.Command(bin, sv.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("fault: start %s: %w", sv.Name, err)
	}
	done := make(chan struct{})
	sv.cmd, sv.done, sv.logf, sv.paused = cmd, done, logf, false
	go func() {
		err := cmd.Wait()
		sv.mu.Lock()
		sv.exitErr = err
		sv.mu.Unlock()
		logf.Close()
		close(done)
	}()
	return nil
}

// Stop sends SIGTERM, what systemd sends, and returns once the process has
// exited, with its exit error (nil: exit 0), or an error if it is still
// running after within.
func (sv *Server) Stop(within time.Duration) error {
	if err := sv.signal(syscall.SIGTERM, false); err != nil {
		return err
	}
	sv.mu.Lock()
	done := sv.done
	sv.mu.Unlock()
	select {
	case <-done:
	case <-time.After(within):
		return fmt.Errorf("fault: %s still running %s after SIGTERM", sv.Name, within)
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.exitErr
}

// Running reports whether the process is alive (paused counts as alive).
func (sv *Server) Running() bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil {
		return false
	}
	select {
	case <-sv.done:
		return false
	default:
		return true
	}
}

// Paused reports whether the process is stopped by Pause.
func (sv *Server) Paused() bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.paused
}

// Pid is the server's process id, or 0.
func (sv *Server) Pid() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil || sv.cmd.Process == nil {
		return 0
	}
	return sv.cmd.Process.Pid
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone. It
// is a no-op on a stopped server.
func (sv *Server) Kill() {
	sv.mu.Lock()
	cmd, done := sv.cmd, sv.done
	sv.paused = false
	sv.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Pause sends SIGSTOP: the process freezes (its sockets stay open and the
// kernel keeps acknowledging TCP), like a long GC pause or a frozen VM.
func (sv *Server) Pause() error { return sv.signal(syscall.SIGSTOP, true) }

// Resume sends SIGCONT to a paused server.
func (sv *Server) Resume() error { return sv.signal(syscall.SIGCONT, false) }

func (sv *Server) signal(sig syscall.Signal, paused bool) error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil {
		return fmt.Errorf("fault: %s is not running", sv.Name)
	}
	select {
	case <-sv.done:
		return fmt.Errorf("fault: %s is not running", sv.Name)
	default:
	}
	if err := sv.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("fault: signal %s: %w", sv.Name, err)
	}
	sv.paused = paused
	return nil
}

// Server returns the named server, or nil.
func (c *Cluster) Server(name string) *Server {
	for _, sv := range c.Servers {
		if sv.Name == name {
			return sv
		}
	}
	return nil
}

// Addrs lists the addresses of the given servers, or of all servers.
func (c *Cluster) Addrs(svs ...*Server) []string {
	if len(svs) == 0 {
		svs = c.Servers
	}
	out := make([]string, len(svs))
	for i, sv := range svs {
		out[i] = sv.Addr
	}
	return out
}

// Names lists server names.
func Names(svs []*Server) []string {
	out := make([]string, len(svs))
	for i, sv := range svs {
		out[i] = sv.Name
	}
	return out
}

// Client returns a client in the named client namespace (or a server's
// namespace) talking to the given servers (all when none are given, those
// of the client's cloud first). It is closed when the test ends.
func (c *Cluster) Client(node string, svs ...*Server) *Client {
	c.T.Helper()
	n := c.Net.Node(node)
	if n == nil {
		c.T.Fatalf("fault: no node %q", node)
	}
	if len(svs) == 0 {
		// Servers of the client's own cloud first, as a client VM would
		// be configured.
		svs = append(InCloud(c.Servers, n.Cloud), Without(c.Servers, InCloud(c.Servers, n.Cloud)...)...)
	}
	cl := NewClient(n, c.Addrs(svs...)...)
	cl.pool = rpc.NewPoolWith(c.clientCredentials(n))
	if c.pki != nil {
		cl.ready = c.pki.ready
	}
	c.T.Cleanup(cl.Close)
	return cl
}

// RPCClient returns the client the rctl CLI uses (rpc.Client: it sticks to
// one server and moves on when that one fails) in the named client
// namespace, with the workload's credentials, talking to svs in that
// order. It is closed when the test ends.
func (c *Cluster) RPCClient(node string, svs ...*Server) *rpc.Client {
	c.T.Helper()
	n := c.Net.Node(node)
	if n == nil {
		c.T.Fatalf("fault: no node %q", node)
	}
	cl := rpc.NewClientWith(c.Addrs(svs...), c.clientCredentials(n))
	c.T.Cleanup(cl.Close)
	return cl
}

// Status asks one server for its own status, over the observer's
// undelayed, uncut link.
func (c *Cluster) Status(ctx context.Context, sv *Server) (*rpc.StatusReply, error) {
	var st rpc.StatusReply
	if err := c.ops.Call(ctx, sv.Addr, rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
		if rpc.CodeOf(err) == rpc.CodeDeadlineExceeded {
			if conn, gerr := c.ops.Get(ctx, sv.Addr); gerr == nil {
				conn.Close()
			}
		}
		return nil, err
	}
	return &st, nil
}

// ObserverCall makes any call on one server over the observer's link.
func (c *Cluster) ObserverCall(ctx context.Context, sv *Server, method string, args, reply any) error {
	return c.ops.Call(ctx, sv.Addr, method, args, reply)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrNoLeader is returned by waits that found no leader in time.
var ErrNoLeader = errors.New("fault: no leader")
