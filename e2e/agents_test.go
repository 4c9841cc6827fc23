package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

// agentBin finds the Python node agent: RCTL_AGENT_BIN, or the virtualenv
// that `make agent-venv` creates. Without one the agent tests skip (CI's
// `make test` always creates it).
func agentBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RCTL_AGENT_BIN"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../agent/.venv/bin/rctl-agent")
	if _, err := os.Stat(p); err != nil {
		t.Skip("node agent not installed (no agent/.venv/bin/rctl-agent): run `make agent-venv`; `make test` does")
	}
	return p
}

type agentProc struct {
	id   string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

func startAgent(t *testing.T, bin, id, servers string) *agentProc {
	t.Helper()
	a := &agentProc{id: id, log: &syncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "--servers", servers, "--node-id", id, "--cloud", "local",
		"--capacity", "2", "--state-dir", t.TempDir(), "--insecure", "--executors", "sleep,shell", "--run-as", fault.CurrentUser())
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent %s: %v", id, err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.crash()
		if t.Failed() {
			t.Logf("---- log of agent %s ----\n%s", id, a.log.String())
		}
	})
	return a
}

// crash kills the agent and every process it started, like a VM dying.
func (a *agentProc) crash() {
	select {
	case <-a.done:
		return
	default:
	}
	for _, pid := range descendants(a.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = a.cmd.Process.Kill()
	<-a.done
}

// descendants lists the pids below pid (children first found via /proc).
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

type nodeJSON struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	HeartbeatAgeMS int64  `json:"heartbeat_age_ms"`
	ActiveTasks    int    `json:"active_tasks"`
	UpdatedAt      int64  `json:"updated_at"`
}

type taskJSON struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	NodeID   string `json:"node_id"`
	Attempts int    `json:"attempts"`
	Result   *struct {
		ExitCode int    `json:"exit_code"`
		Output   string `json:"output"`
	} `json:"result"`
}

func nodesOf(t *testing.T, addr string) []nodeJSON {
	t.Helper()
	out, errOut, code := rctl(t, "--addr", addr, "--timeout", "3s", "nodes", "-o", "json")
	if code != 0 {
		t.Logf("nodes: %s", errOut)
		return nil
	}
	var ns []nodeJSON
	mustJSON(t, out, &ns)
	return ns
}

func tasksOf(t *testing.T, addr string) map[string]taskJSON {
	t.Helper()
	out, errOut, code := rctl(t, "--addr", addr, "--timeout", "5s", "task", "list", "-o", "json")
	if code != 0 {
		t.Logf("task list: %s", errOut)
		return nil
	}
	var ts []taskJSON
	mustJSON(t, out, &ts)
	m := map[string]taskJSON{}
	for _, x := range ts {
		m[x.ID] = x
	}
	return m
}

