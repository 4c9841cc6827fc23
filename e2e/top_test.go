package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/rpc"

	"github.com/rctl-dev/rctl/fault"
)

// `rctl top --once` against three real servers: every server id and the
// leader are in the snapshot, without colour; -o json carries the same; no
// server → one line on stderr and exit 1.
func TestTopOnce(t *testing.T) {
	c := startCluster(t, 3)
	all := c.addrs()
	lp := c.leader(10*time.Second, all)
	topAgents(t, all, 2)
	mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", "top-once-1", "--payload", "seconds=0")

	var out string
	eventually(t, 15*time.Second, func() error {
		o, errOut, code := rctl(t, "--addr", all, "top", "--once")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		out = o
		if !strings.Contains(o, "top-agent-1") || !strings.Contains(o, "top-agent-2") {
			return fmt.Errorf("agents not listed yet:\n%s", o)
		}
		return nil
	})
	t.Logf("rctl top --once:\n%s", out)
	for _, p := range c.procs {
		if !regexp.MustCompile(`(?m)^` + p.id + `\*?\s+` + regexp.QuoteMeta(p.addr)).MatchString(out) {
			t.Errorf("snapshot has no row for server %s (%s)", p.id, p.addr)
		}
	}
	if !regexp.MustCompile(`(?m)^leader ` + lp.id + `\b`).MatchString(out) {
		t.Errorf("snapshot does not name leader %s in its header", lp.id)
	}
	if !strings.Contains(out, "top-once-1") {
		t.Error("snapshot does not list the task")
	}
	if strings.Contains(out, "\x1b") {
		t.Error("snapshot has escape codes")
	}

	// Without --once, a non-terminal stdout also gets the snapshot.
	if o, _, code := rctl(t, "--addr", all, "top"); code != 0 || !strings.Contains(o, "SERVERS 3") {
		t.Errorf("rctl top with stdout not a terminal: exit %d\n%s", code, o)
	}

	o := mustRctl(t, "--addr", all, "top", "--once", "-o", "json")
	var snap struct {
		Connected string `json:"connected"`
		Status    struct {
			LeaderID string `json:"leader_id"`
		} `json:"status"`
		Members struct {
			Members []struct {
				ID string `json:"id"`
			} `json:"members"`
		} `json:"members"`
	}
	mustJSON(t, o, &snap)
	if snap.Status.LeaderID != lp.id || len(snap.Members.Members) != 3 {
		t.Errorf("json snapshot: leader %q, %d members; want %s and 3", snap.Status.LeaderID, len(snap.Members.Members), lp.id)
	}

	dead := freeAddrs(t, 1)[0]
	o, errOut, code := rctl(t, "--addr", dead, "--timeout", "3s", "top", "--once")
	if code != 1 || o != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, dead) {
		t.Errorf("top --once with no server: exit %d, stdout %q, stderr %q; want exit 1 and one line naming %s", code, o, errOut, dead)
	}
}

