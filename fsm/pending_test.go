package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkPendingIndex verifies the pending index against the table: each
// group holds exactly the pending tasks of its cloud, ascending, its
// tombstones counted, no empty group, no leading or trailing tombstone.
// checkInvariants calls it (under the read lock).
func checkPendingIndexLocked(t testing.TB, tt *taskTable) {
	t.Helper()
	want := map[string][]uint32{}
	for o, task := range tt.list {
		if task != nil && task.Status == TaskPending {
			want[task.Cloud] = append(want[task.Cloud], uint32(o))
		}
	}
	if len(want) != len(tt.pending) {
		t.Fatalf("pending index has %d groups, want %d (%v)", len(tt.pending), len(want), keysOf(want))
	}
	for cloud, g := range tt.pending {
		var got []uint32
		dead := 0
		for i, e := range g.q {
			if i > 0 && g.q[i-1].o >= e.o {
				t.Fatalf("pending group %q out of order at %d", cloud, i)
			}
			if e.dead {
				dead++
				continue
			}
			got = append(got, e.o)
		}
		if dead != g.dead || !slices.Equal(got, want[cloud]) {
			t.Fatalf("pending group %q = %v (%d tombstones, counted %d), want %v", cloud, got, dead, g.dead, want[cloud])
		}
		if n := len(g.q); n == 0 || g.q[0].dead || g.q[n-1].dead {
			t.Fatalf("pending group %q is empty or starts or ends with a tombstone", cloud)
		}
	}
}

