package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// taskIDs returns the tasks' ids.
func taskIDs(ts []*Task) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// Every case runs through runCases: Check returns what Apply returns and
// changes nothing; refusals and no-ops change nothing at all.
func TestRetireTasks(t *testing.T) {
	wantGone := func(ids ...string) func(t *testing.T, h *harness, res *ApplyResult) {
		return func(t *testing.T, h *harness, res *ApplyResult) {
			if got := taskIDs(res.Retired); !slices.Equal(got, ids) {
				t.Fatalf("Retired = %v, want %v", got, ids)
			}
			for _, tk := range res.Retired {
				if h.f.Task(tk.ID) != nil {
					t.Fatalf("%s is still a task", tk.ID)
				}
				r, ok := h.f.Retired(tk.ID)
				if !ok || r != (RetiredTask{ID: tk.ID, Status: tk.Status, RetiredAt: h.now, RetireIndex: h.index}) {
					t.Fatalf("Retired(%s) = %+v, %v", tk.ID, r, ok)
				}
			}
		}
	}
	long := strings.Repeat("a", MaxIDLen+1)
	many := func(n int) func(h *harness) any {
		return func(h *harness) any {
			e := h.retireE("complete")
			for i := 1; i < n; i++ {
				e.TaskIDs = append(e.TaskIDs, fmt.Sprint("missing-", i))
			}
			return e
		}
	}
	runCases(t, []applyCase{
		{name: "retires every finished status, in the entry's order", entry: func(h *harness) any {
			return h.retireE("failed", "cancelled", "complete")
		}, tables: []string{"tasks"}, check: func(t *testing.T, h *harness, res *ApplyResult) {
			wantGone("failed", "cancelled", "complete")(t, h, res)
			want := []TaskStatus{TaskFailed, TaskCancelled, TaskComplete}
			for i, tk := range res.Retired {
				if tk.Status != want[i] || tk.Result == nil && tk.Status != TaskCancelled {
					t.Fatalf("retired %s as %s with result %v", tk.ID, tk.Status, tk.Result)
				}
			}
			c := h.f.TaskCounts()
			if c[TaskComplete]+c[TaskFailed]+c[TaskCancelled] != 0 || c[TaskPending] != 2 || len(h.f.Tasks("")) != 4 {
				t.Fatalf("TaskCounts = %v, tasks %v", c, taskIDs(h.f.Tasks("")))
			}
			if h.f.HeldCount("n1") != 2 || h.f.HeldCount("n2") != 0 {
				t.Fatal("held counts moved")
			}
		}},
		{name: "the result holds the tasks as they were", entry: func(h *harness) any { return h.retireE("complete") },
			tables: []string{"tasks"}, check: func(t *testing.T, h *harness, res *ApplyResult) {
				tk := res.Retired[0]
				if tk.Status != TaskComplete || tk.NodeID != "n2" || tk.Result == nil || tk.Result.Output != "done" || len(tk.History) != 2 {
					t.Fatalf("retired %+v", tk)
				}
			}},
		{name: "skips missing and unfinished tasks", entry: func(h *harness) any {
			return h.retireE("pending", "nope", "failed", "running", "assigned", "gcp-only")
		}, tables: []string{"tasks"}, check: func(t *testing.T, h *harness, res *ApplyResult) {
			wantGone("failed")(t, h, res)
			h.wantTask("running", TaskRunning, "n1")
			h.wantTask("assigned", TaskAssigned, "n1")
			h.wantTask("pending", TaskPending, "")
			if _, ok := h.f.Retired("nope"); ok {
				t.Fatal("a missing id was recorded as retired")
			}
		}},
		{name: "nothing finished is a no-op", entry: func(h *harness) any { return h.retireE("pending", "running", "nope") }, noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Retired != nil {
					t.Fatalf("Retired = %v", res.Retired)
				}
			}},
		{name: "resent after it applied is a no-op", setup: func(h *harness) { h.ok(h.retireE("complete", "failed")) },
			entry: func(h *harness) any { return h.retireE("complete", "failed") }, noop: true},
		{name: "a full batch", entry: many(MaxRetireBatch), tables: []string{"tasks"}, check: wantGone("complete")},
		{name: "empty list", entry: func(h *harness) any { return h.retireE() }, kind: ErrInvalid},
		{name: "more than MaxRetireBatch", entry: many(MaxRetireBatch + 1), kind: ErrInvalid},
		{name: "an id listed twice", entry: func(h *harness) any { return h.retireE("complete", "failed", "complete") }, kind: ErrInvalid,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if !strings.Contains(res.Err.Error(), "elements 0 and 2") {
					t.Fatalf("message %q", res.Err)
				}
			}},
		{name: "a missing id listed twice", entry: func(h *harness) any { return h.retireE("nope", "nope") }, kind: ErrInvalid},
		{name: "empty id", entry: func(h *harness) any { return h.retireE("complete", "") }, kind: ErrInvalid},
		{name: "id with a slash", entry: func(h *harness) any { return h.retireE("complete", "a/b") }, kind: ErrInvalid},
		{name: "id starting with a dash", entry: func(h *harness) any { return h.retireE("-complete") }, kind: ErrInvalid},
		{name: "id too long", entry: func(h *harness) any { return h.retireE("complete", long) }, kind: ErrInvalid},
		{name: "zero time", entry: func(h *harness) any { e := h.retireE("complete"); e.Time = 0; return e }, kind: ErrInvalid},
		{name: "negative time", entry: func(h *harness) any { e := h.retireE("complete"); e.Time = -5; return e }, kind: ErrInvalid},
		{name: "reason too long", entry: func(h *harness) any {
			e := h.retireE("complete")
			e.Reason = strings.Repeat("r", MaxRetireReasonLen+1)
			return e
		}, kind: ErrInvalid},
		{name: "reason not UTF-8", entry: func(h *harness) any { e := h.retireE("complete"); e.Reason = "age\xff"; return e }, kind: ErrInvalid},
		{name: "empty reason", entry: func(h *harness) any { e := h.retireE("complete"); e.Reason = ""; return e },
			tables: []string{"tasks"}, check: wantGone("complete")},
	})
}

