package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/rpc"
)

type devFlags struct {
	servers  int
	agents   int
	agentCmd string
	dataDir  string
	basePort int
	host     string
	timing   string
}

func newDevCommand(g *globals) *cobra.Command {
	f := &devFlags{}
	cmd := &cobra.Command{
		Use:   "dev [--servers N] [--data-dir DIR]",
		Short: "Run a whole local cluster on loopback until Ctrl-C",
		Long: `Start N rctl servers as child processes on 127.0.0.1, ports --base-port,
--base-port+1, ..., wait for a leader and print how to reach the cluster.
Each server logs to DIR/<id>.log. Ctrl-C stops every server cleanly.

Stopping rctl dev in any way stops the whole cluster. Ctrl-C, SIGTERM and
SIGHUP drain the agents, then stop the servers, also when stdout is a pipe
whose reader is gone (rctl dev | tee dev.log, then Ctrl-C). If rctl dev is
killed (kill -9) or crashes, the kernel sends every server and agent SIGTERM
and they stop cleanly; only a temporary data directory stays behind.

Without --data-dir the cluster lives in a temporary directory that is removed
on exit; with --data-dir its state is kept and reused by the next run.
Servers killed by hand (kill -9 PID, to watch a failover) stay down; restart
the dev cluster to bring them back.

Security: the dev cluster runs with --insecure (plaintext, no authentication;
it listens on loopback only) and its agents run shell tasks as the agent's own
user (--executors sleep,shell --run-as <current user>). Never expose it. For
a secure cluster, see rctl serve --help and docs/security.md.`,
		Example: `  rctl dev --servers 5
  RCTL_ADDR=127.0.0.1:50051,127.0.0.1:50052 rctl members`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error { return runDev(g, f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.servers, "servers", 3, "number of servers (1-9)")
	fl.IntVar(&f.agents, "agents", 0, "number of Python node agents to start against the cluster (0-50)")
	fl.StringVar(&f.agentCmd, "agent-cmd", "", "the node agent executable (default: rctl-agent on PATH, else agent/.venv/bin/rctl-agent next to this binary's checkout)")
	fl.StringVar(&f.dataDir, "data-dir", "", "keep the cluster's state here (default: a temporary directory removed on exit)")
	fl.IntVar(&f.basePort, "base-port", 50051, "port of the first server; the others follow")
	fl.StringVar(&f.host, "host", "127.0.0.1", "loopback address to bind")
	fl.StringVar(&f.timing, "timing", "lan", "timing profile for the servers: lan or wan")
	return cmd
}

// runDev runs a dev cluster until a signal stops it or every server has
// exited. Whatever the way it ends, the deferred steps stop the agents,
// then the servers, then remove a temporary data directory, and only then
// close the output queues and stop catching signals.
func runDev(g *globals, f *devFlags) error {
	agentCmd, err := checkDevFlags(f)
	if err != nil {
		return err
	}
	if err := checkDevPorts(f); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	sig := catchDevSignals()
	defer signal.Stop(sig)

	// Printing goes through queues (devOutput): a stdout that blocks or
	// fails never holds up starting or stopping the cluster.
	out, errOut := newDevOutput(g.stdout), newDevOutput(g.stderr)
	defer func() {
		out.close(2 * time.Second)
		errOut.close(2 * time.Second)
	}()

	d := &devCluster{f: f, exe: exe, agentCmd: agentCmd, sig: sig, out: out, errOut: errOut}
	if err := d.makeDataDir(); err != nil {
		return err
	}
	d.spawn = newSpawner()
	defer d.stop()
	if err := d.startServers(); err != nil {
		return err
	}
	start := time.Now()
	client := rpc.NewClient(d.addrs)
	defer client.Close()
	leader, err := d.waitForLeader(client, start)
	if leader == "" {
		return err // nil when a signal came before a leader
	}
	if err := d.startAgents(); err != nil {
		return err
	}
	d.printSummary(leader, start)
	return d.watch()
}

// devCluster is one run of rctl dev: its settings, where it prints, where
// it keeps its state and the children it started.
type devCluster struct {
	f        *devFlags
	exe      string // this binary, run as every server
	agentCmd string // the node agent executable; "" without agents
	sig      chan os.Signal
	out      *devOutput
	errOut   *devOutput
	dir      string // the data directory
	tmp      string // dir when it is temporary, removed on exit; else ""
	ids      []string
	addrs    []string
	spawn    *spawner
	servers  []*child
	agents   []*child
}

// checkDevFlags validates the flags and, when agents are asked for,
// locates the node agent executable, which it returns.
func checkDevFlags(f *devFlags) (agentCmd string, err error) {
	if f.servers < 1 || f.servers > 9 {
		return "", usagef("--servers must be 1-9, got %d", f.servers)
	}
	if f.basePort < 1 || f.basePort+f.servers-1 > 65535 {
		return "", usagef("--base-port %d leaves no room for %d servers", f.basePort, f.servers)
	}
	if f.agents < 0 || f.agents > 50 {
		return "", usagef("--agents must be 0-50, got %d", f.agents)
	}
	if f.agents > 0 {
		if agentCmd, err = findAgent(f.agentCmd); err != nil {
			return "", err
		}
	}
	if f.timing != "lan" && f.timing != "wan" {
		return "", usagef("--timing %q is invalid; use lan or wan", f.timing)
	}
	return agentCmd, nil
}

// checkDevPorts checks that every server's port is free, before anything
// is started.
func checkDevPorts(f *devFlags) error {
	for i := 0; i < f.servers; i++ {
		addr := net.JoinHostPort(f.host, fmt.Sprint(f.basePort+i))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("dev: port %s is not free (%v); stop what uses it or pass --base-port", addr, err)
		}
		ln.Close()
	}
	return nil
}

// catchDevSignals starts catching the signals that stop rctl dev, and
// SIGPIPE, and returns the channel the stopping signals arrive on.
//
// Signals are caught before any child exists, so none of them can end
// rctl dev while it has children. Ctrl-C reaches rctl dev alone (each
// child has its own process group), which stops the agents before the
// servers.
func catchDevSignals() chan os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// A write to a stdout or stderr whose reader is gone (`rctl dev | tee
	// log` after Ctrl-C, `| head -1`) raises SIGPIPE, and the Go runtime
	// kills the process for it unless SIGPIPE is handled: with Notify such
	// a write fails with EPIPE instead (see "SIGPIPE" in the os/signal
	// docs). Notify rather than signal.Ignore because an ignored signal
	// stays ignored in the children across exec, a handled one does not.
	// Never stopped: rctl dev exits soon after runDev returns, and may
	// still print its error on a broken stderr.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	return sig
}

