package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// The leader's duties run on Config.Clock. With intervals of an hour,
// nothing would happen in real time during this test: each step happens
// only because the test moves the fake clock. A node that stopped
// heartbeating is judged unreachable and its task requeued once the clock
// passes its TTL (the judge's ticker), and a finished task is retired once
// it passes the retention interval and age (the retention timer).
func TestLeaderDutiesRunOnTheInjectedClock(t *testing.T) {
	clk := &fakeClock{now: time.Now()} // tasks carry the RPC layer's real timestamps
	c := newTestClusterWith(t, 1, func(_ int, cfg *Config) {
		cfg.Clock = clk
		cfg.Liveness = LivenessConfig{MinInterval: time.Hour, MaxRate: 10000, TTLFactor: 3, TTLSlack: time.Second}
		cfg.Retention = RetentionConfig{MaxAge: time.Hour, MaxPerStatus: 1000, Interval: time.Hour}
		cfg.Placement.Disabled = true
	})
	s := c.servers[c.waitLeader(10*time.Second)]
	cl := c.client(0)
	var reg rpc.NodeRegisterReply
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: "n1", Capacity: 2, Cloud: "aws"}, &reg); err != nil {
		t.Fatal(err)
	}
	addTask(t, cl, "done")
	addTask(t, cl, "held")
	succeedsWithin(t, 10*time.Second, func() error { // the scheduler reacts to the writes, not to time
		if n := len(s.fsm.NodeTasks("n1")); n != 2 {
			return fmt.Errorf("n1 holds %d of 2 tasks", n)
		}
		return nil
	})
	report := rpc.TaskReportArgs{TaskID: "done", NodeID: "n1", Result: fsm.Result{ExitCode: 0}}
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskComplete, &report, nil); err != nil {
		t.Fatal(err)
	}

	clk.Advance(30 * time.Minute) // two judge ticks, well inside the TTL (3 h 1 s)
	if st := s.fsm.Node("n1").Status; st != fsm.NodeHealthy {
		t.Fatalf("n1 is %s half an hour into a 3 h TTL", st)
	}
	clk.Advance(3 * time.Hour)
	succeedsWithin(t, 10*time.Second, func() error {
		if st := s.fsm.Node("n1").Status; st != fsm.NodeUnreachable {
			return fmt.Errorf("n1 is %s past its TTL", st)
		}
		if tk := s.fsm.Task("held"); tk.Status != fsm.TaskPending {
			return fmt.Errorf("the dead node's task is %s, want pending", tk.Status)
		}
		if tk := s.fsm.Task("done"); tk != nil {
			return fmt.Errorf("the finished task (done an hour ago on the clock) is still there, %s", tk.Status)
		}
		return nil
	})
}
