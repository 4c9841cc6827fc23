package cluster

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// addBatches adds tasks ids prefix+[from,to) in Task.AddBatch calls of
// fsm.MaxBatch; every third task is of type "other", the rest "sleep".
func addBatches(t *testing.T, cl *rpc.Client, prefix string, from, to int) {
	t.Helper()
	for start := from; start < to; start += fsm.MaxBatch {
		args := rpc.TaskAddBatchArgs{}
		for i := start; i < min(start+fsm.MaxBatch, to); i++ {
			typ := "sleep"
			if i%3 == 0 {
				typ = "other"
			}
			args.Tasks = append(args.Tasks, rpc.TaskAddArgs{ID: fmt.Sprintf("%s%06d", prefix, i), Type: typ, Cloud: "nowhere"})
		}
		if err := cl.Call(ctxT(t, time.Minute), rpc.MethodTaskAddBatch, &args, nil); err != nil {
			t.Fatalf("add batch at %d: %v", start, err)
		}
	}
}

// alter changes the base64 character at i to another one.
func alter(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func cmpListed(a, b *fsm.Task) int {
	if c := cmp.Compare(a.CreateIndex, b.CreateIndex); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// walkTaskList pages through Task.List with args (Cursor reset) and
// returns every task, checking the order within and across pages.
func walkTaskList(t *testing.T, cl *rpc.Client, args rpc.TaskListArgs) (tasks []*fsm.Task, pages int) {
	t.Helper()
	args.Cursor = ""
	var prev *fsm.Task
	for {
		var r rpc.TaskListReply
		if err := cl.Call(ctxT(t, 30*time.Second), rpc.MethodTaskList, &args, &r); err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		limit := cmp.Or(args.Limit, rpc.DefaultTaskListLimit)
		if len(r.Tasks) > limit {
			t.Fatalf("page %d holds %d tasks, limit %d", pages, len(r.Tasks), limit)
		}
		if len(r.Counts) != len(fsm.TaskStatuses) {
			t.Fatalf("page %d: counts %v", pages, r.Counts)
		}
		for _, tk := range r.Tasks {
			if prev != nil && (cmpListed(prev, tk) >= 0) != args.Reverse {
				t.Fatalf("page %d: %s (%d) listed after %s (%d), reverse=%v", pages, tk.ID, tk.CreateIndex, prev.ID, prev.CreateIndex, args.Reverse)
			}
			prev = tk
		}
		tasks = append(tasks, r.Tasks...)
		if r.NextCursor == "" {
			return tasks, pages
		}
		args.Cursor = r.NextCursor
	}
}

// TestTaskListPagesUnderChange walks 25,000 tasks in pages of 1,000
// (oldest first, newest first, and only pending ones) through a follower
// while other clients add tasks, cancel tasks and retire the cancelled
// ones: every task present for the whole walk (and, for the status walk,
// pending throughout) is listed exactly once, in order, and no task
// twice.
func TestTaskListPagesUnderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("adds 25,000 tasks")
	}
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	const initial = 25_000
	addBatches(t, c.client(l), "p", 0, initial)

	for _, walk := range []struct {
		name string
		args rpc.TaskListArgs
	}{
		{"oldest first", rpc.TaskListArgs{Limit: 1000}},
		{"newest first", rpc.TaskListArgs{Limit: 1000, Reverse: true}},
		{"pending only", rpc.TaskListArgs{Limit: 1000, Status: string(fsm.TaskPending)}},
	} {
		t.Run(walk.name, func(t *testing.T) {
			// Churn until the walk ends: adds, cancels of random initial
			// tasks, and Task.GC, which retires the cancelled ones.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			cancelled := map[string]bool{}
			wg.Add(2)
			go func() {
				defer wg.Done()
				cl := c.client(l)
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					args := rpc.TaskAddBatchArgs{}
					for i := range 20 {
						args.Tasks = append(args.Tasks, rpc.TaskAddArgs{ID: fmt.Sprintf("%s-new-%d-%d", strings.ReplaceAll(walk.name, " ", "-"), n, i), Type: "sleep"})
					}
					if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAddBatch, &args, nil); err != nil {
						t.Errorf("churn add: %v", err)
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				cl := c.client(l)
				rng := rand.New(rand.NewPCG(uint64(len(walk.name)), 1))
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("p%06d", rng.IntN(initial))
					mu.Lock()
					cancelled[id] = true // marked before the call: it may commit
					mu.Unlock()
					err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: id}, nil)
					if err != nil && !isCode(err, rpc.CodeNotFound) {
						t.Errorf("churn cancel %s: %v", id, err)
						return
					}
					if n%10 == 9 {
						if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskGC, &rpc.TaskGCArgs{OlderThanMS: 1}, nil); err != nil {
							t.Errorf("churn gc: %v", err)
							return
						}
					}
				}
			}()
			tasks, pages := walkTaskList(t, c.client((l+1)%3), walk.args)
			close(stop)
			wg.Wait()

			seen := map[string]int{}
			for _, tk := range tasks {
				seen[tk.ID]++
				if seen[tk.ID] > 1 {
					t.Fatalf("%s listed twice", tk.ID)
				}
			}
			missing := 0
			for i := range initial {
				id := fmt.Sprintf("p%06d", i)
				if !cancelled[id] && seen[id] != 1 {
					missing++
					if missing < 5 {
						t.Errorf("%s, present throughout, listed %d times", id, seen[id])
					}
				}
			}
			if missing > 0 {
				t.Fatalf("%d tasks present throughout were not listed exactly once", missing)
			}
			t.Logf("%s: %d tasks in %d pages; %d initial tasks cancelled (maybe retired) meanwhile", walk.name, len(tasks), pages, len(cancelled))
		})
	}
}

