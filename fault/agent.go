//go:build linux

package fault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
)

// AgentEnvBin names the environment variable that points at the node
// agent executable (rctl-agent); FindAgentBin also looks for the
// virtualenv `make agent-venv` creates.
const AgentEnvBin = "RCTL_AGENT_BIN"

// FindAgentBin returns the node agent executable: $RCTL_AGENT_BIN, or
// agent/.venv/bin/rctl-agent under repoRoot. The error says how to get
// one; callers skip the agent part of a scenario with it.
func FindAgentBin(repoRoot string) (string, error) {
	if p := os.Getenv(AgentEnvBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", AgentEnvBin, p, err)
		}
		return p, nil
	}
	p, err := filepath.Abs(filepath.Join(repoRoot, "agent", ".venv", "bin", "rctl-agent"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("node agent not installed (no %s, %s unset): run `make agent-venv` (`make test` does)", p, AgentEnvBin)
	}
	return p, nil
}

// AgentsPerCloud returns n agent namespaces in each of the clouds "aws"
// and "gcp": "a-aws1"…"a-awsN", "a-gcp1"…. The names double as node ids.
func AgentsPerCloud(n int) []NodeSpec {
	var out []NodeSpec
	for _, cloud := range []string{"aws", "gcp"} {
		for i := 1; i <= n; i++ {
			out = append(out, NodeSpec{Name: fmt.Sprintf("a-%s%d", cloud, i), Cloud: cloud})
		}
	}
	return out
}

// AgentNodeEnv is set in every agent's environment to the agent's name,
// so the shell tasks it runs can say where they ran (see Jobs).
const AgentNodeEnv = "RCTL_FAULT_NODE"

// Agent is one real Python node agent (rctl-agent) in its own namespace,
// like a worker VM in its cloud.
type Agent struct {
	Name, Cloud string
	Node        *Node
	StateDir    string
	LogPath     string
	args        []string
	bin         string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// agentCapacity is the number of tasks each agent runs at once.
const agentCapacity = 2

func (c *Cluster) newAgent(s NodeSpec) *Agent {
	node := c.Net.Node(s.Name)
	// Servers of the agent's own cloud first, as its VM would be
	// configured; it learns the others from replies anyway.
	svs := append(InCloud(c.Servers, s.Cloud), Without(c.Servers, InCloud(c.Servers, s.Cloud)...)...)
	a := &Agent{Name: s.Name, Cloud: s.Cloud, Node: node, bin: c.cfg.AgentBin,
		StateDir: filepath.Join(c.Dir, s.Name, "state"),
		LogPath:  filepath.Join(c.Dir, s.Name+".log")}
	a.args = []string{"--servers", strings.Join(c.Addrs(svs...), ","), "--node-id", s.Name,
		"--cloud", s.Cloud, "--region", s.Cloud + "-1", "--capacity", fmt.Sprint(agentCapacity),
		"--state-dir", a.StateDir, "--connect-timeout", "120", "--drain-timeout", "5",
		"--executors", "sleep,shell", "--run-as", CurrentUser(), "--task-env", AgentNodeEnv}
	if c.pki == nil {
		a.args = append(a.args, "--insecure")
	} else {
		tls, err := c.pki.flags(pki.RoleAgent, s.Name)
		if err != nil {
			c.T.Fatal(err)
		}
		a.args = append(a.args, tls...)
	}
	return a
}

// StartAgents starts every agent that is not running.
func (c *Cluster) StartAgents() {
	c.T.Helper()
	for _, a := range c.Agents {
		if !a.Running() {
			c.StartAgent(a)
		}
	}
}

// StartAgent starts (or restarts, with its state dir) one agent.
func (c *Cluster) StartAgent(a *Agent) {
	c.T.Helper()
	if a.bin == "" {
		c.T.Fatal("fault: ClusterConfig.AgentBin (the rctl-agent executable) is required to start agents")
	}
	if err := a.start(); err != nil {
		c.T.Fatal(err)
	}
}

func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		select {
		case <-a.done:
		default:
			return fmt.Errorf("fault: agent %s is already running", a.Name)
		}
	}
	if err := os.MkdirAll(a.StateDir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	a.starts++
	fmt.Fprintf(logf, "==== fault harness: start #%d at %s ====\n", a.starts, time.Now().Format(time.RFC3339Nano))
	cmd := a.Node.Command(a.bin, a.args...)
	cmd.Env = append(os.Environ(), AgentNodeEnv+"="+a.Name, "PYTHONUNBUFFERED=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("fault: start agent %s: %w", a.Name, err)
	}
	done := make(chan struct{})
	a.cmd, a.done = cmd, done
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	return nil
}

// Running reports whether the agent process is alive.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Kill kills the agent and every task it runs with SIGKILL (every process
// in its namespace), like its VM dying, and waits for the agent to be
// gone. It is a no-op on a stopped agent.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	for i := 0; i < 50; i++ {
		pids := netnsPids(a.Node.Netns.Name)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Agent returns the named agent, or nil.
func (c *Cluster) Agent(name string) *Agent {
	for _, a := range c.Agents {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// RunningAgents lists the agents whose process is alive.
func (c *Cluster) RunningAgents() []*Agent {
	var out []*Agent
	for _, a := range c.Agents {
		if a.Running() {
			out = append(out, a)
		}
	}
	return out
}

// AgentNames lists agent names.
func AgentNames(as []*Agent) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}

// AgentsInCloud returns the agents of one cloud, by name, for partition
// groups.
func (c *Cluster) AgentsInCloud(cloud string) []string {
	var out []string
	for _, a := range c.Agents {
		if a.Cloud == cloud {
			out = append(out, a.Name)
		}
	}
	return out
}

var errNoAgents = errors.New("fault: the cluster has no agents")

// CurrentUser is the user name agents started by tests run their tasks as
// (--run-as): the tests' own user, so task output lands where they look.
func CurrentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "nobody"
}
