package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

func addTask(t *testing.T, c *rpc.Client, id string) *fsm.Task {
	t.Helper()
	var reply rpc.TaskReply
	if err := c.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "sleep"}, &reply); err != nil {
		t.Fatalf("add task %s: %v", id, err)
	}
	return reply.Task
}

func TestElectsLeaderWithin10s(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d servers", n), func(t *testing.T) {
			start := time.Now()
			c := newTestCluster(t, n)
			l := c.waitLeader(10 * time.Second)
			t.Logf("%d servers: leader %s ready after %s", n, c.cfgs[l].NodeID, time.Since(start))
		})
	}
}

func TestLeaderLossNewLeaderAndWriteWithin5s(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	addTask(t, c.client((l+1)%3), "before")

	killed := time.Now()
	c.stop(l)
	cl := rpc.NewClient(c.addrs())
	defer cl.Close()
	var reply rpc.TaskReply
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "after", Type: "sleep"}, &reply); err != nil {
		t.Fatalf("no committed write within 5s of losing the leader: %v", err)
	}
	took := time.Since(killed)
	t.Logf("leader %s stopped; write committed after %s", c.cfgs[l].NodeID, took)
	if took > 5*time.Second {
		t.Fatalf("failover write took %s, want < 5s", took)
	}
	nl := c.waitLeader(5 * time.Second)
	if nl == l {
		t.Fatalf("stopped server %d still leads", l)
	}
}

func TestRestartRecoversLogAndState(t *testing.T) {
	c := newTestCluster(t, 3)
	for i := range c.cfgs { // small threshold: restarts go through snapshots too
		c.cfgs[i].SnapshotThreshold, c.cfgs[i].TrailingLogs = 16, 4
	}
	l := c.waitLeader(10 * time.Second)
	cl := c.client(l)
	for i := 0; i < 40; i++ {
		addTask(t, cl, fmt.Sprintf("t%02d", i))
	}

	t.Run("follower restart catches up", func(t *testing.T) {
		f := (l + 1) % 3
		c.stop(f)
		for i := 40; i < 50; i++ {
			addTask(t, c.client(c.waitLeader(10*time.Second)), fmt.Sprintf("t%02d", i))
		}
		c.start(f)
		succeedsWithin(t, 10*time.Second, func() error {
			if n := len(c.servers[f].FSM().Tasks("")); n != 50 {
				return fmt.Errorf("restarted follower has %d tasks, want 50", n)
			}
			return nil
		})
	})

	t.Run("whole cluster restart recovers from disk", func(t *testing.T) {
		want := make([]byte, 0)
		c.waitLeader(10 * time.Second)
		for i := range c.servers {
			succeedsWithin(t, 10*time.Second, func() error {
				if n := len(c.servers[i].FSM().Tasks("")); n != 50 {
					return fmt.Errorf("%s has %d tasks", c.cfgs[i].NodeID, n)
				}
				return nil
			})
		}
		c.stopAll()
		for i := range c.cfgs {
			c.start(i)
		}
		c.waitLeader(10 * time.Second)
		for i := range c.servers {
			succeedsWithin(t, 10*time.Second, func() error {
				if n := len(c.servers[i].FSM().Tasks("")); n != 50 {
					return fmt.Errorf("%s has %d tasks after restart, want 50", c.cfgs[i].NodeID, n)
				}
				return nil
			})
		}
		_ = want
		// And the log is still writable.
		addTask(t, c.client(c.waitLeader(10*time.Second)), "after-restart")
	})
}

func TestJoinAndRemovePeer(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	addTask(t, c.client(l), "seen-by-joiner")

	addr := freeAddrs(t, 1)[0]
	cfg := testConfig(t, "s4", addr, t.TempDir())
	cfg.Join = []string{"127.0.0.1:1", c.cfgs[(l+1)%3].Bind} // the first is dead: the joiner moves on
	cfg.NonVoter = true
	cfg.Cloud = "gcp"
	c.cfgs = append(c.cfgs, cfg)
	c.start(3)

	cl := c.client(l)
	succeedsWithin(t, 15*time.Second, func() error {
		var m rpc.MembersReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodMembers, &rpc.MembersArgs{}, &m); err != nil {
			return err
		}
		for _, mm := range m.Members {
			if mm.ID == "s4" {
				if mm.Suffrage != "nonvoter" || mm.Cloud != "gcp" {
					return fmt.Errorf("s4 listed as %+v, want nonvoter in gcp", mm)
				}
				return nil
			}
		}
		return fmt.Errorf("s4 not in members yet")
	})
	succeedsWithin(t, 10*time.Second, func() error {
		if c.servers[3].FSM().Task("seen-by-joiner") == nil {
			return fmt.Errorf("joiner has not replicated the manifest")
		}
		return nil
	})

	if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodRaftRemovePeer, &rpc.RemovePeerArgs{ID: "s4"}, nil); err != nil {
		t.Fatalf("remove-peer s4: %v", err)
	}
	var peers rpc.RaftPeersReply
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodRaftPeers, struct{}{}, &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers.Peers) != 3 {
		t.Fatalf("after remove-peer: %d peers %+v, want 3", len(peers.Peers), peers.Peers)
	}
	err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodRaftRemovePeer, &rpc.RemovePeerArgs{ID: "nope"}, nil)
	if !isCode(err, rpc.CodeNotFound) {
		t.Fatalf("remove-peer of an unknown id: got %v, want not_found", err)
	}
}

func TestTransferLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	target := c.cfgs[(l+2)%3].NodeID
	var reply rpc.TransferReply
	if err := c.client((l+1)%3).Call(ctxT(t, 10*time.Second), rpc.MethodRaftTransfer, &rpc.TransferArgs{ID: target}, &reply); err != nil {
		t.Fatalf("transfer-leader: %v", err)
	}
	if reply.LeaderID != target {
		t.Fatalf("new leader %q, want %q", reply.LeaderID, target)
	}
	if nl := c.waitLeader(10 * time.Second); c.cfgs[nl].NodeID != target {
		t.Fatalf("cluster settled on %s, want %s", c.cfgs[nl].NodeID, target)
	}
}

func TestGeometryWarning(t *testing.T) {
	m := func(cloud string, n int, suffrage string) []rpc.Member {
		var out []rpc.Member
		for i := 0; i < n; i++ {
			out = append(out, rpc.Member{Cloud: cloud, Suffrage: suffrage})
		}
		return out
	}
	cases := []struct {
		name    string
		members []rpc.Member
		warn    bool
	}{
		{"3+3 cannot lose a cloud", append(m("aws", 3, "voter"), m("gcp", 3, "voter")...), true},
		{"3+2 keeps the big side", append(m("aws", 3, "voter"), m("gcp", 2, "voter")...), false},
		{"3+2 voters plus a gcp nonvoter", append(append(m("aws", 3, "voter"), m("gcp", 2, "voter")...), m("gcp", 1, "nonvoter")...), false},
		{"one cloud", m("aws", 5, "voter"), false},
		{"2+2+1 survives any cloud", append(append(m("aws", 2, "voter"), m("gcp", 2, "voter")...), m("azure", 1, "voter")...), false},
		{"2+2", append(m("aws", 2, "voter"), m("gcp", 2, "voter")...), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := rpc.GeometryWarnings(tc.members)
			if (len(w) > 0) != tc.warn {
				t.Fatalf("warnings %q, want warning=%v", w, tc.warn)
			}
		})
	}
}
