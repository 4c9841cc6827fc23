package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

func TestWriteToFollowerIsForwarded(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	f := (l + 1) % 3
	task := addTask(t, c.client(f), "via-follower")
	if task.ID != "via-follower" || task.Status != "pending" {
		t.Fatalf("got %+v", task)
	}
	if c.servers[l].FSM().Task("via-follower") == nil {
		t.Fatal("the leader does not have the task written through a follower")
	}
	// Retrying the same add is a no-op; different content is a conflict.
	again := addTask(t, c.client(f), "via-follower")
	if again.ModifyIndex != task.ModifyIndex {
		t.Fatalf("re-add changed the task: index %d → %d", task.ModifyIndex, again.ModifyIndex)
	}
	err := c.client(f).Call(ctxT(t, 5*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "via-follower", Type: "shell"}, nil)
	if !isCode(err, rpc.CodeConflict) {
		t.Fatalf("re-add with other content: got %v, want conflict", err)
	}
}

func TestBadInputGetsInvalidArgument(t *testing.T) {
	c := newTestCluster(t, 1)
	c.waitLeader(10 * time.Second)
	cl := c.client(0)
	cases := []struct {
		name   string
		method string
		args   any
		want   rpc.Code
	}{
		{"unknown method", "Task.Explode", struct{}{}, rpc.CodeInvalidArgument},
		{"args of the wrong shape", rpc.MethodTaskAdd, []int{1, 2, 3}, rpc.CodeInvalidArgument},
		{"missing type", rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "x"}, rpc.CodeInvalidArgument},
		{"bad id", rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "has space", Type: "sleep"}, rpc.CodeInvalidArgument},
		{"bad status filter", rpc.MethodTaskList, &rpc.TaskListArgs{Status: "sleeping"}, rpc.CodeInvalidArgument},
		{"negative max wait", rpc.MethodTaskList, &rpc.TaskListArgs{QueryOptions: rpc.QueryOptions{MinIndex: 1, MaxWaitMS: -1}}, rpc.CodeInvalidArgument},
		{"get without id", rpc.MethodTaskGet, &rpc.TaskGetArgs{}, rpc.CodeInvalidArgument},
		{"get unknown", rpc.MethodTaskGet, &rpc.TaskGetArgs{ID: "nope"}, rpc.CodeNotFound},
		{"cancel unknown", rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: "nope"}, rpc.CodeNotFound},
		{"join without address", rpc.MethodRaftJoin, &rpc.JoinArgs{ID: "x"}, rpc.CodeInvalidArgument},
		{"join with an upper-case cloud", rpc.MethodRaftJoin, &rpc.JoinArgs{ID: "x", Address: "127.0.0.1:1", Voter: true, Cloud: "AWS"}, rpc.CodeInvalidArgument},
		{"join with a bad region", rpc.MethodRaftJoin, &rpc.JoinArgs{ID: "y", Address: "127.0.0.1:2", Region: "us east"}, rpc.CodeInvalidArgument},
	}
	before := c.servers[0].FSM().Indexes()
	cfgBefore := c.servers[0].raft.GetConfiguration().Configuration().Servers
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := cl.Call(ctxT(t, 5*time.Second), tc.method, tc.args, nil)
			if !isCode(err, tc.want) {
				t.Fatalf("got %v (%s), want %s", err, rpc.CodeOf(err), tc.want)
			}
		})
	}
	if after := c.servers[0].FSM().Indexes(); after.Tasks != before.Tasks || after.Servers != before.Servers {
		t.Fatalf("refused calls changed the manifest: %+v → %+v", before, after)
	}
	// A refused join must not have touched the raft configuration either.
	if after := c.servers[0].raft.GetConfiguration().Configuration().Servers; len(after) != len(cfgBefore) {
		t.Fatalf("refused joins changed the raft configuration: %v → %v", cfgBefore, after)
	}
}

func TestPipelinedCallsOnOneConnection(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	conn, err := rpc.Dial(ctxT(t, 5*time.Second), c.cfgs[(l+1)%3].Bind)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reply rpc.TaskReply
			id := fmt.Sprintf("p%03d", i)
			if err := conn.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "sleep"}, &reply); err != nil {
				errs <- err
				return
			}
			if reply.Task.ID != id {
				errs <- fmt.Errorf("call for %s answered with %s", id, reply.Task.ID)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(c.servers[l].FSM().Tasks("")); got != n {
		t.Fatalf("leader has %d tasks, want %d", got, n)
	}
}

