package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// heartbeater sends heartbeats for one node until stopped, like an agent.
type heartbeater struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	last rpc.HeartbeatReply
}

func startHeartbeats(t *testing.T, cl *rpc.Client, id string, every time.Duration) *heartbeater {
	h := &heartbeater{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var r rpc.HeartbeatReply
			if err := cl.Call(ctx, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: id}, &r); err == nil {
				h.mu.Lock()
				h.last = r
				h.mu.Unlock()
			}
			cancel()
			select {
			case <-h.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	t.Cleanup(h.halt)
	return h
}

func (h *heartbeater) halt() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.wg.Wait()
}

func fastLivenessCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	addrs := freeAddrs(t, n)
	var peers []Peer
	for i, a := range addrs {
		peers = append(peers, Peer{ID: fmt.Sprintf("s%d", i+1), Address: a})
	}
	for i, a := range addrs {
		cfg := testConfig(t, peers[i].ID, a, t.TempDir())
		cfg.Peers = peers
		cfg.Liveness = LivenessConfig{MinInterval: 100 * time.Millisecond, MaxRate: 10000, TTLFactor: 3, TTLSlack: 300 * time.Millisecond}
		c.cfgs = append(c.cfgs, cfg)
	}
	for i := range c.cfgs {
		c.start(i)
	}
	t.Cleanup(c.stopAll)
	return c
}

func TestNodesGetTasksAndDeadNodesAreRequeued(t *testing.T) {
	c := fastLivenessCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	cl := rpc.NewClient(c.addrs())
	defer cl.Close()
	for _, id := range []string{"n1", "n2"} {
		var r rpc.NodeRegisterReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: id, Capacity: 3, Cloud: "aws"}, &r); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		if r.HeartbeatIntervalMS != 100 || len(r.Servers) != 3 || r.LeaderAddr == "" {
			t.Fatalf("register reply %+v", r)
		}
	}
	// A heartbeat to a follower is refused with the leader's address.
	var hb rpc.HeartbeatReply
	err := c.client((l+1)%3).Call(ctxT(t, 5*time.Second), rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: "n1"}, &hb)
	if err != nil { // the client followed not_leader to the leader
		t.Fatalf("heartbeat via follower address: %v", err)
	}
	if hb.LeaderAddr != c.cfgs[l].Bind {
		t.Fatalf("heartbeat answered by %q, want the leader %q", hb.LeaderAddr, c.cfgs[l].Bind)
	}
	conn, _ := rpc.Dial(ctxT(t, 5*time.Second), c.cfgs[(l+1)%3].Bind)
	defer conn.Close()
	err = conn.Call(ctxT(t, 5*time.Second), rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: "n1"}, nil)
	var re *rpc.Error
	if !isCode(err, rpc.CodeNotLeader) || !asErr(err, &re) || re.LeaderAddr != c.cfgs[l].Bind {
		t.Fatalf("heartbeat on a follower connection: %v, want not_leader naming %s", err, c.cfgs[l].Bind)
	}

	h1 := startHeartbeats(t, cl, "n1", 100*time.Millisecond)
	h2 := startHeartbeats(t, cl, "n2", 100*time.Millisecond)
	for i := 0; i < 3; i++ {
		addTask(t, cl, fmt.Sprintf("job%d", i))
	}
	lead := c.servers[l].FSM()
	succeedsWithin(t, 10*time.Second, func() error {
		if n := len(lead.Tasks(fsm.TaskAssigned)); n != 3 {
			return fmt.Errorf("%d of 3 tasks assigned", n)
		}
		return nil
	})
	if a, b := len(lead.NodeTasks("n1")), len(lead.NodeTasks("n2")); a+b != 3 || a == 0 || b == 0 {
		t.Fatalf("tasks not spread: n1 %d, n2 %d", a, b)
	}
	victim := lead.NodeTasks("n2")[0].ID

	// n2 dies: it stops heartbeating.
	h2.halt()
	died := time.Now()
	succeedsWithin(t, 5*time.Second, func() error {
		if n := lead.Node("n2"); n.Status != fsm.NodeUnreachable {
			return fmt.Errorf("n2 is %s", n.Status)
		}
		return nil
	})
	t.Logf("n2 unreachable %s after its last heartbeat (TTL 600ms)", time.Since(died))
	succeedsWithin(t, 5*time.Second, func() error {
		tk := lead.Task(victim)
		if tk.NodeID != "n1" || tk.Attempts != 2 {
			return fmt.Errorf("victim task %s: node %s attempts %d status %s", victim, tk.NodeID, tk.Attempts, tk.Status)
		}
		return nil
	})

	// A late report from n2 is refused; n1's reports succeed, twice.
	late := rpc.TaskReportArgs{TaskID: victim, NodeID: "n2", Result: fsm.Result{ExitCode: 0}}
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskComplete, &late, nil); !isCode(err, rpc.CodeConflict) {
		t.Fatalf("late report from the dead node: %v, want conflict", err)
	}
	ok := rpc.TaskReportArgs{TaskID: victim, NodeID: "n1", Result: fsm.Result{ExitCode: 0, Output: "done"}}
	for i := 0; i < 2; i++ {
		var r rpc.TaskReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskComplete, &ok, &r); err != nil || r.Task.Status != fsm.TaskComplete {
			t.Fatalf("report %d from the holder: %v %+v", i, err, r.Task)
		}
	}
	h1.halt()

	var list rpc.NodeListReply
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeList, &rpc.NodeListArgs{}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Nodes) != 2 || list.Nodes[0].HeartbeatAgeMS < 0 {
		t.Fatalf("node list %+v", list.Nodes)
	}
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeDeregister, &rpc.NodeIDArgs{NodeID: "n1"}, nil); err != nil {
		t.Fatal(err)
	}
	if lead.Node("n1") != nil {
		t.Fatal("n1 still registered after deregister")
	}
}

