package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// pagingFSM builds, without Apply, an FSM of n tasks in batches of up to
// 7 per create index (ids tie-break inside a batch), with statuses,
// nodes and types spread by rng, then removes about a third of them at
// random (tombstones; enough to compact when n is large).
func pagingFSM(rng *rand.Rand, n int) *FSM {
	f := New()
	for i := range 5 {
		id := fmt.Sprint("n", i)
		f.st.nodes[id] = &Node{ID: id, Capacity: 1, Status: NodeHealthy}
	}
	tt := &f.st.tasks
	ix := uint64(1)
	for i := 0; i < n; {
		batch := min(1+rng.IntN(7), n-i)
		ids := make([]string, batch)
		for j := range ids {
			ids[j] = fmt.Sprintf("%c%d", 'a'+rng.IntN(26), rng.IntN(1000))
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for _, id := range ids {
			st := TaskStatuses[rng.IntN(len(TaskStatuses))]
			t := &Task{ID: id + fmt.Sprint("-", ix), Type: []string{"shell", "sleep", "http"}[rng.IntN(3)],
				Status: st, MaxAttempts: 3, CreateIndex: ix, ModifyIndex: ix, CreatedAt: int64(ix), UpdatedAt: int64(ix)}
			if st != TaskPending || rng.IntN(4) == 0 {
				t.NodeID = fmt.Sprint("n", rng.IntN(5))
			}
			if st == TaskPending {
				t.Cloud = []string{"", "aws"}[rng.IntN(2)]
			}
			tt.insert(t)
			i++
		}
		ix++
	}
	for _, t := range tt.all() {
		if rng.IntN(3) == 0 {
			tt.remove(t.ID)
		}
	}
	f.st.idx.Tasks = ix
	return f
}

// want lists the tasks matching q's filters in q's direction, by brute
// force over all tasks.
func wantPage(f *FSM, q TaskQuery) []*Task {
	var out []*Task
	for _, t := range f.Tasks("") {
		if (q.Status == "" || t.Status == q.Status) && (q.NodeID == "" || t.NodeID == q.NodeID) && (q.Type == "" || t.Type == q.Type) {
			out = append(out, t)
		}
	}
	if q.Reverse {
		slices.Reverse(out)
	}
	return out
}

// walkAll pages through q from the start and returns every task and the
// number of pages.
func walkAll(t *testing.T, f *FSM, q TaskQuery) ([]*Task, int) {
	t.Helper()
	var got []*Task
	q.After = nil
	pages := 0
	for {
		p := f.TaskPage(q)
		pages++
		if len(p.Tasks) > max(q.Limit, 1) {
			t.Fatalf("page of %d tasks, limit %d", len(p.Tasks), q.Limit)
		}
		if q.ScanBudget > 0 && p.Examined > q.ScanBudget {
			t.Fatalf("examined %d tasks, budget %d", p.Examined, q.ScanBudget)
		}
		got = append(got, p.Tasks...)
		if p.Next == nil {
			return got, pages
		}
		if pages > 1_000_000 {
			t.Fatal("the walk does not end")
		}
		q.After = p.Next
	}
}

func TestTaskPageMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	defer func(c int) { lockChunk = c }(lockChunk)
	for i, n := range []int{0, 1, 5, 300, 5000, 2000} {
		if i == 5 { // a walk of many lock holds
			lockChunk = 7
		}
		f := pagingFSM(rng, n)
		f.mu.RLock()
		checkPendingIndexLocked(t, &f.st.tasks)
		f.mu.RUnlock()
		for range 60 {
			q := TaskQuery{Reverse: rng.IntN(2) == 0, Limit: 1 + rng.IntN(40)}
			if rng.IntN(2) == 0 {
				q.Status = TaskStatuses[rng.IntN(len(TaskStatuses))]
			}
			if rng.IntN(3) == 0 {
				q.NodeID = fmt.Sprint("n", rng.IntN(6))
			}
			if rng.IntN(3) == 0 {
				q.Type = "sleep"
			}
			if rng.IntN(3) == 0 {
				q.ScanBudget = 1 + rng.IntN(50)
			}
			if rng.IntN(4) == 0 {
				q.MaxBytes = 1 + rng.IntN(2000)
			}
			got, pages := walkAll(t, f, q)
			want := wantPage(f, q)
			if !slices.Equal(got, want) {
				t.Fatalf("n=%d %+v: walked %d tasks in %d pages, want %d:\n got %v\nwant %v", n, q, len(got), pages, len(want), taskIDs(got), taskIDs(want))
			}
		}
	}
}