func TestBlockingQuery(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	cl := c.client((l + 1) % 3)
	addTask(t, cl, "first")
	var list rpc.TaskListReply
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{}, &list); err != nil {
		t.Fatal(err)
	}

	t.Run("wakes on change", func(t *testing.T) {
		done := make(chan error, 1)
		var woke rpc.TaskListReply
		go func() {
			done <- cl.Call(ctxT(t, 20*time.Second), rpc.MethodTaskList,
				&rpc.TaskListArgs{QueryOptions: rpc.QueryOptions{MinIndex: list.Index, MaxWaitMS: 15_000}}, &woke)
		}()
		select {
		case err := <-done:
			t.Fatalf("blocking query returned before any change: %v index %d", err, woke.Index)
		case <-time.After(300 * time.Millisecond):
		}
		addTask(t, c.client(l), "second")
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("blocking query did not wake on a change")
		}
		if woke.Index <= list.Index || len(woke.Tasks) != 2 {
			t.Fatalf("woke with index %d (was %d) and %d tasks, want a higher index and 2 tasks", woke.Index, list.Index, len(woke.Tasks))
		}
	})

	t.Run("times out with the same index", func(t *testing.T) {
		var cur rpc.TaskListReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{}, &cur); err != nil {
			t.Fatal(err)
		}
		var r rpc.TaskListReply
		err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList,
			&rpc.TaskListArgs{QueryOptions: rpc.QueryOptions{MinIndex: cur.Index, MaxWaitMS: 200}}, &r)
		if err != nil || r.Index != cur.Index {
			t.Fatalf("got index %d err %v, want index %d", r.Index, err, cur.Index)
		}
	})
}

// A follower cut off from the majority keeps answering stale reads from
// its own state, but never answers a linearizable read or takes a write.
func TestIsolatedFollowerStaleVsLinearizable(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	f := (l + 1) % 3
	addTask(t, c.client(l), "old")
	succeedsWithin(t, 5*time.Second, func() error {
		if c.servers[f].FSM().Task("old") == nil {
			return fmt.Errorf("follower has not replicated yet")
		}
		return nil
	})
	c.isolate(f, true)
	addTask(t, c.client(l), "new") // the majority keeps committing

	fc := c.client(f)
	var stale rpc.TaskListReply
	if err := fc.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{QueryOptions: rpc.QueryOptions{Stale: true}}, &stale); err != nil {
		t.Fatalf("stale read on the isolated follower: %v", err)
	}
	if len(stale.Tasks) != 1 {
		t.Fatalf("isolated follower's stale read shows %d tasks, want its own 1", len(stale.Tasks))
	}

	for _, call := range []struct {
		name   string
		method string
		args   any
	}{
		{"linearizable read", rpc.MethodTaskList, &rpc.TaskListArgs{}},
		{"write", rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "refused", Type: "sleep"}},
	} {
		t.Run(call.name, func(t *testing.T) {
			start := time.Now()
			var r rpc.TaskListReply
			err := fc.Call(ctxT(t, 3*time.Second), call.method, call.args, &r)
			if err == nil {
				t.Fatalf("isolated follower answered a %s (%d tasks); want an error", call.name, len(r.Tasks))
			}
			want := []rpc.Code{rpc.CodeUnavailable, rpc.CodeNotLeader, rpc.CodeDeadlineExceeded}
			if !isCode(err, want...) {
				t.Fatalf("got %v (%s), want one of %s", err, rpc.CodeOf(err), codes(want...))
			}
			if took := time.Since(start); took > 3500*time.Millisecond {
				t.Fatalf("refusal took %s, past the 3s request deadline", took)
			}
		})
	}

	c.isolate(f, false)
	succeedsWithin(t, 15*time.Second, func() error {
		if c.servers[f].FSM().Task("new") == nil {
			return fmt.Errorf("healed follower has not caught up")
		}
		return nil
	})
}

// A leader cut off from the majority steps down; the majority elects a new
// leader; writes and linearizable reads on the old leader are refused.
func TestIsolatedLeaderStepsDown(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	addTask(t, c.client(l), "before")
	c.isolate(l, true)

	old := c.client(l)
	start := time.Now()
	err := old.Call(ctxT(t, 5*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "to-old-leader", Type: "sleep"}, nil)
	if err == nil {
		t.Fatal("an isolated leader acknowledged a write")
	}
	if took := time.Since(start); took > 5500*time.Millisecond {
		t.Fatalf("refusal took %s, past the request deadline", took)
	}
	var r rpc.TaskGetReply
	if err := old.Call(ctxT(t, 3*time.Second), rpc.MethodTaskGet, &rpc.TaskGetArgs{ID: "before"}, &r); err == nil {
		t.Fatal("an isolated old leader answered a linearizable read")
	}

	// The majority side has a new leader and keeps working.
	var others []string
	for i := range c.cfgs {
		if i != l {
			others = append(others, c.cfgs[i].Bind)
		}
	}
	maj := rpc.NewClient(others)
	defer maj.Close()
	if err := maj.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "majority", Type: "sleep"}, nil); err != nil {
		t.Fatalf("majority side refused a write: %v", err)
	}
	if c.servers[l].raft.State().String() == "Leader" {
		t.Fatal("isolated leader still believes it leads")
	}

	c.isolate(l, false)
	succeedsWithin(t, 15*time.Second, func() error {
		if c.servers[l].FSM().Task("majority") == nil {
			return fmt.Errorf("old leader has not caught up after healing")
		}
		return nil
	})
}

