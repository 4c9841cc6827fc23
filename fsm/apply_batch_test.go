package fsm

import "testing"

func (h *harness) batchE(ids ...string) *AddTasksEntry {
	e := &AddTasksEntry{Time: h.tick()}
	for _, id := range ids {
		e.Tasks = append(e.Tasks, *h.addE(id))
	}
	return e
}

func TestAddTasksBatch(t *testing.T) {
	t.Run("adds every task in order", func(t *testing.T) {
		h := newHarness(t)
		res := h.changes(h.batchE("b1", "b2", "b3"), "tasks")
		if len(res.Tasks) != 3 || res.Tasks[0].ID != "b1" || res.Tasks[2].ID != "b3" {
			t.Fatalf("result tasks %+v", res.Tasks)
		}
		for _, id := range []string{"b1", "b2", "b3"} {
			tk := h.wantTask(id, TaskPending, "")
			if tk.CreateIndex != h.index {
				t.Fatalf("%s created at %d, want %d", id, tk.CreateIndex, h.index)
			}
		}
	})
	t.Run("resending the batch is a no-op", func(t *testing.T) {
		h := newHarness(t)
		e := h.batchE("b1", "b2")
		h.ok(e)
		again := *e
		again.Time = h.tick()
		res := h.noop(&again)
		if len(res.Tasks) != 2 || res.Tasks[0].CreateIndex != h.index-1 {
			t.Fatalf("no-op returned %+v", res.Tasks)
		}
	})
	t.Run("mixes existing identical and new tasks", func(t *testing.T) {
		h := newHarness(t)
		h.ok(h.addE("old"))
		res := h.changes(h.batchE("old", "new"), "tasks")
		if res.Tasks[0].CreateIndex == h.index || res.Tasks[1].CreateIndex != h.index {
			t.Fatalf("old/new create indexes %d/%d", res.Tasks[0].CreateIndex, res.Tasks[1].CreateIndex)
		}
	})
	t.Run("identical duplicate inside the batch is fine", func(t *testing.T) {
		h := newHarness(t)
		h.changes(h.batchE("d", "d"), "tasks")
		if n := len(h.f.Tasks("")); n != 1 {
			t.Fatalf("%d tasks, want 1", n)
		}
	})

	refusals := []struct {
		name string
		mod  func(h *harness) *AddTasksEntry
		kind error
	}{
		{"empty batch", func(h *harness) *AddTasksEntry { return &AddTasksEntry{Time: h.tick()} }, ErrInvalid},
		{"too many", func(h *harness) *AddTasksEntry {
			e := &AddTasksEntry{Time: h.tick()}
			for i := 0; i <= MaxBatch; i++ {
				e.Tasks = append(e.Tasks, AddTaskEntry{ID: "x" + itoa(i), Type: "sleep"})
			}
			return e
		}, ErrInvalid},
		{"zero time", func(h *harness) *AddTasksEntry { e := h.batchE("a"); e.Time = 0; return e }, ErrInvalid},
		{"one bad element refuses all", func(h *harness) *AddTasksEntry {
			e := h.batchE("good", "bad id")
			return e
		}, ErrInvalid},
		{"conflicting duplicate inside the batch", func(h *harness) *AddTasksEntry {
			e := h.batchE("dup", "dup")
			e.Tasks[1].Type = "sleep"
			return e
		}, ErrInvalid},
		{"conflict with an existing task refuses all", func(h *harness) *AddTasksEntry {
			h.ok(h.addE("taken"))
			e := h.batchE("fresh", "taken")
			e.Tasks[1].Payload = map[string]string{"cmd": "other"}
			return e
		}, ErrConflict},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			e := tc.mod(h)
			h.refuse(e, tc.kind)
			if h.f.Task("good") != nil || h.f.Task("fresh") != nil {
				t.Fatal("a refused batch added some of its tasks")
			}
		})
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestBatchKeepsListOrderAndOldestTasks(t *testing.T) {
	h := newHarness(t)
	h.ok(h.addE("m-first"))
	h.ok(h.batchE("z", "a", "m"))
	h.ok(h.addE("b-last"))
	var got []string
	for _, tk := range h.f.Tasks("") {
		got = append(got, tk.ID)
	}
	want := []string{"m-first", "a", "m", "z", "b-last"}
	if len(got) != len(want) {
		t.Fatalf("tasks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("tasks %v, want %v (by create index, then id)", got, want)
		}
	}
	checkInvariants(t, h.f)
	oldest := h.f.OldestTasks(TaskPending, 2)
	if len(oldest) != 2 || oldest[0].ID != "m-first" || oldest[1].ID != "a" {
		t.Fatalf("OldestTasks(pending, 2) = %v", oldest)
	}
	if n := len(h.f.OldestTasks(TaskPending, 100)); n != 5 {
		t.Fatalf("OldestTasks with a large limit returned %d, want 5", n)
	}
	if n := len(h.f.OldestTasks(TaskRunning, 3)); n != 0 {
		t.Fatalf("OldestTasks(running) returned %d tasks, want none", n)
	}
}
