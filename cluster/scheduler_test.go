package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// TestCandidatesPlanLikeTheWholeBacklog: the round's candidates (the
// oldest pending tasks of the groups nodes with room can take, cut at
// candidateCap) give exactly the plan the whole backlog gives, for random
// fleets, backlogs and limits.
func TestCandidatesPlanLikeTheWholeBacklog(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	clouds := []string{"", "aws", "gcp", "azure"}
	for round := range 300 {
		f := fsm.New()
		var ix uint64
		apply := func(body any) {
			t.Helper()
			ix++
			data, err := fsm.EncodeEntry(body)
			if err != nil {
				t.Fatal(err)
			}
			if res := f.Apply(&fsm.Log{Index: ix, Command: true, Data: data}); res.Err != nil {
				t.Fatalf("apply %T: %v", body, res.Err)
			}
		}
		now := int64(1_700_000_000_000_000_000)
		var nodes []*fsm.Node
		for i := range rng.IntN(6) {
			cloud := clouds[rng.IntN(3)] // never azure: its tasks have nowhere to go
			apply(&fsm.NodeRegisterEntry{ID: fmt.Sprint("n", i), Cloud: cloud, Capacity: 1 + rng.IntN(6), Time: now})
		}
		batch := &fsm.AddTasksEntry{Time: now}
		for i := range rng.IntN(300) {
			batch.Tasks = append(batch.Tasks, fsm.AddTaskEntry{ID: fmt.Sprintf("t%04d", i), Type: "x", Cloud: clouds[rng.IntN(len(clouds))]})
		}
		if len(batch.Tasks) > 0 {
			apply(batch)
		}
		// Occupy some slots.
		for _, n := range f.Nodes() {
			for _, tk := range f.Tasks(fsm.TaskPending) {
				if rng.IntN(3) == 0 && f.HeldCount(n.ID) < n.Capacity && (tk.Cloud == "" || tk.Cloud == n.Cloud) {
					apply(&fsm.AssignTaskEntry{TaskID: tk.ID, NodeID: n.ID, Time: now})
				}
			}
		}
		free := map[string]int{}
		for _, n := range f.Nodes() {
			nodes = append(nodes, n)
			if room := n.Capacity - f.HeldCount(n.ID); room > 0 {
				free[n.Cloud] += room
			}
		}
		limit := 1 + rng.IntN(12)
		all := f.Tasks(fsm.TaskPending)
		eligible := func(*fsm.Node) bool { return true }
		want := plan(all, nodes, f.HeldCount, eligible, limit)
		cands := f.OldestPending(candidateQuotas(free, limit), candidateCap(limit))
		got := plan(cands, nodes, f.HeldCount, eligible, limit)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: free %v, limit %d: plan of %d candidates %v, of the whole backlog (%d) %v", round, free, limit, len(cands), got, len(all), want)
		}
		if len(cands) > candidateCap(limit) {
			t.Fatalf("round %d: %d candidates, cap %d", round, len(cands), candidateCap(limit))
		}
	}
}

// roundRecord is one "scheduler: round" debug line.
type roundRecord struct {
	node       string
	tasksIndex uint64
	candidates int
	assigned   int
}

// roundLog collects the scheduler's round lines from every server's
// logger, and wakes a waiter on each.
type roundLog struct {
	mu     sync.Mutex
	rounds []roundRecord
	wake   chan struct{}
}

// next returns the first round at or after position *from logged by node,
// waiting (on the log itself, not a timer) until one arrives or ctx ends.
func (rl *roundLog) next(ctx context.Context, node string, from *int) (roundRecord, error) {
	for {
		rl.mu.Lock()
		for ; *from < len(rl.rounds); *from++ {
			if r := rl.rounds[*from]; r.node == node {
				*from++
				rl.mu.Unlock()
				return r, nil
			}
		}
		wake := rl.wake
		rl.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return roundRecord{}, fmt.Errorf("no scheduling round logged by %s: %w", node, ctx.Err())
		}
	}
}

// roundHandler passes records to next and records the round lines.
type roundHandler struct {
	next slog.Handler
	log  *roundLog
	node string
}

func (h *roundHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelDebug
}