// The live view in a real terminal (tmux): kill -9 the leader and watch the
// new leader's id reach the header.
func TestTopLiveLeaderKill(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (Debian: apt-get install -y tmux); skipping the live terminal test of rctl top")
	}
	c := startCluster(t, 3)
	all := c.addrs()
	old := c.leader(10*time.Second, all)
	topAgents(t, all, 2)
	for i := 0; i < 3; i++ {
		mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", fmt.Sprintf("top-live-%d", i), "--payload", "seconds=0")
	}

	// The leader's address first: top connects to the server about to die,
	// so the kill exercises the failover as well as the leader change.
	tm := startTmux(t, 100, 30, rctlBin, "--addr", old.addr+","+c.addrs(old), "top")
	agentsUp := regexp.MustCompile(`top-agent-1\s+healthy[\s\S]*top-agent-2\s+healthy|top-agent-2\s+healthy[\s\S]*top-agent-1\s+healthy`)
	var screen string
	eventually(t, 15*time.Second, func() error {
		screen = tm.capture()
		if topLeader(screen) != old.id || !strings.Contains(screen, "connected to "+old.id+" ") ||
			!agentsUp.MatchString(screen) || !strings.Contains(screen, "top-live-2") || !regexp.MustCompile(`Servers \d/3 ok`).MatchString(screen) {
			return fmt.Errorf("screen does not show leader %s (connected), 3 servers, the agents and the tasks yet:\n%s", old.id, screen)
		}
		return nil
	})
	t.Logf("screen before the kill:\n%s", screen)

	killed := time.Now()
	c.kill(old)
	var (
		newLeader string
		seen      time.Duration
	)
	for deadline := killed.Add(5 * time.Second); ; {
		screen = tm.capture()
		if l := topLeader(screen); l != "" && l != "NONE" && l != old.id {
			newLeader, seen = l, time.Since(killed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader in the header 5s after kill -9 of %s:\n%s", old.id, screen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The header also says how long ago the connected server saw the change:
	// an upper bound on the view's own share of the delay.
	since := "?"
	if m := regexp.MustCompile(`(?m)^leader \S+.* for (\S+)`).FindStringSubmatch(screen); m != nil {
		since = m[1]
	}
	t.Logf("kill -9 of leader %s → new leader %s on screen after %s (header: leader for %s)", old.id, newLeader, seen.Round(time.Millisecond), since)
	t.Logf("screen after the kill:\n%s", screen)
	if lp := c.leader(5*time.Second, c.addrs(old)); lp.id != newLeader {
		t.Errorf("screen shows leader %s, the cluster says %s", newLeader, lp.id)
	}
	// The view was on the killed server: it says it moved.
	if !strings.Contains(screen, "FAILOVER") || strings.Contains(strings.SplitN(screen, "\n", 2)[0], "connected to "+old.id+" ") {
		t.Errorf("the screen does not say the view left %s:\n%s", old.id, screen)
	}

	// q quits and gives the terminal back.
	tm.keys("q")
	eventually(t, 5*time.Second, func() error {
		if tm.alive() {
			return errors.New("rctl top still running after q")
		}
		return nil
	})
}

var topLeaderRe = regexp.MustCompile(`(?m)^leader (\S+)`)

// topLeader returns the leader id in top's header ("NONE" without one).
func topLeader(screen string) string {
	lines := strings.SplitN(screen, "\n", 3)
	if len(lines) < 2 {
		return ""
	}
	if m := topLeaderRe.FindStringSubmatch(lines[1]); m != nil {
		return m[1]
	}
	return ""
}

// tmuxSession is one detached tmux session on a private server socket.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, w, h int, argv ...string) *tmuxSession {
	t.Helper()
	tm := &tmuxSession{t: t, socket: fmt.Sprintf("rctl-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	shell := "env RCTL_ADDR= LANG=C.UTF-8 LC_ALL=C.UTF-8 " + strings.Join(quoted, " ")
	if out, err := tm.run("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), shell); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = tm.run("kill-server") })
	return tm
}

func (tm *tmuxSession) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (tm *tmuxSession) capture() string {
	out, err := tm.run("capture-pane", "-p", "-t", "top")
	if err != nil {
		return "capture-pane failed: " + err.Error() + ": " + out
	}
	return out
}

func (tm *tmuxSession) keys(keys ...string) {
	if out, err := tm.run(append([]string{"send-keys", "-t", "top"}, keys...)...); err != nil {
		tm.t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

func (tm *tmuxSession) alive() bool {
	_, err := tm.run("has-session", "-t", "top")
	return err == nil
}

// topAgents starts n node agents (ids top-agent-1…) against addrs: the real
// Python agent when its virtualenv exists (make agent-venv; or
// RCTL_AGENT_BIN), else a minimal agent in Go that registers and
// heartbeats to the leader (also with RCTL_AGENT_BIN=go). Both stop when
// the test ends.
func topAgents(t *testing.T, addrs string, n int) {
	t.Helper()
	bin := os.Getenv("RCTL_AGENT_BIN")
	if bin == "go" {
		bin = ""
	} else if bin == "" {
		if p, err := filepath.Abs("../agent/.venv/bin/rctl-agent"); err == nil {
			if _, err := os.Stat(p); err == nil {
				bin = p
			}
		}
	}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("top-agent-%d", i)
		if bin != "" {
			topPythonAgent(t, bin, addrs, id)
		} else {
			topGoAgent(t, addrs, id)
		}
	}
	if bin != "" {
		t.Logf("agents: %d × %s", n, bin)
	} else {
		t.Logf("agents: %d in-process Go agents (the Python agent needs agent/.venv: make agent-venv)", n)
	}
}

func topPythonAgent(t *testing.T, bin, addrs, id string) {
	t.Helper()
	cmd := exec.Command(bin, "--servers", addrs, "--node-id", id, "--cloud", "local", "--capacity", "2",
		"--state-dir", t.TempDir(), "--drain-timeout", "1", "--log-level", "warning",
		"--insecure", "--executors", "sleep,shell", "--run-as", fault.CurrentUser())
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent %s: %v", id, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("---- log of agent %s ----\n%s", id, log.String())
		}
	})
}

// topGoAgent registers a node and heartbeats to the leader until the test
// ends, following not_leader answers and moving past dead servers.
func topGoAgent(t *testing.T, addrs, id string) {
	t.Helper()
	list := strings.Split(addrs, ",")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := rpc.NewClient(list)
		defer client.Close()
		pool := rpc.NewPool()
		defer pool.Close()
		var reg rpc.NodeRegisterReply
		for ctx.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			err := client.Call(cctx, rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: id, Cloud: "local", Capacity: 2}, &reg)
			ccancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		interval := time.Duration(max(reg.HeartbeatIntervalMS, 100)) * time.Millisecond
		leader, next := reg.LeaderAddr, 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
			if leader == "" {
				leader, next = list[next%len(list)], next+1
			}
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			var hb rpc.HeartbeatReply
			err := pool.Call(cctx, leader, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: id}, &hb)
			ccancel()
			var re *rpc.Error
			switch {
			case err == nil:
			case errors.As(err, &re) && re.Code == rpc.CodeNotLeader && re.LeaderAddr != "":
				leader = re.LeaderAddr
			default:
				leader = ""
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}