// TestRetiredHint: a retired id is remembered with its final status; an
// add_task or add_tasks of that id makes it a task again and forgets the
// record; a second retirement records the second one.
func TestRetiredHint(t *testing.T) {
	h := newWorld(t)
	if _, ok := h.f.Retired("complete"); ok {
		t.Fatal("a live task is reported retired")
	}
	h.ok(h.retireE("complete", "cancelled"))
	first := h.index
	r, ok := h.f.Retired("complete")
	if !ok || r.Status != TaskComplete || r.RetireIndex != first || r.RetiredAt != h.now {
		t.Fatalf("Retired(complete) = %+v, %v", r, ok)
	}

	// Reused by add_task, with other content: a new task, no longer retired.
	e := h.addE("complete")
	e.Type = "http"
	res := h.changes(e, "tasks")
	if res.Task.CreateIndex != h.index || res.Task.Type != "http" || res.Task.Status != TaskPending {
		t.Fatalf("re-added task %+v", res.Task)
	}
	if _, ok := h.f.Retired("complete"); ok {
		t.Fatal("a re-added id is still reported retired")
	}
	// Reused by add_tasks.
	h.changes(h.batchE("b1", "cancelled"), "tasks")
	if _, ok := h.f.Retired("cancelled"); ok || h.f.Task("cancelled") == nil {
		t.Fatal("add_tasks did not take the retired id back")
	}
	checkInvariants(t, h.f)

	// Retired again, with another final status.
	h.ok(h.cancelE("complete"))
	h.ok(h.retireE("complete"))
	if r, ok := h.f.Retired("complete"); !ok || r.Status != TaskCancelled || r.RetireIndex != h.index {
		t.Fatalf("second retirement recorded as %+v, %v", r, ok)
	}
	if got := recordIDs(h.f); !slices.Equal(got, []string{"complete"}) {
		t.Fatalf("record %v", got)
	}
	checkInvariants(t, h.f)

	// The record survives a snapshot, and the restored FSM forgets the
	// same way.
	r2 := restoreBytes(t, snapBytes(t, h.f))
	l := &raft.Log{Index: h.index + 1, Type: raft.LogCommand, Data: encode(t, h.addE("complete"))}
	h.f.ApplyRaft(l)
	r2.ApplyRaft(l)
	if _, ok := r2.Retired("complete"); ok || !bytes.Equal(snapBytes(t, r2), snapBytes(t, h.f)) {
		t.Fatal("restored FSM diverged")
	}
}

// recordIDs lists the retired record, oldest first.
func recordIDs(f *FSM) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []string
	for _, r := range f.st.retired.records() {
		out = append(out, r.ID)
	}
	return out
}

// cancelled adds ids and cancels them, one entry each.
func (h *harness) cancelled(ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		h.ok(h.addE(id))
		h.ok(h.cancelE(id))
	}
}

