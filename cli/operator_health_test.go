package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/cluster"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

// healthCluster is n in-process servers (insecure, lan timing) on
// 127.0.0.1 with real TCP, each restartable on its own data directory.
type healthCluster struct {
	t       *testing.T
	cfgs    []cluster.Config
	servers []*cluster.Server
}

func startHealthCluster(t *testing.T, n int) *healthCluster {
	t.Helper()
	addrs := testutil.FreeAddrs(t, n)
	var peers []cluster.Peer
	for i, a := range addrs {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("s%d", i+1), Address: a})
	}
	c := &healthCluster{t: t, servers: make([]*cluster.Server, n)}
	for i, a := range addrs {
		cfg := cluster.Default()
		cfg.NodeID, cfg.DataDir, cfg.Bind, cfg.Timing, cfg.Insecure = peers[i].ID, t.TempDir(), a, "lan", true
		cfg.Peers = peers
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.LogOutput, cfg.LogLevel = io.Discard, "error"
		c.cfgs = append(c.cfgs, cfg)
	}
	for i := range c.cfgs {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.stop(i)
		}
	})
	return c
}

func (c *healthCluster) start(i int) {
	c.t.Helper()
	s, err := cluster.New(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].NodeID, err)
	}
	c.servers[i] = s
}

func (c *healthCluster) stop(i int) {
	if s := c.servers[i]; s != nil {
		_ = s.Shutdown()
		c.servers[i] = nil
	}
}

func (c *healthCluster) addr() string {
	var out []string
	for _, cfg := range c.cfgs {
		out = append(out, cfg.Bind)
	}
	return strings.Join(out, ",")
}

// leader returns the index of the server that is a ready leader, or -1.
func (c *healthCluster) leader() int {
	for i, s := range c.servers {
		if s != nil && s.LeaderReady() {
			return i
		}
	}
	return -1
}