func TestTaskPageBounds(t *testing.T) {
	h := newHarness(t)
	h.ok(h.nodeE("n1", 10))
	for i := range 10 {
		h.ok(h.addE(fmt.Sprint("t", i)))
	}
	h.ok(h.assignE("t3", "n1"))
	h.ok(h.assignE("t7", "n1"))
	h.ok(h.startE("t7", "n1"))

	t.Run("a full last page ends the walk when nothing follows", func(t *testing.T) {
		p := h.f.TaskPage(TaskQuery{Limit: 10})
		if len(p.Tasks) != 10 || p.Next != nil || p.Index != h.f.Indexes().Tasks {
			t.Fatalf("got %d tasks, next %v, index %d", len(p.Tasks), p.Next, p.Index)
		}
		p = h.f.TaskPage(TaskQuery{Limit: 9})
		if len(p.Tasks) != 9 || p.Next == nil || *p.Next != PosOf(p.Tasks[8]) {
			t.Fatalf("got %d tasks, next %v", len(p.Tasks), p.Next)
		}
	})
	t.Run("newest first", func(t *testing.T) {
		p := h.f.TaskPage(TaskQuery{Limit: 3, Reverse: true})
		if got := taskIDs(p.Tasks); !slices.Equal(got, []string{"t9", "t8", "t7"}) || p.Next == nil {
			t.Fatalf("got %v next %v", got, p.Next)
		}
		p = h.f.TaskPage(TaskQuery{Limit: 3, Reverse: true, After: p.Next})
		if got := taskIDs(p.Tasks); !slices.Equal(got, []string{"t6", "t5", "t4"}) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("a node's held tasks come from its index", func(t *testing.T) {
		for _, st := range []TaskStatus{TaskAssigned, TaskRunning} {
			p := h.f.TaskPage(TaskQuery{Limit: 5, NodeID: "n1", Status: st})
			if len(p.Tasks) != 1 || p.Tasks[0].Status != st || p.Examined > 2 || p.Next != nil {
				t.Fatalf("%s: %v examined %d next %v", st, taskIDs(p.Tasks), p.Examined, p.Next)
			}
		}
	})
	t.Run("a scan budget ends a filtered page early with a cursor", func(t *testing.T) {
		p := h.f.TaskPage(TaskQuery{Limit: 5, NodeID: "n1", ScanBudget: 4})
		if got := taskIDs(p.Tasks); !slices.Equal(got, []string{"t3"}) || p.Examined != 4 || p.Next == nil || p.Next.ID != "t3" {
			t.Fatalf("got %v examined %d next %v", got, p.Examined, p.Next)
		}
		p = h.f.TaskPage(TaskQuery{Limit: 5, NodeID: "n1", ScanBudget: 4, After: p.Next})
		if got := taskIDs(p.Tasks); !slices.Equal(got, []string{"t7"}) || p.Next == nil || p.Next.ID != "t7" {
			t.Fatalf("got %v next %v", got, p.Next)
		}
	})
	t.Run("the byte bound keeps at least one task", func(t *testing.T) {
		p := h.f.TaskPage(TaskQuery{Limit: 5, MaxBytes: 1})
		if len(p.Tasks) != 1 || p.Next == nil || p.Next.ID != "t0" {
			t.Fatalf("got %v next %v", taskIDs(p.Tasks), p.Next)
		}
		sz := ApproxSize(p.Tasks[0])
		p = h.f.TaskPage(TaskQuery{Limit: 5, MaxBytes: 2*sz + sz/2})
		if len(p.Tasks) != 2 {
			t.Fatalf("got %v", taskIDs(p.Tasks))
		}
	})
	t.Run("a position between tasks, or past the end", func(t *testing.T) {
		t5 := h.task("t5")
		p := h.f.TaskPage(TaskQuery{Limit: 2, After: &TaskPos{CreateIndex: t5.CreateIndex, ID: "t4z"}})
		if got := taskIDs(p.Tasks); !slices.Equal(got, []string{"t5", "t6"}) {
			t.Fatalf("got %v", got)
		}
		p = h.f.TaskPage(TaskQuery{Limit: 2, After: &TaskPos{CreateIndex: 1 << 60}})
		if len(p.Tasks) != 0 || p.Next != nil {
			t.Fatalf("past the end: %v next %v", taskIDs(p.Tasks), p.Next)
		}
		p = h.f.TaskPage(TaskQuery{Limit: 2, Reverse: true, After: &TaskPos{}})
		if len(p.Tasks) != 0 || p.Next != nil {
			t.Fatalf("before the start: %v next %v", taskIDs(p.Tasks), p.Next)
		}
	})
}

// TestTaskPageWalkUnderChange pages through tasks while others are added,
// retired and change status between pages: every task present for the
// whole walk is returned exactly once, in order, and nothing twice.
func TestTaskPageWalkUnderChange(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(5, 6))
		h := newHarness(t)
		h.ok(h.nodeE("n1", 1000))
		next := 0
		add := func(k int) {
			e := &AddTasksEntry{Time: h.tick()}
			for range k {
				e.Tasks = append(e.Tasks, AddTaskEntry{ID: fmt.Sprintf("w%06d", next), Type: "shell"})
				next++
			}
			h.ok(e)
		}
		for range 4 {
			add(MaxBatch)
		}
		initial := map[string]bool{}
		for _, tk := range h.f.Tasks("") {
			initial[tk.ID] = true
		}
		removed := map[string]bool{}
		seen := map[string]int{}
		var prev *Task
		q := TaskQuery{Limit: 97, Reverse: reverse}
		for pages := 0; ; pages++ {
			p := h.f.TaskPage(q)
			for _, tk := range p.Tasks {
				seen[tk.ID]++
				if prev != nil && (cmpTask(prev, tk) >= 0) != reverse {
					t.Fatalf("reverse=%v: %s after %s", reverse, tk.ID, prev.ID)
				}
				prev = tk
			}
			if p.Next == nil {
				break
			}
			q.After = p.Next
			// Change the manifest between pages.
			add(1 + rng.IntN(50))
			all := h.f.Tasks("")
			for range 20 {
				tk := all[rng.IntN(len(all))]
				switch {
				case tk.Status == TaskPending && rng.IntN(2) == 0:
					h.apply(h.assignE(tk.ID, "n1"))
				case !tk.Status.Terminal():
					h.ok(h.cancelE(tk.ID))
				default:
					h.ok(h.retireE(tk.ID))
					removed[tk.ID] = true
				}
			}
		}
		for id := range initial {
			if !removed[id] && seen[id] != 1 {
				t.Fatalf("reverse=%v: %s present throughout, returned %d times", reverse, id, seen[id])
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("reverse=%v: %s returned %d times", reverse, id, n)
			}
		}
	}
}

