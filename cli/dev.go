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
	dir := f.dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "rctl-dev-")
		if err != nil {
			return err
		}
		dir = tmp
		defer os.RemoveAll(tmp)
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("dev: --data-dir: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	ids := make([]string, f.servers)
	addrs := make([]string, f.servers)
	peers := make([]string, f.servers)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i+1)
		addrs[i] = net.JoinHostPort(f.host, fmt.Sprint(f.basePort+i))
		peers[i] = ids[i] + "=" + addrs[i]
	}
	var children []*child
	stopAll := func() { stopChildren(children, 10*time.Second) }
	for i, id := range ids {
		c, err := startChild(dir, id, exe, "serve", "--node-id", id, "--data-dir", filepath.Join(dir, id),
			"--bind", addrs[i], "--peers", strings.Join(peers, ","), "--timing", f.timing,
			"--cloud", "local", "--region", "dev", "--insecure")
		if err != nil {
			stopAll()
			return err
		}
		children = append(children, c)
	}
	defer stopAll()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

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
			fmt.Fprintf(g.stderr, "rctl dev: %s before a leader was elected; stopping\n", s)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("dev: no leader after 30s; see the logs in %s", dir)
		}
	}
	// Agents: started once the cluster has a leader, stopped (drained)
	// before the servers.
	var agents []*child
	stopAgents := func() { stopChildren(agents, 15*time.Second) }
	defer stopAgents()
	for i := 0; i < f.agents; i++ {
		id := fmt.Sprintf("agent-%d", i+1)
		a, err := startChild(dir, id, agentCmd, "--servers", strings.Join(addrs, ","), "--node-id", id,
			"--cloud", "local", "--region", "dev", "--capacity", "2", "--state-dir", filepath.Join(dir, id),
			"--insecure", "--executors", "sleep,shell", "--run-as", currentUser())
		if err != nil {
			return err
		}
		agents = append(agents, a)
	}

	w := g.stdout
	fmt.Fprintf(w, "rctl dev: %d servers up, leader %s elected in %s\n", f.servers, leader, time.Since(start).Round(time.Millisecond))
	t := newTable(w, "ID", "ADDRESS", "PID", "LOG")
	for i, c := range children {
		t.row(c.id, addrs[i], fmt.Sprint(c.cmd.Process.Pid), filepath.Join(dir, ids[i]+".log"))
	}
	for _, a := range agents {
		t.row(a.id, "(agent)", fmt.Sprint(a.cmd.Process.Pid), filepath.Join(dir, a.id+".log"))
	}
	_ = t.flush()
	fmt.Fprintf(w, "\nTry:\n  export RCTL_ADDR=%s\n  rctl members\n  rctl task add --type sleep --payload seconds=1\n  rctl task list\n\nPress Ctrl-C to stop the cluster.\n", strings.Join(addrs, ","))

	// Report children that exit on their own until we are told to stop.
	exited := make(chan string, len(children))
	for _, c := range children {
		go func() {
			err := <-c.done
			c.done <- err // keep it readable for stopAll
			exited <- fmt.Sprintf("%s (pid %d) exited: %v", c.id, c.cmd.Process.Pid, err)
		}()
	}
	alive := len(children)
	for {
		select {
		case s := <-sig:
			fmt.Fprintf(w, "rctl dev: %s received, stopping %d agents and %d servers\n", s, len(agents), len(children))
			stopAgents()
			return nil
		case msg := <-exited:
			alive--
			fmt.Fprintf(w, "rctl dev: server %s\n", msg)
			if alive == 0 {
				return fmt.Errorf("dev: every server has exited; see the logs in %s", dir)
			}
		}
	}
}

// child is a process rctl dev started.
type child struct {
	id   string
	cmd  *exec.Cmd
	done chan error
}

// startChild starts exe with args in its own process group, logging to
// dir/<id>.log.
func startChild(dir, id, exe string, args ...string) (*child, error) {
	logf, err := os.OpenFile(filepath.Join(dir, id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = devEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("dev: start %s (%s): %w", id, exe, err)
	}
	c := &child{id: id, cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait(); logf.Close() }()
	return c, nil
}

// stopChildren sends SIGTERM to every child still running and waits up to
// grace for each before killing it.
func stopChildren(cs []*child, grace time.Duration) {
	for _, c := range cs {
		_ = c.cmd.Process.Signal(syscall.SIGTERM) // fails harmlessly if it has exited
	}
	for _, c := range cs {
		select {
		case err := <-c.done:
			c.done <- err // keep it readable
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
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