// health runs `rctl operator health` with args and returns its exit code,
// stdout and stderr.
func (c *healthCluster) health(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(append([]string{"operator", "health", "--addr", c.addr(), "--timeout", "20s"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestOperatorHealth: on a real three-server cluster the gate passes when
// all is well, fails with exit 3 and one line per failed check when a
// voter is stopped, and --wait returns 0 once the voter is back.
func TestOperatorHealth(t *testing.T) {
	c := startHealthCluster(t, 3)

	// Healthy: --wait rides out the first election.
	code, out, errOut := c.health("--wait", "60s", "--stable", "2500ms")
	if code != ExitOK {
		t.Fatalf("healthy cluster: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "healthy: safe to take one server down") || !strings.Contains(out, "quorum 2") {
		t.Fatalf("healthy cluster: stdout lacks the verdict or the facts:\n%s", out)
	}

	// -o json: the same facts.
	code, out, errOut = c.health("-o", "json")
	if code != ExitOK {
		t.Fatalf("-o json: exit %d, want 0\nstderr:\n%s", code, errOut)
	}
	var r healthReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if !r.Healthy || r.Voters != 3 || r.HealthyVoters != 3 || r.Quorum != 2 || r.FailureTolerance != 1 || r.LeaderID == "" || len(r.Servers) != 3 {
		t.Fatalf("-o json: want healthy, 3 voters, 3 healthy, quorum 2, tolerance 1, a leader, 3 servers; got %+v", r)
	}

	// Stricter demands than this cluster meets: exit 3 with the reasons,
	// and no usage hint (the command was used right).
	code, _, errOut = c.health("--min-voters", "5", "--min-failure-tolerance", "2")
	if code != ExitUnhealthy || strings.Contains(errOut, "--help") {
		t.Fatalf("--min-voters 5: exit %d, want 3 without a usage hint\nstderr:\n%s", code, errOut)
	}
	for _, want := range []string{"rctl: min_voters: 3 voters (need >= 5)", "rctl: failure_tolerance: 3 healthy of 3 voters, quorum 2: tolerance 1 (need >= 2)"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("--min-voters 5: stderr lacks %q:\n%s", want, errOut)
		}
	}

	// Stop a follower. The leader's probe of it may be cached for up to
	// 2 s, so poll until the gate notices.
	victim := -1
	testutil.Eventually(t, 30*time.Second, func() error {
		l := c.leader()
		if l < 0 {
			return fmt.Errorf("no leader")
		}
		victim = (l + 1) % 3
		return nil
	})
	id := c.cfgs[victim].NodeID
	c.stop(victim)
	wantReason := fmt.Sprintf("rctl: voters: 1 of 3 voters not answering: %s (unreachable)", id)
	testutil.Eventually(t, 30*time.Second, func() error {
		code, out, errOut := c.health()
		if code != ExitUnhealthy {
			return fmt.Errorf("exit %d with %s stopped, want 3\nstdout:\n%s\nstderr:\n%s", code, id, out, errOut)
		}
		for _, want := range []string{wantReason, "rctl: failure_tolerance: 2 healthy of 3 voters, quorum 2: tolerance 0 (need >= 1)", "rctl: cluster is not healthy: 2 of 4 checks failed"} {
			if !strings.Contains(errOut, want) {
				return fmt.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
		return nil
	})

	// --wait that runs out while a voter is down: exit 3, same reasons.
	code, _, errOut = c.health("--wait", "1500ms", "--interval", "500ms")
	if code != ExitUnhealthy || !strings.Contains(errOut, wantReason) {
		t.Fatalf("--wait with %s down: exit %d, want 3 with %q\nstderr:\n%s", id, code, wantReason, errOut)
	}

	// Back again: --wait returns 0 once it has stayed healthy.
	c.start(victim)
	code, out, errOut = c.health("--wait", "60s", "-o", "json")
	if code != ExitOK {
		t.Fatalf("after restarting %s: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", id, code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || !r.Healthy || r.HealthyVoters != 3 {
		t.Fatalf("after restarting %s: want 3 healthy voters, got %+v (%v)", id, r, err)
	}
}

// TestOperatorHealthUsageAndErrors: bad flags are usage errors (2); no
// reachable server is an error (1), not "unhealthy".
func TestOperatorHealthUsageAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run([]string{"operator", "health", "--max-lag", "-1"}, &out, &errb); code != ExitUsage || !strings.Contains(errb.String(), "--max-lag must be >= 0") {
		t.Fatalf("--max-lag -1: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	addr := testutil.FreeAddrs(t, 1)[0] // nothing listens there
	if code := Run([]string{"operator", "health", "--addr", addr, "--timeout", "2s"}, &out, &errb); code != ExitError {
		t.Fatalf("no server: exit %d, want 1; stderr %q", code, errb.String())
	}
}

// TestJudgeHealth: the rules on hand-made answers (lag, candidates,
// non-voters, a contacted server that follows another leader).
func TestJudgeHealth(t *testing.T) {
	st := &rpc.StatusReply{ID: "a", LeaderID: "a", Term: 4}
	mem := func(id, suffrage, state string, lag int64) rpc.Member {
		return rpc.Member{ID: id, Suffrage: suffrage, State: state, Leader: state == "leader", Lag: lag}
	}
	o := healthOptions{maxLag: 64, minTolerance: 1}
	five := []rpc.Member{mem("a", "voter", "leader", 0), mem("b", "voter", "follower", 3), mem("c", "voter", "follower", 0),
		mem("d", "voter", "follower", 64), mem("e", "voter", "follower", 1)}
	for _, tc := range []struct {
		name    string
		st      *rpc.StatusReply
		members []rpc.Member
		o       healthOptions
		failed  []string // names of failed checks
		tol     int
	}{
		{"five healthy", st, five, o, nil, 2},
		{"one behind", st, append(append([]rpc.Member{}, five[:4]...), mem("e", "voter", "follower", 65)), o, []string{"lag"}, 1},
		{"two down", st, append(append([]rpc.Member{}, five[:3]...), mem("d", "voter", "unreachable", -1), mem("e", "voter", "candidate", -1)), o, []string{"voters", "failure_tolerance"}, 0},
		{"lag unknown", st, append(append([]rpc.Member{}, five[:4]...), mem("e", "voter", "follower", -1)), o, []string{"lag"}, 1},
		{"nonvoter down", st, append(append([]rpc.Member{}, five...), mem("f", "nonvoter", "unreachable", -1)), o, []string{"lag"}, 2},
		{"contacted server follows another leader", &rpc.StatusReply{ID: "b", LeaderID: "c"}, five, o, []string{"leader"}, 2},
		{"no leader", st, []rpc.Member{mem("a", "voter", "follower", 0), mem("b", "voter", "follower", 0), mem("c", "voter", "follower", 0)}, o, []string{"leader"}, 1},
		{"min voters", st, five, healthOptions{maxLag: 64, minTolerance: 1, minVoters: 6}, []string{"min_voters"}, 2},
		{"rollout wants two spare", st, five[:4], healthOptions{maxLag: 64, minTolerance: 2}, []string{"failure_tolerance"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := judgeHealth(tc.st, &rpc.MembersReply{Members: tc.members}, tc.o)
			var failed []string
			for _, c := range r.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if strings.Join(failed, ",") != strings.Join(tc.failed, ",") || r.Healthy != (len(tc.failed) == 0) || r.FailureTolerance != tc.tol {
				t.Fatalf("failed checks %v (healthy %v, tolerance %d), want %v (tolerance %d); checks %+v", failed, r.Healthy, r.FailureTolerance, tc.failed, tc.tol, r.Checks)
			}
		})
	}
}
