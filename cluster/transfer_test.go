package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/rpc"
)

func transfer(t *testing.T, c *testCluster, target string) (*rpc.TransferReply, error) {
	t.Helper()
	var reply rpc.TransferReply
	err := c.clientWith(rpc.Credentials{}).Call(ctxT(t, 15*time.Second), rpc.MethodRaftTransfer, &rpc.TransferArgs{ID: target}, &reply)
	return &reply, err
}

// stableFor fails if the leader or term of server i changes during d: a
// transfer must not bounce back.
func stableFor(t *testing.T, s *Server, d time.Duration) {
	t.Helper()
	_, id := s.raft.LeaderWithID()
	term := s.raft.CurrentTerm()
	deadline := time.After(d)
	for {
		watch := s.LeaderWatch()
		select {
		case <-watch:
			// The watch also fires when leadership becomes established:
			// only a different leader or term is a move.
			if _, now := s.raft.LeaderWithID(); now != id || s.raft.CurrentTerm() != term {
				t.Fatalf("leadership moved again after the transfer: %s (term %d) -> %q (term %d)", id, term, now, s.raft.CurrentTerm())
			}
		case <-deadline:
			if got := s.raft.CurrentTerm(); got != term {
				t.Fatalf("term moved from %d to %d after the transfer", term, got)
			}
			return
		}
	}
}

func TestTransferLeaderMovesOnceAndStays(t *testing.T) {
	c := newTestCluster(t, 3)
	for round := range 4 {
		l := c.waitLeader(10 * time.Second)
		term := c.servers[l].raft.CurrentTerm()
		reply, err := transfer(t, c, "")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if reply.LeaderID == c.cfgs[l].NodeID {
			t.Fatalf("round %d: leadership stayed with %s", round, reply.LeaderID)
		}
		nl := c.waitLeader(10 * time.Second)
		if got := c.servers[nl].raft.CurrentTerm(); got != term+1 {
			t.Fatalf("round %d: term %d -> %d, want one election", round, term, got)
		}
		stableFor(t, c.servers[nl], time.Second)
	}
}

func TestTransferLeaderSkipsDeadVoters(t *testing.T) {
	c := newTestCluster(t, 3)
	for round := range 3 {
		l := c.waitLeader(10 * time.Second)
		dead := (l + 1) % 3
		c.stop(dead)
		// Under load the leader may have moved meanwhile: the one live
		// voter other than the current leader is the only right target.
		l = c.waitLeader(10 * time.Second)
		want := ""
		for i, s := range c.servers {
			if s != nil && i != l {
				want = c.cfgs[i].NodeID
			}
		}
		reply, err := transfer(t, c, "")
		if err != nil {
			t.Fatalf("round %d, %s down: %v", round, c.cfgs[dead].NodeID, err)
		}
		if reply.LeaderID != want {
			t.Fatalf("round %d: leadership went from %s to %s, want the live voter %s", round, c.cfgs[l].NodeID, reply.LeaderID, want)
		}
		c.start(dead)
	}
}

func TestTransferLeaderWithNoLiveVoterSaysWhy(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	for i := range c.servers {
		if i != l {
			c.stop(i)
		}
	}
	_, err := transfer(t, c, "")
	if !isCode(err, rpc.CodeConflict) || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("transfer with every other voter down: %v, want conflict naming why", err)
	}
	if c.servers[l].raft.State() != raft.Leader {
		t.Fatal("the refused transfer moved leadership")
	}
	// A named target that is down: the same.
	_, err = transfer(t, c, c.cfgs[(l+1)%3].NodeID)
	if !isCode(err, rpc.CodeConflict) {
		t.Fatalf("transfer to a dead voter: %v, want conflict", err)
	}
}

func TestStoppingLeaderHandsOverBeforeItExits(t *testing.T) {
	c := newTestClusterWith(t, 3, func(_ int, cfg *Config) { cfg.TransferOnShutdown = true })
	for round := range 2 {
		l := c.waitLeader(10 * time.Second)
		term := c.servers[l].raft.CurrentTerm()
		c.stop(l)
		// Shutdown returned: a successor already leads, in the next term,
		// with no election timeout paid.
		leaders := 0
		for i, s := range c.servers {
			if s != nil && s.raft.State() == raft.Leader {
				leaders++
				if got := s.raft.CurrentTerm(); got != term+1 {
					t.Fatalf("round %d: new leader %s in term %d, want %d", round, c.cfgs[i].NodeID, got, term+1)
				}
			}
		}
		if leaders != 1 {
			t.Fatalf("round %d: %d leaders when the stopped leader's Shutdown returned, want 1 (a hand-over)", round, leaders)
		}
		c.start(l)
	}
}

// Status.Get with known_leader (how agents follow elections): a follower
// answers at once when it knows a leader other than the one named, and
// otherwise holds the call until a new leader is elected, then names it.
func TestStatusKnownLeaderWaitsForANewLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	old := c.cfgs[l].NodeID
	f := (l + 1) % 3
	fc := rpc.NewClient([]string{c.cfgs[f].Bind})
	defer fc.Close()

	var now rpc.StatusReply
	if err := fc.Call(ctxT(t, 5*time.Second), rpc.MethodStatus, &rpc.StatusArgs{KnownLeader: "someone-else", MaxWaitMS: 60_000}, &now); err != nil {
		t.Fatal(err)
	}
	if now.LeaderID != old {
		t.Fatalf("known_leader of another id: got leader %q, want %s at once", now.LeaderID, old)
	}

	type result struct {
		r   rpc.StatusReply
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		var r rpc.StatusReply
		err := fc.Call(ctxT(t, 30*time.Second), rpc.MethodStatus, &rpc.StatusArgs{KnownLeader: old, MaxWaitMS: 60_000}, &r)
		done <- result{r, err, time.Now()}
	}()
	// The call must still be waiting after the follower has answered
	// other calls: a plain status call through the same connection.
	var probe rpc.StatusReply
	if err := fc.Call(ctxT(t, 5*time.Second), rpc.MethodStatus, &rpc.StatusArgs{}, &probe); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("known_leader=%s answered while %s still leads: %+v, %v", old, old, r.r, r.err)
	default:
	}
	reply, err := transfer(t, c, "")
	if err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("known_leader call still waiting 20 s after the transfer")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.r.LeaderID == old || r.r.LeaderID == "" || r.r.LeaderID != reply.LeaderID {
		t.Fatalf("known_leader=%s woke with leader %q, want the new leader %s", old, r.r.LeaderID, reply.LeaderID)
	}
	if r.r.LeaderAddr == "" {
		t.Fatalf("reply names no leader address: %+v", r.r)
	}
}