func asErr(err error, target **rpc.Error) bool {
	e, ok := err.(*rpc.Error)
	if ok {
		*target = e
	}
	return ok
}

// A drain asked of one leader holds under the next: the new leader gives
// the node no work before its first heartbeat tells it about the drain.
func TestDrainingSurvivesALeaderChange(t *testing.T) {
	c := fastLivenessCluster(t, 3)
	c.waitLeader(10 * time.Second)
	cl := c.clientWith(rpc.Credentials{})
	ctx := ctxT(t, 30*time.Second)
	if err := cl.Call(ctx, rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: "n1", Capacity: 4}, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // an agent draining: heartbeats say so
		defer close(done)
		for {
			_ = cl.Call(ctx, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: "n1", Draining: true}, nil)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for round := range 3 {
		id := fmt.Sprintf("during-drain-%d", round)
		if err := cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "sleep"}, nil); err != nil {
			t.Fatal(err)
		}
		succeedsWithin(t, 10*time.Second, func() error { // on every server before the change
			for i, s := range c.servers {
				if s.fsm.Task(id) == nil {
					return fmt.Errorf("%s has not applied %s yet", c.cfgs[i].NodeID, id)
				}
			}
			return nil
		})
		var reply rpc.TransferReply
		if err := cl.Call(ctx, rpc.MethodRaftTransfer, &rpc.TransferArgs{}, &reply); err != nil {
			t.Fatal(err)
		}
		nl := c.waitLeader(10 * time.Second)
		// Once the new leader has heard the drain, one scheduling round
		// later at the most the task would have been assigned if the
		// leader had assigned it before the heartbeat.
		succeedsWithin(t, 10*time.Second, func() error {
			if _, ok := c.servers[nl].NodeHeartbeatAge("n1"); !ok {
				return fmt.Errorf("the new leader has not heard from n1 yet")
			}
			return nil
		})
		for _, s := range c.servers {
			if tk := s.fsm.Task(id); tk == nil || tk.Status != fsm.TaskPending || len(tk.History) != 0 {
				t.Fatalf("round %d: task %s on a draining node's cluster after a leader change: %+v", round, id, tk)
			}
		}
	}
}

// A heartbeat that reaches a new leader before its leadership is
// established (agents following an election arrive within milliseconds)
// waits for it instead of answering unavailable, which would send the
// agent into backoff.
func TestHeartbeatWaitsForLeadershipToBeEstablished(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	s := c.servers[l]
	cl := rpc.NewClient([]string{c.cfgs[l].Bind})
	defer cl.Close()
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: "n1", Capacity: 1}, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := rpc.Dial(ctxT(t, 5*time.Second), c.cfgs[l].Bind) // one call, no client retries
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.leaderReady.Store(false) // as between winning the election and the barrier
	done := make(chan error, 1)
	go func() {
		var r rpc.HeartbeatReply
		done <- conn.Call(ctxT(t, 10*time.Second), rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: "n1"}, &r)
	}()
	// A status call through the same connection is answered meanwhile,
	// and the heartbeat is still waiting a while later.
	if err := conn.Call(ctxT(t, 5*time.Second), rpc.MethodStatus, &rpc.StatusArgs{}, &rpc.StatusReply{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("heartbeat answered before leadership was established: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	s.leaderReady.Store(true)
	s.leaderChanged()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("heartbeat after leadership was established: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("heartbeat still waiting 5 s after leadership was established")
	}
}
