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

func runDev(g *globals, f *devFlags) error {
	if f.servers < 1 || f.servers > 9 {
		return usagef("--servers must be 1-9, got %d", f.servers)
	}
	if f.basePort < 1 || f.basePort+f.servers-1 > 65535 {
		return usagef("--base-port %d leaves no room for %d servers", f.basePort, f.servers)
	}
	if f.agents < 0 || f.agents > 50 {
		return usagef("--agents must be 0-50, got %d", f.agents)
	}
	agentCmd := ""
	if f.agents > 0 {
		var err error
		if agentCmd, err = findAgent(f.agentCmd); err != nil {
			return err
		}
	}
	if f.timing != "lan" && f.timing != "wan" {
		return usagef("--timing %q is invalid; use lan or wan", f.timing)
	}
	// Check the ports before starting anything.
	for i := 0; i < f.servers; i++ {
		addr := net.JoinHostPort(f.host, fmt.Sprint(f.basePort+i))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("dev: port %s is not free (%v); stop what uses it or pass --base-port", addr, err)
		}
		ln.Close()
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	// Signals are caught before any child exists, so none of them can end
	// rctl dev while it has children. Ctrl-C reaches rctl dev alone (each
	// child has its own process group), which stops the agents before the
	// servers.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	// A write to a stdout or stderr whose reader is gone (`rctl dev | tee
	// log` after Ctrl-C, `| head -1`) raises SIGPIPE, and the Go runtime
	// kills the process for it unless SIGPIPE is handled: with Notify such
	// a write fails with EPIPE instead (see "SIGPIPE" in the os/signal
	// docs). Notify rather than signal.Ignore because an ignored signal
	// stays ignored in the children across exec, a handled one does not.
	// Never stopped: rctl dev exits soon after runDev returns, and may
	// still print its error on a broken stderr.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// Printing goes through queues (devOutput): a stdout that blocks or
	// fails never holds up starting or stopping the cluster.
	out, errOut := newDevOutput(g.stdout), newDevOutput(g.stderr)
	defer func() {
		out.close(2 * time.Second)
		errOut.close(2 * time.Second)
	}()

	dir := f.dataDir
	tmp := ""
	if dir == "" {
		if tmp, err = os.MkdirTemp("", "rctl-dev-"); err != nil {
			return err
		}
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("dev: --data-dir: %w", err)
	}

	spawn := newSpawner()
	var servers, agents []*child
	// The stop path. It runs however runDev ends (a signal, an error, a
	// panic) and does not print: agents drain first, then the servers
	// stop, then the temporary directory goes.
	defer func() {
		stopChildren(agents, 15*time.Second)
		stopChildren(servers, 10*time.Second)
		spawn.close()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()

	ids := make([]string, f.servers)
	addrs := make([]string, f.servers)
	peers := make([]string, f.servers)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i+1)
		addrs[i] = net.JoinHostPort(f.host, fmt.Sprint(f.basePort+i))
		peers[i] = ids[i] + "=" + addrs[i]
	}
	for i, id := range ids {
		c, err := spawn.startChild("server", dir, id, exe, "serve", "--node-id", id, "--data-dir", filepath.Join(dir, id),
			"--bind", addrs[i], "--peers", strings.Join(peers, ","), "--timing", f.timing,
			"--cloud", "local", "--region", "dev", "--insecure")
		if err != nil {
			return err
		}
		servers = append(servers, c)
	}

	// Wait for a leader.
	start := time.Now()
	client := rpc.NewClient(addrs)
	defer client.Close()
	var leader string
	for leader == "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var st rpc.StatusReply
		err := client.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st)
		cancel()
		if err == nil && st.LeaderID != "" {
			leader = st.LeaderID
			break
		}
		select {
		case s := <-sig:
			fmt.Fprintf(errOut, "rctl dev: %s before a leader was elected; stopping\n", s)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("dev: no leader after 30s; see the logs in %s", dir)
		}
	}
	// Agents: started once the cluster has a leader, stopped (drained)
	// before the servers.
	for i := 0; i < f.agents; i++ {
		id := fmt.Sprintf("agent-%d", i+1)
		a, err := spawn.startChild("agent", dir, id, agentCmd, "--servers", strings.Join(addrs, ","), "--node-id", id,
			"--cloud", "local", "--region", "dev", "--capacity", "2", "--state-dir", filepath.Join(dir, id),
			"--insecure", "--executors", "sleep,shell", "--run-as", currentUser(),
			"--drain-timeout", "10") // inside the 15 s dev gives agents to stop
		if err != nil {
			return err
		}
		agents = append(agents, a)
	}

	fmt.Fprintf(out, "rctl dev: %d servers up, leader %s elected in %s\n", f.servers, leader, time.Since(start).Round(time.Millisecond))
	t := newTable(out, "ID", "ADDRESS", "PID", "LOG")
	for i, c := range servers {
		t.row(c.id, addrs[i], fmt.Sprint(c.cmd.Process.Pid), filepath.Join(dir, ids[i]+".log"))
	}
	for _, a := range agents {
		t.row(a.id, "(agent)", fmt.Sprint(a.cmd.Process.Pid), filepath.Join(dir, a.id+".log"))
	}
	_ = t.flush()
	fmt.Fprintf(out, "\nTry:\n  export RCTL_ADDR=%s\n  rctl members\n  rctl task add --type sleep --payload seconds=1\n  rctl task list\n\nPress Ctrl-C to stop the cluster.\n", strings.Join(addrs, ","))

	// Report children that exit on their own until we are told to stop.
	exited := make(chan *child, len(servers)+len(agents)) // never blocks a watcher
	for _, c := range append(append([]*child(nil), servers...), agents...) {
		go func() { <-c.exited; exited <- c }()
	}
	alive := len(servers)
	for {
		select {
		case s := <-sig:
			fmt.Fprintf(out, "rctl dev: %s received, stopping %d agents and %d servers\n", s, len(agents), len(servers))
			return nil
		case c := <-exited:
			if c.kind == "server" {
				alive--
			}
			fmt.Fprintf(out, "rctl dev: %s %s (pid %d) exited: %v\n", c.kind, c.id, c.cmd.Process.Pid, c.err)
			if alive == 0 {
				return fmt.Errorf("dev: every server has exited; see the logs in %s", dir)
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