// makeDataDir creates the data directory: --data-dir, kept, or else a
// temporary directory that stop removes.
func (d *devCluster) makeDataDir() error {
	if d.f.dataDir == "" {
		tmp, err := os.MkdirTemp("", "rctl-dev-")
		if err != nil {
			return err
		}
		d.dir, d.tmp = tmp, tmp
		return nil
	}
	d.dir = d.f.dataDir
	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return fmt.Errorf("dev: --data-dir: %w", err)
	}
	return nil
}

// stop is the stop path. It runs however runDev ends (a signal, an error,
// a panic) and does not print: agents drain first, then the servers stop,
// then the temporary directory goes.
func (d *devCluster) stop() {
	stopChildren(d.agents, 15*time.Second)
	stopChildren(d.servers, 10*time.Second)
	d.spawn.close()
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
}

// startServers names the servers s1, s2, ... on consecutive ports and
// starts each as a child `rctl serve`, every one knowing all the others.
func (d *devCluster) startServers() error {
	f := d.f
	d.ids = make([]string, f.servers)
	d.addrs = make([]string, f.servers)
	peers := make([]string, f.servers)
	for i := range d.ids {
		d.ids[i] = fmt.Sprintf("s%d", i+1)
		d.addrs[i] = net.JoinHostPort(f.host, fmt.Sprint(f.basePort+i))
		peers[i] = d.ids[i] + "=" + d.addrs[i]
	}
	for i, id := range d.ids {
		c, err := d.spawn.startChild("server", d.dir, id, d.exe, "serve", "--node-id", id, "--data-dir", filepath.Join(d.dir, id),
			"--bind", d.addrs[i], "--peers", strings.Join(peers, ","), "--timing", f.timing,
			"--cloud", "local", "--region", "dev", "--insecure")
		if err != nil {
			return err
		}
		d.servers = append(d.servers, c)
	}
	return nil
}