// TestRetiredFIFOBound: the record keeps the last limit retirements,
// forgetting the oldest first; ids forgotten because they were added
// again leave no gap.
func TestRetiredFIFOBound(t *testing.T) {
	h := newHarness(t)
	h.f.st.retired.limit = 5
	var all []string
	for i := range 12 {
		all = append(all, fmt.Sprintf("r%02d", i))
	}
	h.cancelled(all...)
	h.ok(h.retireE(all[:3]...))
	h.ok(h.retireE(all[3:7]...)) // 7 retired: r00, r01 forgotten
	if got := recordIDs(h.f); !slices.Equal(got, all[2:7]) {
		t.Fatalf("record %v, want %v", got, all[2:7])
	}
	if _, ok := h.f.Retired("r01"); ok {
		t.Fatal("r01 outlived the bound")
	}
	// r04 comes back as a task: forgotten now, the FIFO keeps its order.
	h.ok(h.addE("r04"))
	if got := recordIDs(h.f); !slices.Equal(got, []string{"r02", "r03", "r05", "r06"}) {
		t.Fatalf("record %v", got)
	}
	checkInvariants(t, h.f)
	h.ok(h.retireE(all[7:10]...)) // r02, r03 forgotten
	if got := recordIDs(h.f); !slices.Equal(got, []string{"r05", "r06", "r07", "r08", "r09"}) {
		t.Fatalf("record %v", got)
	}
	// One entry retiring more than the bound keeps its last ones.
	h.cancelled("r04")
	h.ok(h.retireE("r10", "r04", "r11"))
	if got := recordIDs(h.f); !slices.Equal(got, []string{"r08", "r09", "r10", "r04", "r11"}) {
		t.Fatalf("record %v", got)
	}
	checkInvariants(t, h.f)

	// Many forgets and evictions through the FIFO: the positions stay
	// right across compactions.
	h.f.st.retired.limit = 300
	rng := rand.New(rand.NewPCG(1, 2))
	want := 5
	for round := range 40 {
		var batch []string
		for i := range 50 {
			batch = append(batch, fmt.Sprintf("q%d-%d", round, i))
		}
		h.cancelled(batch...)
		h.ok(h.retireE(batch...))
		for range 30 { // re-add some retired ids
			ids := recordIDs(h.f)
			h.ok(h.addE(ids[rng.IntN(len(ids))]))
		}
		checkInvariants(t, h.f)
		want = min(want+50, 300) - 30
		if n := h.f.st.retired.len(); n != want {
			t.Fatalf("round %d: %d records, want %d", round, n, want)
		}
	}
	r := restoreBytes(t, snapBytes(t, h.f))
	if !slices.Equal(recordIDs(r), recordIDs(h.f)) || readView(r) != readView(h.f) {
		t.Fatal("the record does not survive a snapshot in order")
	}
}