func TestTaskListFiltersAndLimits(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	cl := c.client(l)
	addBatches(t, cl, "f", 0, 2500)

	t.Run("default page and max limit", func(t *testing.T) {
		var r rpc.TaskListReply
		if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{}, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Tasks) != rpc.DefaultTaskListLimit || r.NextCursor == "" || r.Counts["pending"] != 2500 {
			t.Fatalf("default page: %d tasks, next %q, counts %v", len(r.Tasks), r.NextCursor, r.Counts)
		}
		if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{Limit: rpc.MaxTaskListLimit}, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Tasks) != 2500 || r.NextCursor != "" {
			t.Fatalf("limit %d: %d tasks, next %q", rpc.MaxTaskListLimit, len(r.Tasks), r.NextCursor)
		}
	})
	t.Run("type filter", func(t *testing.T) {
		tasks, _ := walkTaskList(t, cl, rpc.TaskListArgs{Type: "other", Limit: 100})
		if len(tasks) != 834 { // 0, 3, …, 2499
			t.Fatalf("%d tasks of type other, want 834", len(tasks))
		}
		for _, tk := range tasks {
			if tk.Type != "other" {
				t.Fatalf("type filter listed %s of type %s", tk.ID, tk.Type)
			}
		}
	})
	t.Run("node filter", func(t *testing.T) {
		var reg rpc.NodeRegisterReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: "n1", Capacity: 3}, &reg); err != nil {
			t.Fatal(err)
		}
		startHeartbeats(t, cl, "n1", time.Duration(reg.HeartbeatIntervalMS)*time.Millisecond)
		for _, id := range []string{"h1", "h2", "h3"} {
			addTask(t, cl, id) // no cloud: n1 takes them
		}
		succeedsWithin(t, 10*time.Second, func() error {
			if n := c.servers[l].FSM().HeldCount("n1"); n != 3 {
				return fmt.Errorf("n1 holds %d tasks", n)
			}
			return nil
		})
		for _, args := range []rpc.TaskListArgs{{NodeID: "n1"}, {NodeID: "n1", Status: "assigned"}, {NodeID: "n1", Status: "assigned", Reverse: true, Limit: 1}} {
			tasks, _ := walkTaskList(t, cl, args)
			if len(tasks) != 3 {
				t.Fatalf("%+v: %d tasks", args, len(tasks))
			}
			for _, tk := range tasks {
				if tk.NodeID != "n1" {
					t.Fatalf("%+v listed %s on %q", args, tk.ID, tk.NodeID)
				}
			}
		}
		tasks, pages := walkTaskList(t, cl, rpc.TaskListArgs{NodeID: "nobody"})
		if len(tasks) != 0 || pages != 1 {
			t.Fatalf("unknown node: %d tasks in %d pages", len(tasks), pages)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		var first rpc.TaskListReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{Limit: 10}, &first); err != nil {
			t.Fatal(err)
		}
		cur := first.NextCursor
		for _, tc := range []struct {
			name string
			args rpc.TaskListArgs
		}{
			{"negative limit", rpc.TaskListArgs{Limit: -1}},
			{"limit over the max", rpc.TaskListArgs{Limit: rpc.MaxTaskListLimit + 1}},
			{"garbage cursor", rpc.TaskListArgs{Cursor: "not-a-cursor"}},
			{"truncated cursor", rpc.TaskListArgs{Cursor: cur[:len(cur)-3]}},
			{"altered cursor", rpc.TaskListArgs{Cursor: alter(cur, 6)}},
			{"cursor of the other direction", rpc.TaskListArgs{Cursor: cur, Reverse: true}},
			{"bad status", rpc.TaskListArgs{Status: "sleeping"}},
			{"node filter too long", rpc.TaskListArgs{NodeID: strings.Repeat("n", fsm.MaxIDLen+1)}},
			{"type filter too long", rpc.TaskListArgs{Type: strings.Repeat("t", fsm.MaxTypeLen+1)}},
		} {
			var r rpc.TaskListReply
			if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList, &tc.args, &r); !isCode(err, rpc.CodeInvalidArgument) {
				t.Errorf("%s: got %v, want invalid_argument", tc.name, err)
			}
		}
	})
	t.Run("a page is a blocking query", func(t *testing.T) {
		var last rpc.TaskListReply
		var next rpc.TaskListReply
		if err := cl.Call(ctxT(t, 5*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{Limit: 3, Reverse: true}, &last); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- cl.Call(ctxT(t, 20*time.Second), rpc.MethodTaskList, &rpc.TaskListArgs{Limit: 3, Reverse: true, Cursor: last.NextCursor,
				QueryOptions: rpc.QueryOptions{MinIndex: last.Index, MaxWaitMS: 15_000}}, &next)
		}()
		addTask(t, cl, "wake")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if next.Index <= last.Index || len(next.Tasks) != 3 || next.Tasks[0].CreateIndex >= last.Tasks[2].CreateIndex {
			t.Fatalf("woke with index %d (was %d), %d tasks", next.Index, last.Index, len(next.Tasks))
		}
	})
}