func keysOf(m map[string][]uint32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (h *harness) addCloudE(id, cloud string) *AddTaskEntry {
	e := h.addE(id)
	e.Cloud = cloud
	return e
}

func (h *harness) cloudNodeE(id, cloud string, capacity int) *NodeRegisterEntry {
	e := h.nodeE(id, capacity)
	e.Cloud = cloud
	return e
}

// wantOldest checks OldestPending against the expected ids.
func wantOldest(t *testing.T, f *FSM, quotas []PendingQuota, want ...string) {
	t.Helper()
	checkInvariants(t, f)
	if got := taskIDs(f.OldestPending(quotas, 0)); !slices.Equal(got, want) {
		t.Fatalf("OldestPending(%v) = %v, want %v", quotas, got, want)
	}
}

func TestPendingIndexFollowsTransitions(t *testing.T) {
	h := newHarness(t)
	h.ok(h.cloudNodeE("a1", "aws", 10))
	for i := range 4 {
		h.ok(h.addCloudE(fmt.Sprint("g", i), "gcp"))
		h.ok(h.addCloudE(fmt.Sprint("a", i), "aws"))
		h.ok(h.addCloudE(fmt.Sprint("x", i), ""))
	}
	any2 := []PendingQuota{{Cloud: "", Limit: 2}}
	aws := []PendingQuota{{Cloud: "", Limit: 10}, {Cloud: "aws", Limit: 10}}
	wantOldest(t, h.f, any2, "x0", "x1")
	wantOldest(t, h.f, aws, "a0", "x0", "a1", "x1", "a2", "x2", "a3", "x3")
	wantOldest(t, h.f, []PendingQuota{{Cloud: "gcp", Limit: 3}, {Cloud: "gcp", Limit: 1}}, "g0", "g1", "g2")
	wantOldest(t, h.f, []PendingQuota{{Cloud: "azure", Limit: 3}, {Cloud: "aws", Limit: 0}})
	if n := h.f.PendingCount("gcp"); n != 4 {
		t.Fatalf("PendingCount(gcp) = %d", n)
	}

	{ // assign takes a task out, start and finish keep it out
		h.ok(h.assignE("a0", "a1"))
		h.ok(h.assignE("x1", "a1"))
		h.ok(h.startE("x1", "a1"))
		wantOldest(t, h.f, aws, "x0", "a1", "a2", "x2", "a3", "x3")
		h.ok(h.completeE("x1", "a1"))
		wantOldest(t, h.f, any2, "x0", "x2")
	}
	{ // requeue puts it back in its place
		h.ok(h.statusE("a1", NodeUnreachable)) // a0 goes back to pending
		wantOldest(t, h.f, aws, "a0", "x0", "a1", "a2", "x2", "a3", "x3")
		h.ok(h.statusE("a1", NodeHealthy))
		h.ok(h.assignE("a0", "a1"))
		h.ok(h.assignE("a1", "a1"))
		h.ok(h.cloudNodeE("a1", "aws", 10)) // re-registration requeues both
		wantOldest(t, h.f, aws, "a0", "x0", "a1", "a2", "x2", "a3", "x3")
	}
	{ // cancel and fail leave; the last one removes the group
		for i := range 4 {
			h.ok(h.cancelE(fmt.Sprint("g", i)))
		}
		if n := h.f.PendingCount("gcp"); n != 0 {
			t.Fatalf("PendingCount(gcp) = %d after cancelling all", n)
		}
		wantOldest(t, h.f, []PendingQuota{{Cloud: "gcp", Limit: 10}})
		h.ok(h.assignE("a2", "a1"))
		h.ok(h.failE("a2", "a1"))
		wantOldest(t, h.f, aws, "a0", "x0", "a1", "x2", "a3", "x3")
	}
	{ // retire and re-add
		h.ok(h.retireE("g0", "g1", "a2", "x1"))
		h.ok(h.addCloudE("g0", "gcp")) // a retired id comes back as a new, newest task
		wantOldest(t, h.f, []PendingQuota{{Cloud: "gcp", Limit: 10}, {Cloud: "", Limit: 1}}, "x0", "g0")
	}
	{ // snapshot restore rebuilds it
		r := restoreBytes(t, snapBytes(t, h.f))
		wantOldest(t, r, aws, "a0", "x0", "a1", "x2", "a3", "x3")
		wantOldest(t, r, []PendingQuota{{Cloud: "gcp", Limit: 10}}, "g0")
	}
}

// TestPendingIndexSurvivesCompaction retires enough tasks to compact the
// table (ordinals renumbered) while thousands stay pending in two clouds.
func TestPendingIndexSurvivesCompaction(t *testing.T) {
	h := newHarness(t)
	h.ok(h.cloudNodeE("n", "aws", 1))
	const n = 3000
	for start := 0; start < n; start += MaxBatch {
		e := &AddTasksEntry{Time: h.tick()}
		for i := start; i < min(start+MaxBatch, n); i++ {
			cloud := "gcp"
			if i%3 == 0 {
				cloud = ""
			}
			e.Tasks = append(e.Tasks, AddTaskEntry{ID: fmt.Sprintf("t%05d", i), Type: "shell", Cloud: cloud})
		}
		h.ok(e)
	}
	// Cancel and retire the first 2,400: 1,000 at a time.
	var ids []string
	for i := range 2400 {
		id := fmt.Sprintf("t%05d", i)
		h.ok(h.cancelE(id))
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += MaxRetireBatch {
		h.ok(h.retireE(ids[start:min(start+MaxRetireBatch, len(ids))]...))
	}
	h.f.mu.RLock()
	dead, slots := h.f.st.tasks.dead, len(h.f.st.tasks.list)
	h.f.mu.RUnlock()
	if slots >= n {
		t.Fatalf("table not compacted: %d slots, %d tombstones", slots, dead)
	}
	wantOldest(t, h.f, []PendingQuota{{Cloud: "", Limit: 2}}, "t02400", "t02403")
	wantOldest(t, h.f, []PendingQuota{{Cloud: "gcp", Limit: 2}}, "t02401", "t02402")
}

// TestPendingIndexRandomized drives random transitions and compares
// OldestPending with a brute-force selection after every entry.
func TestPendingIndexRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	h := newHarness(t)
	clouds := []string{"", "aws", "gcp"}
	nodes := []string{"n-aws", "n-gcp", "n-none"}
	h.ok(h.cloudNodeE("n-aws", "aws", 4))
	h.ok(h.cloudNodeE("n-gcp", "gcp", 4))
	h.ok(h.cloudNodeE("n-none", "", 4))
	next := 0
	for step := range 3000 {
		all := h.f.Tasks("")
		var body any
		switch r := rng.IntN(10); {
		case r < 3 || len(all) == 0:
			body = h.addCloudE(fmt.Sprintf("r%05d", next), clouds[rng.IntN(len(clouds))])
			next++
		default:
			tk := all[rng.IntN(len(all))]
			node := nodes[rng.IntN(len(nodes))]
			switch r {
			case 3, 4:
				body = h.assignE(tk.ID, node)
			case 5:
				body = h.startE(tk.ID, tk.NodeID)
			case 6:
				body = h.completeE(tk.ID, tk.NodeID)
			case 7:
				body = h.cancelE(tk.ID)
			case 8:
				body = h.statusE(node, []NodeStatus{NodeHealthy, NodeUnreachable}[rng.IntN(2)])
			default:
				body = h.retireE(tk.ID)
			}
		}
		h.apply(body) // refusals are fine: they change nothing
		if step%50 == 0 {
			checkInvariants(t, h.f)
		}
		quotas := []PendingQuota{{Cloud: clouds[rng.IntN(3)], Limit: rng.IntN(5)}, {Cloud: clouds[rng.IntN(3)], Limit: rng.IntN(5)}, {Cloud: clouds[rng.IntN(3)], Limit: rng.IntN(5)}}
		most := rng.IntN(8) // 0: no bound
		var want []string
		taken := map[string]int{}
		limits := map[string]int{}
		for _, q := range quotas {
			limits[q.Cloud] = max(limits[q.Cloud], q.Limit)
		}
		for _, tk := range h.f.Tasks(TaskPending) {
			if l, ok := limits[tk.Cloud]; ok && taken[tk.Cloud] < l {
				taken[tk.Cloud]++
				want = append(want, tk.ID)
			}
		}
		if most > 0 && len(want) > most {
			want = want[:most]
		}
		if got := taskIDs(h.f.OldestPending(quotas, most)); !slices.Equal(got, want) {
			t.Fatalf("step %d: OldestPending(%v) = %v, want %v", step, quotas, got, want)
		}
	}
	checkInvariants(t, h.f)
}