func (h *roundHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "scheduler: round" {
		rec := roundRecord{node: h.node}
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "tasks_index":
				rec.tasksIndex = a.Value.Uint64()
			case "candidates":
				rec.candidates = int(a.Value.Int64())
			case "assigned":
				rec.assigned = int(a.Value.Int64())
			}
			return true
		})
		h.log.mu.Lock()
		h.log.rounds = append(h.log.rounds, rec)
		close(h.log.wake)
		h.log.wake = make(chan struct{})
		h.log.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *roundHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.next = h.next.WithAttrs(as)
	for _, a := range as {
		if a.Key == "node_id" {
			n.node = a.Value.String()
		}
	}
	return &n
}

func (h *roundHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.next = h.next.WithGroup(name)
	return &n
}

// TestSchedulerIsNotStarvedByAConstrainedBacklog: 100,000 pending tasks
// that must run in GCP, where there is no node, do not keep a new
// unconstrained task from the healthy AWS node: the first scheduling
// round that sees the task assigns it, reading it alone.
func TestSchedulerIsNotStarvedByAConstrainedBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("adds 100,000 tasks")
	}
	rl := &roundLog{wake: make(chan struct{})}
	c := newTestClusterWith(t, 3, func(_ int, cfg *Config) {
		cfg.Logger = slog.New(&roundHandler{next: cfg.Logger.Handler(), log: rl})
	})
	l := c.waitLeader(10 * time.Second)
	leaderID := c.cfgs[l].NodeID
	cl := c.client(l)

	const backlog, batch = 100_000, fsm.MaxBatch
	errs := make(chan error, backlog/batch)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for start := 0; start < backlog; start += batch {
		args := rpc.TaskAddBatchArgs{Tasks: make([]rpc.TaskAddArgs, 0, batch)}
		for i := start; i < start+batch; i++ {
			args.Tasks = append(args.Tasks, rpc.TaskAddArgs{ID: fmt.Sprintf("gcp-%06d", i), Type: "sleep", Cloud: "gcp"})
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := cl.Call(ctxT(t, time.Minute), rpc.MethodTaskAddBatch, &args, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("add batch: %v", err)
	}
	// Under load (-race, a busy machine) leadership may have moved while
	// the backlog went in: watch the rounds of the leader now.
	l = c.waitLeader(30 * time.Second)
	leaderID = c.cfgs[l].NodeID
	cl = c.client(l)
	lead := c.servers[l].FSM()
	if n := lead.PendingCount("gcp"); n != backlog {
		t.Fatalf("%d gcp tasks pending, want %d", n, backlog)
	}

	var reg rpc.NodeRegisterReply
	if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: "aws-1", Cloud: "aws", Capacity: 4}, &reg); err != nil {
		t.Fatal(err)
	}
	startHeartbeats(t, cl, "aws-1", time.Duration(reg.HeartbeatIntervalMS)*time.Millisecond)

	// Rounds from here on see the node's free slots.
	rl.mu.Lock()
	from := len(rl.rounds)
	rl.mu.Unlock()
	task := addTask(t, cl, "fresh")
	added := task.CreateIndex

	// The first round of the leader that read the manifest at or after the
	// add: it (or, if the task was visible earlier, a round before it)
	// assigned the task.
	ctx := ctxT(t, 30*time.Second)
	var first roundRecord
	for {
		r, err := rl.next(ctx, leaderID, &from)
		if err != nil {
			t.Fatal(err)
		}
		if r.tasksIndex >= added {
			first = r
			break
		}
	}
	got := lead.Task("fresh")
	if got.Status != fsm.TaskAssigned || got.NodeID != "aws-1" {
		t.Fatalf("after the first round that saw it, task fresh is %s on %q (round %+v)", got.Status, got.NodeID, first)
	}
	assignedAt := got.History[len(got.History)-1].Index
	if assignedAt > first.tasksIndex && (first.assigned != 1 || first.candidates != 1) {
		t.Fatalf("round %+v did not assign the task alone (assigned at index %d)", first, assignedAt)
	}
	t.Logf("task added at index %d, assigned at %d by the round that read index %d (%d candidate, %d assigned); %d gcp tasks still pending",
		added, assignedAt, first.tasksIndex, first.candidates, first.assigned, lead.PendingCount("gcp"))
	if n := lead.PendingCount("gcp"); n != backlog {
		t.Fatalf("%d gcp tasks pending, want %d", n, backlog)
	}
}