func TestBitsetsNextPrev(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 50 {
		var a, b bitset
		n := 1 + rng.IntN(300_000)
		members := map[uint32]bool{}
		for range rng.IntN(200) {
			o := uint32(rng.IntN(n))
			[]*bitset{&a, &b}[rng.IntN(2)].set(o)
			members[o] = true
		}
		sorted := make([]int, 0, len(members))
		for o := range members {
			sorted = append(sorted, int(o))
		}
		slices.Sort(sorted)
		bs := bitsets{&a, &b}
		for range 200 {
			from := rng.IntN(n+100) - 50
			i, _ := slices.BinarySearch(sorted, from)
			if from >= 0 {
				p, ok := bs.next(uint32(from))
				if i < len(sorted) != ok || ok && int(p) != sorted[i] {
					t.Fatalf("next(%d) = %d,%v", from, p, ok)
				}
			}
			j := i - 1 // largest ≤ from
			if i < len(sorted) && sorted[i] == from {
				j = i
			}
			p, ok := bs.prev(from)
			if (j >= 0) != ok || ok && int(p) != sorted[j] {
				t.Fatalf("prev(%d) = %d,%v, want index %d", from, p, ok, j)
			}
		}
	}
}

// BenchmarkTaskPage1M pages through one million pending tasks, 1,000 a
// page: ns/op is one page (go test -run='^$' -bench=TaskPage1M ./fsm/).
// The filtered cases read one page starting at a random position.
func BenchmarkTaskPage1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1M tasks")
	}
	f := finishedFSM(1_000_000)
	rng := rand.New(rand.NewPCG(1, 2))
	all := f.Tasks("")
	for _, bc := range []struct {
		name string
		q    TaskQuery
	}{
		{"all", TaskQuery{Limit: 1000}},
		{"all-newest", TaskQuery{Limit: 1000, Reverse: true}},
		{"status", TaskQuery{Limit: 1000, Status: TaskFailed}},
		{"type-budget", TaskQuery{Limit: 1000, Type: "none", ScanBudget: 100_000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				q := bc.q
				p := PosOf(all[rng.IntN(len(all))])
				q.After = &p
				t0 := time.Now()
				f.TaskPage(q)
				worst = max(worst, time.Since(t0))
			}
			b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
		})
	}
}