func TestAddBatchIsOneEntryAndIdempotent(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	cl := c.client((l + 1) % 3) // through a follower: forwarded
	var args rpc.TaskAddBatchArgs
	for i := 0; i < 250; i++ {
		args.Tasks = append(args.Tasks, rpc.TaskAddArgs{ID: fmt.Sprintf("b%03d", i), Type: "sleep"})
	}
	args.Tasks = append(args.Tasks, rpc.TaskAddArgs{Type: "sleep"}) // id generated
	var r rpc.TaskBatchReply
	if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAddBatch, &args, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Tasks) != 251 || r.Tasks[250].ID == "" {
		t.Fatalf("batch reply holds %d tasks", len(r.Tasks))
	}
	for _, tk := range r.Tasks {
		if tk.CreateIndex != r.Index {
			t.Fatalf("task %s created at %d, want every task in the one entry %d", tk.ID, tk.CreateIndex, r.Index)
		}
	}
	// Resending the same batch (ids fixed now) changes nothing.
	args.Tasks[250].ID = r.Tasks[250].ID
	var again rpc.TaskBatchReply
	if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAddBatch, &args, &again); err != nil {
		t.Fatal(err)
	}
	if got := len(c.servers[l].FSM().Tasks("")); got != 251 {
		t.Fatalf("%d tasks after a resend, want 251", got)
	}
	// One bad element refuses the whole batch.
	bad := rpc.TaskAddBatchArgs{Tasks: []rpc.TaskAddArgs{{ID: "fine", Type: "sleep"}, {ID: "not fine", Type: "sleep"}}}
	if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAddBatch, &bad, nil); !isCode(err, rpc.CodeInvalidArgument) {
		t.Fatalf("bad batch: %v, want invalid_argument", err)
	}
	if c.servers[l].FSM().Task("fine") != nil {
		t.Fatal("a refused batch added its good element")
	}
}

func TestMembersShowTheManifestLabelsOnEveryServer(t *testing.T) {
	c := newTestClusterWith(t, 3, func(i int, cfg *Config) { cfg.Cloud, cfg.Region = "local", "dev" })
	l := c.waitLeader(10 * time.Second)
	cl := c.client(l)
	c.logMark() // every server has recorded its own labels
	// An operator records other labels for a live server.
	lbl := fsm.Server{ID: c.cfgs[(l+1)%3].NodeID, Address: c.cfgs[(l+1)%3].Bind, Cloud: "aws", Region: "conf-region"}
	succeedsWithin(t, 10*time.Second, func() error {
		return cl.Call(ctxT(t, 10*time.Second), rpc.MethodServerLabels, &rpc.ServerLabelsArgs{Server: lbl}, nil)
	})
	succeedsWithin(t, 10*time.Second, func() error {
		for i := range c.servers {
			for _, stale := range []bool{true, false} {
				var reply rpc.MembersReply
				if err := c.client(i).Call(ctxT(t, 10*time.Second), rpc.MethodMembers, &rpc.MembersArgs{Stale: stale}, &reply); err != nil {
					return err
				}
				for _, m := range reply.Members {
					want := [2]string{"local", "dev"}
					if m.ID == lbl.ID {
						want = [2]string{"aws", "conf-region"}
					}
					if got := [2]string{m.Cloud, m.Region}; got != want {
						return fmt.Errorf("server %s (stale %v) shows %s as %v, want %v", c.cfgs[i].NodeID, stale, m.ID, got, want)
					}
				}
			}
		}
		return nil
	})
}

// Operator.RaftPeers names the index of the latest configuration change
// (raft's own GetConfiguration reports 0): above 0 from the bootstrap
// on, at least a removal's index once applied, and kept over a restart.
func TestRaftPeersIndexFollowsConfigurationChanges(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	peersIndex := func(i int) uint64 {
		var r rpc.RaftPeersReply
		if err := c.client(i).Call(ctxT(t, 5*time.Second), rpc.MethodRaftPeers, nil, &r); err != nil {
			t.Fatal(err)
		}
		return r.Index
	}
	for i := range c.servers {
		succeedsWithin(t, 10*time.Second, func() error {
			if got := peersIndex(i); got == 0 {
				return fmt.Errorf("%s: RaftPeers index 0 after the bootstrap", c.cfgs[i].NodeID)
			}
			return nil
		})
	}
	gone := (l + 1) % 3
	var rm rpc.Empty
	if err := c.client(l).Call(ctxT(t, 10*time.Second), rpc.MethodRaftRemovePeer, &rpc.RemovePeerArgs{ID: c.cfgs[gone].NodeID}, &rm); err != nil {
		t.Fatal(err)
	}
	c.stop(gone)
	other := 3 - l - gone
	for _, i := range []int{l, other} {
		succeedsWithin(t, 10*time.Second, func() error {
			if got := peersIndex(i); got < rm.Index {
				return fmt.Errorf("%s: RaftPeers index %d, want ≥ the removal's %d", c.cfgs[i].NodeID, got, rm.Index)
			}
			return nil
		})
	}
	// A restarted server applies its log again as it catches up.
	c.stop(other)
	c.start(other)
	succeedsWithin(t, 10*time.Second, func() error {
		if got := peersIndex(other); got < rm.Index {
			return fmt.Errorf("after a restart %s: RaftPeers index %d, want ≥ %d", c.cfgs[other].NodeID, got, rm.Index)
		}
		return nil
	})
}