// The end-to-end scenario: 3 servers and 3 real Python agents; tasks
// run and complete; kill -9 the leader and every agent moves to the new one
// within 5 s; kill -9 an agent and it is unreachable within its TTL while its
// tasks complete elsewhere; no task is ever run by two agents at once.
func TestAgentsRunTasksThroughFailures(t *testing.T) {
	bin := agentBin(t)
	c := startCluster(t, 3)
	all := c.addrs()
	c.leader(10*time.Second, all)
	agents := map[string]*agentProc{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("agent-%d", i)
		agents[id] = startAgent(t, bin, id, all)
	}
	eventually(t, 20*time.Second, func() error {
		ns := nodesOf(t, all)
		healthy := 0
		for _, n := range ns {
			if n.Status == "healthy" {
				healthy++
			}
		}
		if healthy != 3 {
			return fmt.Errorf("%d healthy agents: %+v", healthy, ns)
		}
		return nil
	})

	// Every run appends "<task> <attempt> <start ns> <end ns>" to a ledger.
	ledger := filepath.Join(t.TempDir(), "ledger")
	addJob := func(id string, secs float64) {
		cmd := fmt.Sprintf(`s=$(date +%%s%%N); sleep %g; echo "$RCTL_TASK_ID $RCTL_TASK_ATTEMPT $s $(date +%%s%%N)" >> %s; echo ran $RCTL_TASK_ID`, secs, ledger)
		mustRctl(t, "--addr", all, "task", "add", "--type", "shell", "--id", id, "--payload", "cmd="+cmd)
	}
	waitComplete := func(ids []string, within time.Duration) {
		t.Helper()
		eventually(t, within, func() error {
			ts := tasksOf(t, all)
			for _, id := range ids {
				tk := ts[id]
				if tk.Status == "failed" {
					t.Fatalf("task %s failed: %+v", id, tk.Result)
				}
				if tk.Status != "complete" {
					return fmt.Errorf("task %s is %q", id, tk.Status)
				}
			}
			return nil
		})
	}

	var first []string
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("warm-%d", i)
		addJob(id, 0.2)
		first = append(first, id)
	}
	waitComplete(first, 30*time.Second)
	if out := tasksOf(t, all)["warm-0"]; out.Result == nil || !strings.Contains(out.Result.Output, "ran warm-0") {
		t.Fatalf("shell output not reported: %+v", out.Result)
	}

	// kill -9 the leader; every agent must heartbeat to the new one within
	// 5 s of its election.
	old := c.leader(5*time.Second, all)
	c.kill(old)
	rest := c.addrs(old)
	nl := c.leader(10*time.Second, rest, old)
	elected := time.Now()
	eventually(t, 5*time.Second, func() error {
		ns := nodesOf(t, nl.addr)
		ok := 0
		for _, n := range ns {
			// heartbeat_age_ms ≥ 0 only once this leader has heard from it.
			if n.HeartbeatAgeMS >= 0 && n.HeartbeatAgeMS < 1500 {
				ok++
			}
		}
		if ok != 3 {
			return fmt.Errorf("%d of 3 agents heartbeat to the new leader %s: %+v", ok, nl.id, ns)
		}
		return nil
	})
	t.Logf("all agents heartbeating to new leader %s %s after it was seen elected", nl.id, time.Since(elected).Round(time.Millisecond))
	var second []string
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("after-failover-%d", i)
		addJob(id, 0.2)
		second = append(second, id)
	}
	waitComplete(second, 30*time.Second)
	c.start(old)

	// kill -9 an agent while it runs tasks.
	var long []string
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("long-%d", i)
		addJob(id, 8) // long enough that none can finish between our look and the kill
		long = append(long, id)
	}
	var victim string
	eventually(t, 10*time.Second, func() error {
		for _, tk := range tasksOf(t, all) {
			if strings.HasPrefix(tk.ID, "long-") && tk.Status == "running" {
				victim = tk.NodeID
				return nil
			}
		}
		return fmt.Errorf("no long task running yet")
	})
	var held []string
	for _, tk := range tasksOf(t, all) {
		if tk.NodeID == victim && (tk.Status == "running" || tk.Status == "assigned") {
			held = append(held, tk.ID)
		}
	}
	agents[victim].crash()
	crashed := time.Now()
	var markedAt time.Time
	eventually(t, 10*time.Second, func() error {
		for _, n := range nodesOf(t, all) {
			if n.ID == victim && n.Status == "unreachable" {
				markedAt = time.Unix(0, n.UpdatedAt) // stamped by the leader when it proposed the change
				return nil
			}
		}
		return fmt.Errorf("%s not unreachable yet", victim)
	})
	took := markedAt.Sub(crashed)
	t.Logf("agent %s killed -9 → leader marked it unreachable %s later (TTL 4s after its last heartbeat)", victim, took.Round(time.Millisecond))
	// The TTL runs from the last heartbeat, which precedes the kill; allow
	// the 250 ms judging tick and scheduling delay on a loaded 2-core CI box.
	if took > 5*time.Second {
		t.Fatalf("agent death detected %s after the kill, want within the 4s TTL (+1s slack)", took)
	}
	waitComplete(long, 60*time.Second)
	after := tasksOf(t, all)
	for _, id := range held {
		if tk := after[id]; tk.NodeID == victim || tk.Attempts < 2 {
			t.Fatalf("task %s, held by the dead agent %s, ended on %s after %d attempts; want another agent, attempt 2", id, victim, tk.NodeID, tk.Attempts)
		}
	}
	if len(held) == 0 {
		t.Fatalf("the victim %s held no task when it was killed", victim)
	}

	// No task ran on two agents at once: runs of the same task never overlap.
	checkLedger(t, ledger)
}

func checkLedger(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type run struct{ start, end int64 }
	runs := map[string][]run{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var id string
		var attempt int
		var r run
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %d %d", &id, &attempt, &r.start, &r.end); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		for _, o := range runs[id] {
			if r.start < o.end && o.start < r.end {
				t.Fatalf("task %s ran twice at the same time: %+v and %+v", id, o, r)
			}
		}
		runs[id] = append(runs[id], r)
	}
	if len(runs) == 0 {
		t.Fatal("empty ledger")
	}
}