// TestRetireCompactsTheTable retires most of a few thousand tasks in a
// scattered order, with tasks held on nodes meanwhile: every index stays
// right through the compactions, and the table shrinks.
func TestRetireCompactsTheTable(t *testing.T) {
	h := newHarness(t)
	h.ok(h.nodeE("n1", 100))
	const n = 3000
	var ids []string
	for start := 0; start < n; start += MaxBatch {
		var batch []string
		for i := start; i < start+MaxBatch; i++ {
			batch = append(batch, fmt.Sprintf("c%05d", i))
		}
		h.ok(h.batchE(batch...))
		ids = append(ids, batch...)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i, id := range ids {
		switch {
		case i%100 == 7: // stays held by n1
			h.ok(h.assignE(id, "n1"))
		case i%100 == 8: // stays pending
		default:
			h.ok(h.cancelE(id))
		}
	}
	order := slices.Clone(ids)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	compacted := false
	for start := 0; start < len(order); start += 250 {
		res := h.ok(&RetireTasksEntry{TaskIDs: order[start : start+250], Reason: "manual", Time: h.tick()})
		for _, tk := range res.Retired {
			if !tk.Status.Terminal() {
				t.Fatalf("retired %s while %s", tk.ID, tk.Status)
			}
		}
		checkInvariants(t, h.f)
		compacted = compacted || len(h.f.st.tasks.list) < n
		// Adding goes on between retirements.
		h.ok(h.addE(fmt.Sprintf("late%02d", start/250)))
	}
	c := h.f.TaskCounts()
	if c[TaskCancelled] != 0 || c[TaskAssigned] != 30 || c[TaskPending] != 30+12 || h.f.HeldCount("n1") != 30 {
		t.Fatalf("counts %v held %d", c, h.f.HeldCount("n1"))
	}
	if live := len(h.f.Tasks("")); !compacted || len(h.f.st.tasks.list) > live+compactMin {
		t.Fatalf("list has %d slots for %d tasks", len(h.f.st.tasks.list), len(h.f.Tasks("")))
	}
	if got := taskIDs(h.f.OldestTasks(TaskPending, 2)); !slices.Equal(got, []string{"c00008", "c00108"}) {
		t.Fatalf("OldestTasks = %v", got)
	}
	if got := taskIDs(h.f.NodeTasks("n1")); len(got) != 30 || got[0] != "c00007" || !slices.IsSorted(got) {
		t.Fatalf("NodeTasks = %v", got)
	}
	// Retiring the newest tasks leaves no trailing tombstones.
	h.ok(h.cancelE("late11"))
	h.ok(h.retireE("late11"))
	checkInvariants(t, h.f)
}

func TestRetireCandidates(t *testing.T) {
	h := newWorld(t) // finished, oldest first: complete, failed, cancelled
	c, f, x := h.task("complete"), h.task("failed"), h.task("cancelled")
	now := x.UpdatedAt + int64(time.Hour)
	hour := time.Hour
	cases := []struct {
		name          string
		now           int64
		maxAge        time.Duration
		maxPer, limit int
		want          []string
	}{
		{"no rule", now, 0, 0, 10, nil},
		{"every finished task is old", now, hour - 1, 0, 10, []string{"complete", "failed", "cancelled"}},
		{"limit keeps the oldest", now, hour - 1, 0, 2, []string{"complete", "failed"}},
		{"limit zero", now, hour - 1, 0, 0, nil},
		{"negative limit", now, hour - 1, 0, -1, nil},
		{"strictly older than the cutoff", c.UpdatedAt + int64(hour), hour, 0, 10, nil},
		{"one nanosecond older", c.UpdatedAt + int64(hour) + 1, hour, 0, 10, []string{"complete"}},
		{"two of three are old", f.UpdatedAt + int64(hour) + 1, hour, 0, 10, []string{"complete", "failed"}},
		{"maxAge beyond now", now, time.Duration(1<<63 - 1), 0, 10, nil},
		{"negative maxAge is no rule", now, -hour, 0, 10, nil},
		{"count rule within the limit", now, 0, 1, 10, nil},
		{"negative count is no rule", now, 0, -1, 10, nil},
	}
	for _, tc := range cases {
		if got := h.f.RetireCandidates(tc.now, tc.maxAge, tc.maxPer, tc.limit); !slices.Equal(got, tc.want) {
			t.Errorf("%s: RetireCandidates = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Count rule: three more complete tasks; the oldest beyond 2 go.
	h.ok(h.nodeE("n5", 10))
	for _, id := range []string{"c1", "c2", "c3"} {
		h.ok(h.addE(id))
		h.ok(h.assignE(id, "n5"))
		h.ok(h.completeE(id, "n5"))
	}
	if got := h.f.RetireCandidates(now, 0, 2, 10); !slices.Equal(got, []string{"complete", "c1"}) {
		t.Fatalf("count rule: %v", got)
	}
	// Both rules: the union, oldest first.
	if got := h.f.RetireCandidates(f.UpdatedAt+int64(hour)+1, hour, 2, 10); !slices.Equal(got, []string{"complete", "failed", "c1"}) {
		t.Fatalf("both rules: %v", got)
	}
	if got := h.f.RetireCandidates(now, 0, 2, 1); !slices.Equal(got, []string{"complete"}) {
		t.Fatalf("count rule, limit 1: %v", got)
	}
	// The candidates retire cleanly.
	res := h.ok(&RetireTasksEntry{TaskIDs: h.f.RetireCandidates(now, 0, 1, 10), Reason: "count", Time: h.tick()})
	if got := taskIDs(res.Retired); !slices.Equal(got, []string{"complete", "c1", "c2"}) {
		t.Fatalf("retired %v", got)
	}
	if got := h.f.RetireCandidates(now, 0, 1, 10); got != nil {
		t.Fatalf("after retiring: %v", got)
	}
}

// refCandidates is RetireCandidates by brute force over Tasks(status).
func refCandidates(f *FSM, now int64, maxAge time.Duration, maxPer, limit int) []string {
	var all []*Task
	for _, s := range finishedStatuses {
		ts := f.Tasks(s)
		slices.SortFunc(ts, cmpFinish)
		for i, t := range ts {
			byCount := maxPer > 0 && i < len(ts)-maxPer
			byAge := maxAge > 0 && t.UpdatedAt < now-int64(maxAge)
			if byCount || byAge {
				all = append(all, t)
			}
		}
	}
	slices.SortFunc(all, cmpFinish)
	if len(all) > limit {
		all = all[:limit]
	}
	if limit <= 0 || len(all) == 0 {
		return nil
	}
	return taskIDs(all)
}

// TestRetireCandidatesMatchesBruteForce: on states built by random
// lifecycles with proposer clocks that go back and forth, and by scattered
// retirements, RetireCandidates equals the brute-force answer for many
// rule combinations.
func TestRetireCandidatesMatchesBruteForce(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		rng := rand.New(rand.NewPCG(seed, 99))
		h := newHarness(t)
		h.ok(h.nodeE("n1", 1000))
		base := h.now
		stamp := func() int64 { // a clock that sometimes goes back
			h.now += int64(rng.IntN(1000)) - 150
			return max(h.now, 1)
		}
		next := 0
		for step := range 3000 {
			switch k := rng.IntN(10); {
			case k < 4:
				id := fmt.Sprintf("t%04d", next)
				next++
				h.ok(&AddTaskEntry{ID: id, Type: "shell", Time: stamp()})
				switch rng.IntN(4) {
				case 0:
					h.ok(&CancelTaskEntry{TaskID: id, Time: stamp()})
				case 1:
					h.ok(&AssignTaskEntry{TaskID: id, NodeID: "n1", Time: stamp()})
					h.ok(&CompleteTaskEntry{TaskID: id, NodeID: "n1", Time: stamp()})
				case 2:
					h.ok(&AssignTaskEntry{TaskID: id, NodeID: "n1", Time: stamp()})
					h.ok(&FailTaskEntry{TaskID: id, NodeID: "n1", Time: stamp()})
				}
			case k < 5 && next > 0: // a scattered manual retirement
				var ids []string
				for range 1 + rng.IntN(5) {
					id := fmt.Sprintf("t%04d", rng.IntN(next))
					if !slices.Contains(ids, id) {
						ids = append(ids, id)
					}
				}
				h.ok(&RetireTasksEntry{TaskIDs: ids, Reason: "manual", Time: stamp()})
			case k < 6 && next > 0: // a retired id comes back
				h.ok(&AddTaskEntry{ID: fmt.Sprintf("t%04d", rng.IntN(next)), Type: "shell", Time: stamp()})
			case k < 7: // a node gives up on what it holds: many finish at once
				if held := h.f.NodeTasks("n1"); len(held) > 0 {
					h.ok(&NodeStatusEntry{NodeID: "n1", Status: NodeUnreachable, Time: stamp()})
					h.ok(&NodeStatusEntry{NodeID: "n1", Status: NodeHealthy, Time: stamp()})
				}
			default:
				if p := h.f.OldestTasks(TaskPending, 3); len(p) > 0 {
					id := p[rng.IntN(len(p))].ID
					h.ok(&AssignTaskEntry{TaskID: id, NodeID: "n1", Time: stamp()})
				}
			}
			if step%300 == 299 {
				checkInvariants(t, h.f)
				for range 40 {
					now := base + int64(rng.IntN(int(h.now-base)+1000))
					maxAge := time.Duration(rng.IntN(3)) * time.Duration(rng.IntN(int(h.now-base)+1))
					maxPer := rng.IntN(3) * rng.IntN(60)
					limit := rng.IntN(4) * rng.IntN(100)
					got := h.f.RetireCandidates(now, maxAge, maxPer, limit)
					if want := refCandidates(h.f, now, maxAge, maxPer, limit); !slices.Equal(got, want) {
						t.Fatalf("seed %d step %d: RetireCandidates(%d, %v, %d, %d) =\n%v\nwant\n%v", seed, step, now, maxAge, maxPer, limit, got, want)
					}
				}
				// A restored FSM orders its candidates the same way.
				r := restoreBytes(t, snapBytes(t, h.f))
				if a, b := r.RetireCandidates(h.now, 1, 0, 1<<30), h.f.RetireCandidates(h.now, 1, 0, 1<<30); !slices.Equal(a, b) {
					t.Fatalf("seed %d: restored candidates differ", seed)
				}
			}
		}
	}
}

// TestRetireSteadyState is the property: under a steady stream of
// add → finish → retire with a count rule and a fake clock, the manifest
// stays at the limit. 120k tasks over a limit of 10k leave exactly the
// 10k newest, and the 110k retired ones are remembered up to
// RetiredMemory, the oldest forgotten.
func TestRetireSteadyState(t *testing.T) {
	if testing.Short() {
		t.Skip("applies ~125k entries; skipped with -short")
	}
	const (
		total = 120_000
		limit = 10_000
		batch = 1000
	)
	f := New()
	var ix uint64
	now := int64(1_700_000_000_000_000_000)
	apply := func(body any) *ApplyResult {
		ix++
		now += int64(time.Millisecond)
		res := f.ApplyRaft(&raft.Log{Index: ix, Type: raft.LogCommand, Data: encode(t, body)}).(*ApplyResult)
		if res.Err != nil {
			t.Fatalf("entry %d %T: %v", ix, body, res.Err)
		}
		return res
	}
	id := func(i int) string { return fmt.Sprintf("task-%06d", i) }
	retired := 0
	for start := 0; start < total; start += batch {
		b := &AddTasksEntry{Time: now}
		for i := start; i < start+batch; i++ {
			b.Tasks = append(b.Tasks, AddTaskEntry{ID: id(i), Type: "shell"})
		}
		apply(b)
		for i := start; i < start+batch; i++ {
			apply(&CancelTaskEntry{TaskID: id(i), Reason: "done", Time: now})
		}
		// The leader's retirement step.
		for {
			ids := f.RetireCandidates(now, 0, limit, MaxRetireBatch)
			if len(ids) == 0 {
				break
			}
			res := apply(&RetireTasksEntry{TaskIDs: ids, Reason: "count", Time: now})
			if len(res.Retired) != len(ids) {
				t.Fatalf("retired %d of %d candidates", len(res.Retired), len(ids))
			}
			retired += len(ids)
		}
		finished := start + batch
		if c := f.TaskCounts()[TaskCancelled]; c != min(finished, limit) || len(f.Tasks("")) != c {
			t.Fatalf("after %d tasks: %d cancelled, %d tasks, want %d", finished, c, len(f.Tasks("")), min(finished, limit))
		}
	}
	if retired != total-limit {
		t.Fatalf("retired %d, want %d", retired, total-limit)
	}
	left := taskIDs(f.Tasks(""))
	if len(left) != limit || left[0] != id(total-limit) || left[limit-1] != id(total-1) {
		t.Fatalf("left %d tasks, %s…%s", len(left), left[0], left[len(left)-1])
	}
	if n := f.st.retired.len(); n != RetiredMemory {
		t.Fatalf("%d retired records, want %d", n, RetiredMemory)
	}
	forgotten := total - limit - RetiredMemory
	if _, ok := f.Retired(id(forgotten - 1)); ok {
		t.Fatal("the oldest retirements were not forgotten")
	}
	if r, ok := f.Retired(id(forgotten)); !ok || r.Status != TaskCancelled {
		t.Fatalf("Retired(%s) = %+v, %v", id(forgotten), r, ok)
	}
	if len(f.st.tasks.list) > 2*limit {
		t.Fatalf("the table kept %d slots for %d tasks", len(f.st.tasks.list), limit)
	}
	checkInvariants(t, f)
	data := snapBytes(t, f)
	if r := restoreBytes(t, data); !bytes.Equal(snapBytes(t, r), data) || r.st.retired.len() != RetiredMemory {
		t.Fatal("the steady state does not round-trip")
	}
	t.Logf("%d entries; snapshot %d bytes for %d tasks and %d retired records", ix, len(data), limit, RetiredMemory)
}

// TestRetiredSnapshot: a state with retired tasks is written as version
// 3 and round-trips (Restore, PrepareRestore/Expect, ReadSnapshotInfo);
// once the record is empty again it is written as before.
func TestRetiredSnapshot(t *testing.T) {
	h := newWorld(t)
	h.ok(h.retireE("cancelled", "complete"))
	data := snapBytes(t, h.f)
	info, err := ReadSnapshotInfo(bytes.NewReader(data))
	if err != nil || info.Version != 3 || info.Retired != 2 || info.Tasks != 5 || info.Tokens != 0 {
		t.Fatalf("ReadSnapshotInfo = %+v, %v", info, err)
	}
	r := restoreBytes(t, data)
	if readView(r) != readView(h.f) || !bytes.Equal(snapBytes(t, r), data) || r.Indexes() != h.f.Indexes() {
		t.Fatal("the retired record does not round-trip")
	}
	if got := recordIDs(r); !slices.Equal(got, []string{"cancelled", "complete"}) {
		t.Fatalf("restored record %v", got)
	}
	checkInvariants(t, r)
	p, err := PrepareRestore(bytes.NewReader(data))
	if err != nil || p.Retired() != 2 {
		t.Fatalf("PrepareRestore: %v, %d retired", err, p.Retired())
	}
	g := New()
	defer g.Expect(p)()
	if err := g.Restore(readCloser{bytes.NewReader(data)}); err != nil || g.st != p.st || readView(g) != readView(h.f) {
		t.Fatalf("prepared restore: %v", err)
	}
	// The same entries go on giving the same states.
	for _, body := range []any{h.retireE("failed"), h.addE("cancelled"), h.retireE("pending", "nope")} {
		l := &raft.Log{Index: h.index + 1, Type: raft.LogCommand, Data: encode(t, body)}
		h.index++
		for _, x := range []*FSM{h.f, r, g} {
			x.ApplyRaft(l)
		}
	}
	want := snapBytes(t, h.f)
	if !bytes.Equal(snapBytes(t, r), want) || !bytes.Equal(snapBytes(t, g), want) {
		t.Fatal("restored FSMs diverged")
	}
	// With ACL data too: still version 3.
	withACL(h)
	if info, _ := ReadSnapshotInfo(bytes.NewReader(snapBytes(t, h.f))); info.Version != 3 || info.Tokens != 3 || info.Retired != 2 {
		t.Fatalf("with ACL data: %+v", info)
	}
	// Every retired id added again: the record is empty, the format is
	// version 2 again (ACL data), then 1 without it.
	h.ok(h.addE("complete"))
	h.ok(h.addE("failed"))
	if info, _ := ReadSnapshotInfo(bytes.NewReader(snapBytes(t, h.f))); info.Version != 2 || info.Retired != 0 {
		t.Fatalf("empty record with ACL data: %+v", info)
	}
	k := newWorld(t)
	k.ok(k.retireE("complete"))
	k.ok(k.addE("complete"))
	if info, _ := ReadSnapshotInfo(bytes.NewReader(snapBytes(t, k.f))); info.Version != 1 {
		t.Fatalf("empty record without ACL data: %+v", info)
	}
}

// TestRestoreRefusesRetiredTask: a snapshot whose retired record names a
// task it also holds is refused by Restore and PrepareRestore (the state
// never holds both). ReadSnapshotInfo, which builds no state, does not
// check this.
func TestRestoreRefusesRetiredTask(t *testing.T) {
	task := &Task{ID: "t", Type: "x", Status: TaskPending, MaxAttempts: 1, CreateIndex: 2, ModifyIndex: 2}
	data := craft(t, &snapshotHeader{Version: 3, Index: 5, TasksIndex: 2, Tasks: 1, Retired: 2},
		task, &RetiredTask{ID: "s", Status: TaskFailed, RetiredAt: 1, RetireIndex: 3},
		&RetiredTask{ID: "t", Status: TaskComplete, RetiredAt: 1, RetireIndex: 4})
	if err := New().Restore(readCloser{bytes.NewReader(data)}); err == nil || !strings.Contains(err.Error(), `retired task "t" is also a task`) {
		t.Fatalf("Restore = %v", err)
	}
	if _, err := PrepareRestore(bytes.NewReader(data)); err == nil {
		t.Fatal("PrepareRestore accepted it")
	}
	ok := craft(t, &snapshotHeader{Version: 3, Index: 5, TasksIndex: 4, Tasks: 1, Retired: 1},
		task, &RetiredTask{ID: "s", Status: TaskFailed, RetiredAt: 1, RetireIndex: 3})
	if f := restoreBytes(t, ok); !bytes.Equal(snapBytes(t, f), ok) {
		t.Fatal("a crafted version 3 snapshot is not written back byte for byte")
	}
}

// TestOldSnapshotsRestoreWithoutRetired: snapshots written before
// retirement existed (testdata: version 1 without ACL data, version 2
// with tokens, the latter written by the code just before this change
// from oldWorld plus withACL) restore with an empty record and are
// written back byte for byte; a retirement on top makes version 3.
func TestOldSnapshotsRestoreWithoutRetired(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version int
		acl     bool
	}{{"testdata/snapshot_v1_no_acl.bin", 1, false}, {"testdata/snapshot_v2_acl.bin", 2, true}} {
		old, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		f := restoreBytes(t, old)
		want := oldWorld(t)
		if tc.acl {
			withACL(want)
		}
		if got, w := readView(f), readView(want.f); got != w {
			t.Fatalf("%s restores as\n%s\nwant\n%s", tc.file, got, w)
		}
		if f.st.retired.len() != 0 || !bytes.Equal(snapBytes(t, f), old) || !bytes.Equal(snapBytes(t, want.f), old) {
			t.Fatalf("%s: not written back byte for byte", tc.file)
		}
		info, err := ReadSnapshotInfo(bytes.NewReader(old))
		if err != nil || info.Version != tc.version || info.Retired != 0 {
			t.Fatalf("%s: %+v, %v", tc.file, info, err)
		}
		l := &raft.Log{Index: f.Indexes().Applied + 1, Type: raft.LogCommand, Data: encode(t, want.retireE("complete", "failed"))}
		if res := f.ApplyRaft(l).(*ApplyResult); res.Err != nil || len(res.Retired) != 2 {
			t.Fatalf("%s: retire on the restored state: %+v", tc.file, res)
		}
		data := snapBytes(t, f)
		if info, err := ReadSnapshotInfo(bytes.NewReader(data)); err != nil || info.Version != 3 || info.Retired != 2 {
			t.Fatalf("%s: after a retirement: %+v, %v", tc.file, info, err)
		}
		if r := restoreBytes(t, data); !bytes.Equal(snapBytes(t, r), data) || readView(r) != readView(f) {
			t.Fatalf("%s: version 3 does not round-trip", tc.file)
		}
		checkInvariants(t, f)
	}
}

// retireSim is a replicated log driven the way the cluster drives it:
// entries go to the log, the current FSM applies each at once, and a
// proposer's view (another FSM) applies the log up to where it is told
// to, so retire entries can be chosen from a lagging view, as by a new
// leader that has not yet applied its predecessor's last entries.
type retireSim struct {
	t         *testing.T
	log       [][]byte
	cur, view *FSM
	viewAt    int // entries of log the view has applied
	now       int64
	finishes  [numFinishedStatuses][]int64 // finish times, per finished slot, of tasks still finished
}

func newRetireSim(t *testing.T) *retireSim {
	return &retireSim{t: t, cur: New(), view: New(), now: 1_700_000_000_000_000_000}
}

// append logs body and applies it to the current FSM.
func (r *retireSim) append(body any) *ApplyResult {
	r.t.Helper()
	data := encode(r.t, body)
	r.log = append(r.log, data)
	res := r.cur.ApplyRaft(&raft.Log{Index: uint64(len(r.log)), Type: raft.LogCommand, Data: data}).(*ApplyResult)
	if res.Err != nil {
		r.t.Fatalf("entry %d %T: %v", len(r.log), body, res.Err)
	}
	return res
}

// catchUp applies the log to the view up to all but lag entries.
func (r *retireSim) catchUp(lag int) {
	for ; r.viewAt < len(r.log)-lag; r.viewAt++ {
		r.view.ApplyRaft(&raft.Log{Index: uint64(r.viewAt + 1), Type: raft.LogCommand, Data: r.log[r.viewAt]})
	}
}

// retire is the leader's round (cluster.Server.retire) proposed from the
// view: entries of at most MaxRetireBatch until the view finds nothing,
// each applied by the view before it chooses the next (raft's future
// returns once the leader applied it). It returns how many the current
// FSM retired.
func (r *retireSim) retire(now int64, maxAge time.Duration, maxPer int) int {
	n := 0
	for {
		ids := r.view.RetireCandidates(now, maxAge, maxPer, MaxRetireBatch)
		if len(ids) == 0 {
			return n
		}
		res := r.append(&RetireTasksEntry{TaskIDs: ids, Reason: "retention", Time: now})
		for _, tk := range res.Retired {
			slot, _ := finishedSlot(tk.Status)
			i := slices.Index(r.finishes[slot], tk.UpdatedAt)
			r.finishes[slot] = slices.Delete(r.finishes[slot], i, i+1)
		}
		n += len(res.Retired)
		r.catchUp(0)
		if len(res.Retired) == 0 {
			return n
		}
	}
}

// finish logs tasks finishing: ids[i] ends in status sts[i].
func (r *retireSim) finish(ids []string, sts []TaskStatus, at int64) {
	for i, id := range ids {
		switch sts[i] {
		case TaskCancelled:
			r.append(&CancelTaskEntry{TaskID: id, Reason: "done", Time: at})
		case TaskComplete, TaskFailed:
			r.append(&AssignTaskEntry{TaskID: id, NodeID: "n1", Time: at})
			if sts[i] == TaskComplete {
				r.append(&CompleteTaskEntry{TaskID: id, NodeID: "n1", Result: Result{Output: "ok"}, Time: at})
			} else {
				r.append(&FailTaskEntry{TaskID: id, NodeID: "n1", Result: Result{ExitCode: 1, Error: "boom"}, Time: at})
			}
		}
		slot, _ := finishedSlot(sts[i])
		r.finishes[slot] = append(r.finishes[slot], at)
	}
}

// TestRetireSteadyStreamByAgeAndCount: a steady stream of tasks finishing
// in all three finished statuses at different rates (cancelled 6, complete
// 2, failed 1 a second, on a fake clock), retired each second by both
// rules (500 s, 1,000 per status). After every round each status holds
// exactly what the rules leave, min(1,000, tasks finished in the last
// 500 s): the count rule binds for cancelled, the age rule for failed,
// both about equally for complete. A follower fed the same log ends with
// the same state, byte for byte.
func TestRetireSteadyStreamByAgeAndCount(t *testing.T) {
	if testing.Short() {
		t.Skip("applies ~25k entries; skipped with -short")
	}
	const (
		seconds = 1500
		limit   = 1000
		maxAge  = 500 * time.Second
	)
	r := newRetireSim(t)
	r.append(&NodeRegisterEntry{ID: "n1", Address: "10.0.0.1:7000", Capacity: MaxCapacity, Time: r.now})
	mix := []TaskStatus{TaskCancelled, TaskComplete, TaskCancelled, TaskFailed, TaskCancelled, TaskComplete, TaskCancelled, TaskCancelled, TaskCancelled}
	next := 0
	for s := range seconds {
		r.now += int64(time.Second)
		var ids []string
		b := &AddTasksEntry{Time: r.now}
		for range mix {
			ids = append(ids, fmt.Sprintf("t%06d", next))
			b.Tasks = append(b.Tasks, AddTaskEntry{ID: ids[len(ids)-1], Type: "shell"})
			next++
		}
		r.append(b)
		r.finish(ids, mix, r.now)
		r.catchUp(0)
		r.retire(r.now, maxAge, limit)
		counts := r.cur.TaskCounts()
		for slot, st := range finishedStatuses {
			cutoff := r.now - int64(maxAge)
			young := 0
			for _, at := range r.finishes[slot] {
				if at >= cutoff {
					young++
				}
			}
			if want := min(limit, young); counts[st] != want || len(r.finishes[slot]) != want {
				t.Fatalf("second %d: %d %s tasks (%d tracked), want %d", s, counts[st], st, len(r.finishes[slot]), want)
			}
		}
	}
	// Failed: one a second, finished at or after the cutoff: 501.
	if c := r.cur.TaskCounts(); c[TaskCancelled] != limit || c[TaskComplete] != limit || c[TaskFailed] != 501 {
		t.Fatalf("final counts %v, want cancelled %d, complete %d, failed 501", c, limit, limit)
	}
	checkInvariants(t, r.cur)
	follower := New()
	for i, data := range r.log {
		follower.ApplyRaft(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
	}
	if !bytes.Equal(snapBytes(t, follower), snapBytes(t, r.cur)) {
		t.Fatal("a follower fed the same log holds another state")
	}
}

// TestRetireFromALaggingViewKeepsTheLimit: retire entries chosen from a
// view that has not applied the log's last entries (a new leader whose
// FSM lags its predecessor's last retirements and finishes), with
// proposer clocks that go back and forth, never take a finished status
// below the count limit; once the proposer's view has caught up, every
// status is at the limit exactly.
func TestRetireFromALaggingViewKeepsTheLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("applies ~30k entries; skipped with -short")
	}
	const limit = 300
	for _, seed := range []uint64{1, 2, 3} {
		rng := rand.New(rand.NewPCG(seed, 17))
		r := newRetireSim(t)
		r.append(&NodeRegisterEntry{ID: "n1", Address: "10.0.0.1:7000", Capacity: MaxCapacity, Time: r.now})
		all := []TaskStatus{TaskCancelled, TaskComplete, TaskFailed}
		next := 0
		for round := range 300 {
			var ids []string
			var sts []TaskStatus
			b := &AddTasksEntry{Time: r.now}
			for range 1 + rng.IntN(40) {
				ids = append(ids, fmt.Sprintf("t%06d", next))
				sts = append(sts, all[rng.IntN(3)])
				b.Tasks = append(b.Tasks, AddTaskEntry{ID: ids[len(ids)-1], Type: "shell"})
				next++
			}
			r.append(b)
			for i := range ids { // each finish stamped by a clock that sometimes goes back
				r.now += int64(rng.IntN(1000)) - 300
				r.finish(ids[i:i+1], sts[i:i+1], r.now)
			}
			before := r.cur.TaskCounts()
			r.catchUp(rng.IntN(200)) // the proposer's view lags up to 200 entries
			r.retire(r.now, 0, limit)
			after := r.cur.TaskCounts()
			for _, st := range all {
				if after[st] < min(limit, before[st]) {
					t.Fatalf("seed %d round %d: %s went from %d to %d, below the limit %d", seed, round, st, before[st], after[st], limit)
				}
			}
		}
		r.catchUp(0)
		r.retire(r.now, 0, limit)
		for _, st := range all {
			if n := r.cur.TaskCounts()[st]; n != limit {
				t.Fatalf("seed %d: %d %s tasks once caught up, want %d", seed, n, st, limit)
			}
		}
		checkInvariants(t, r.cur)
	}
}