// waitForLeader polls the servers' status until one reports a leader,
// whose ID it returns, giving up 30s after start. A signal that comes
// first is reported on stderr, and waitForLeader returns "" and no error.
func (d *devCluster) waitForLeader(client *rpc.Client, start time.Time) (string, error) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var st rpc.StatusReply
		err := client.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st)
		cancel()
		if err == nil && st.LeaderID != "" {
			return st.LeaderID, nil
		}
		select {
		case s := <-d.sig:
			fmt.Fprintf(d.errOut, "rctl dev: %s before a leader was elected; stopping\n", s)
			return "", nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			return "", fmt.Errorf("dev: no leader after 30s; see the logs in %s", d.dir)
		}
	}
}

// startAgents starts the node agents. They start once the cluster has a
// leader, and stop (drain) before the servers.
func (d *devCluster) startAgents() error {
	for i := 0; i < d.f.agents; i++ {
		id := fmt.Sprintf("agent-%d", i+1)
		a, err := d.spawn.startChild("agent", d.dir, id, d.agentCmd, "--servers", strings.Join(d.addrs, ","), "--node-id", id,
			"--cloud", "local", "--region", "dev", "--capacity", "2", "--state-dir", filepath.Join(d.dir, id),
			"--insecure", "--executors", "sleep,shell", "--run-as", currentUser(),
			"--drain-timeout", "10") // inside the 15 s dev gives agents to stop
		if err != nil {
			return err
		}
		d.agents = append(d.agents, a)
	}
	return nil
}

// printSummary prints that the cluster is up, a table of its servers and
// agents, and how to use it.
func (d *devCluster) printSummary(leader string, start time.Time) {
	fmt.Fprintf(d.out, "rctl dev: %d servers up, leader %s elected in %s\n", d.f.servers, leader, time.Since(start).Round(time.Millisecond))
	t := newTable(d.out, "ID", "ADDRESS", "PID", "LOG")
	for i, c := range d.servers {
		t.row(c.id, d.addrs[i], fmt.Sprint(c.cmd.Process.Pid), filepath.Join(d.dir, d.ids[i]+".log"))
	}
	for _, a := range d.agents {
		t.row(a.id, "(agent)", fmt.Sprint(a.cmd.Process.Pid), filepath.Join(d.dir, a.id+".log"))
	}
	_ = t.flush()
	fmt.Fprintf(d.out, "\nTry:\n  export RCTL_ADDR=%s\n  rctl members\n  rctl task add --type sleep --payload seconds=1\n  rctl task list\n\nPress Ctrl-C to stop the cluster.\n", strings.Join(d.addrs, ","))
}

// watch reports children that exit on their own until a signal tells it
// to stop (it returns nil) or every server has exited (an error).
func (d *devCluster) watch() error {
	exited := make(chan *child, len(d.servers)+len(d.agents)) // never blocks a watcher
	for _, c := range append(append([]*child(nil), d.servers...), d.agents...) {
		go func() { <-c.exited; exited <- c }()
	}
	alive := len(d.servers)
	for {
		select {
		case s := <-d.sig:
			fmt.Fprintf(d.out, "rctl dev: %s received, stopping %d agents and %d servers\n", s, len(d.agents), len(d.servers))
			return nil
		case c := <-exited:
			if c.kind == "server" {
				alive--
			}
			fmt.Fprintf(d.out, "rctl dev: %s %s (pid %d) exited: %v\n", c.kind, c.id, c.cmd.Process.Pid, c.err)
			if alive == 0 {
				return fmt.Errorf("dev: every server has exited; see the logs in %s", d.dir)
			}
		}
	}
}

// currentUser is the name dev agents run their tasks as: the user who
// runs rctl dev.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "nobody"
}

// devEnv is the environment for child servers: the parent's, minus RCTL_*
// variables that would override the flags dev passes.
func devEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RCTL_") {
			env = append(env, kv)
		}
	}
	return env
}

// findAgent locates the node agent executable.
func findAgent(flag string) (string, error) {
	if flag != "" {
		p, err := exec.LookPath(flag)
		if err != nil {
			return "", usagef("--agent-cmd %q: %v", flag, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("rctl-agent"); err == nil {
		return p, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		// bin/rctl in a checkout: the venv is at ../agent/.venv.
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "agent", ".venv", "bin", "rctl-agent"))
	}
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, filepath.Join(wd, "agent", ".venv", "bin", "rctl-agent"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return filepath.Clean(c), nil
		}
	}
	return "", fmt.Errorf("dev: no node agent found (looked for rctl-agent on PATH and agent/.venv/bin/rctl-agent); run `make agent-venv` or pass --agent-cmd")
}
