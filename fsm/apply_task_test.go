package fsm

import (
	"bytes"
	"strings"
	"testing"
)

// applyCase is one named case of an entry-type table test. Each case runs
// on a fresh world (see newWorld).
type applyCase struct {
	name   string
	setup  func(h *harness) // extra setup after the world is built
	entry  func(h *harness) any
	kind   error    // non-nil: the entry must be refused with this kind
	noop   bool     // the entry must be accepted without any change
	tables []string // tables whose index must move when accepted
	check  func(t *testing.T, h *harness, res *ApplyResult)
}

func runCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWorld(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			body := tc.entry(h)
			// Check changes nothing, byte for byte; h.apply compares its
			// answer with Apply's.
			before := snapBytes(t, h.f)
			_ = h.f.Check(body)
			if !bytes.Equal(snapBytes(t, h.f), before) {
				t.Fatal("Check changed the state")
			}
			var res *ApplyResult
			switch {
			case tc.kind != nil:
				res = h.refuse(body, tc.kind)
			case tc.noop:
				res = h.noop(body)
			default:
				res = h.changes(body, tc.tables...)
			}
			if tc.check != nil {
				tc.check(t, h, res)
			}
			checkInvariants(t, h.f)
		})
	}
}

// newWorld builds a state with a task in every status:
//
//	nodes: n1 aws cap 2 (full: holds "assigned" and "running"),
//	       n2 gcp cap 1 (empty), n3 aws unreachable, n4 aws cap 3 (empty)
//	tasks: pending, assigned (n1), running (n1), complete (n2),
//	       failed (n2), cancelled, gcp-only (pending, cloud gcp)
func newWorld(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.ok(h.nodeE("n1", 2))
	n2 := h.nodeE("n2", 1)
	n2.Cloud, n2.Region = "gcp", "europe-west1"
	h.ok(n2)
	h.ok(h.nodeE("n3", 5))
	h.ok(h.statusE("n3", NodeUnreachable))
	h.ok(h.nodeE("n4", 3))
	for _, id := range []string{"pending", "assigned", "running", "complete", "failed", "cancelled"} {
		h.ok(h.addE(id))
	}
	gcp := h.addE("gcp-only")
	gcp.Cloud = "gcp"
	h.ok(gcp)
	h.ok(h.assignE("assigned", "n1"))
	h.ok(h.assignE("running", "n1"))
	h.ok(h.startE("running", "n1"))
	h.ok(h.assignE("complete", "n2"))
	h.ok(h.completeE("complete", "n2"))
	h.ok(h.assignE("failed", "n2"))
	h.ok(h.startE("failed", "n2"))
	h.ok(h.failE("failed", "n2"))
	h.ok(h.cancelE("cancelled"))
	checkInvariants(t, h.f)
	return h
}

func TestAddTask(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	add := func(mod func(e *AddTaskEntry)) func(h *harness) any {
		return func(h *harness) any {
			e := h.addE("new-task")
			mod(e)
			return e
		}
	}
	same := func(mod func(e *AddTaskEntry)) func(h *harness) any {
		return func(h *harness) any {
			e := h.addE("pending") // as newWorld added it
			mod(e)
			return e
		}
	}
	bigPayload := map[string]string{}
	for i := 0; i <= MaxPayloadKeys; i++ {
		bigPayload[long(i+1)] = "v"
	}
	runCases(t, []applyCase{
		{name: "new task is pending", entry: add(func(e *AddTaskEntry) {}), tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				got := h.wantTask("new-task", TaskPending, "")
				if res.Task != got || got.CreateIndex != h.index || got.ModifyIndex != h.index ||
					got.MaxAttempts != DefaultMaxAttempts || got.CreatedAt == 0 || got.CreatedAt != got.UpdatedAt ||
					len(got.History) != 0 || !got.Payload.Equal(map[string]string{"cmd": "true"}) {
					t.Fatalf("stored task %+v", got)
				}
			}},
		{name: "id with every allowed character", entry: add(func(e *AddTaskEntry) { e.ID = "Az09._:-x" }), tables: []string{"tasks"}},
		{name: "explicit max attempts", entry: add(func(e *AddTaskEntry) { e.MaxAttempts = MaxAttemptsLimit }), tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Task.MaxAttempts != MaxAttemptsLimit {
					t.Fatalf("MaxAttempts = %d", res.Task.MaxAttempts)
				}
			}},
		{name: "empty payload stored as nil", entry: add(func(e *AddTaskEntry) { e.Payload = map[string]string{} }), tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Task.Payload != nil {
					t.Fatalf("Payload = %#v, want nil", res.Task.Payload)
				}
			}},
		{name: "identical re-add is a no-op", entry: same(func(e *AddTaskEntry) {}), noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Task != h.task("pending") {
					t.Fatalf("no-op returned %p, want the stored task", res.Task)
				}
			}},
		{name: "re-add with default attempts spelled out is a no-op", entry: same(func(e *AddTaskEntry) { e.MaxAttempts = DefaultMaxAttempts }), noop: true},
		{name: "re-add of a finished task is a no-op", entry: func(h *harness) any { return h.addE("complete") }, noop: true},
		{name: "re-add with nil vs empty payload is a no-op", setup: func(h *harness) {
			e := h.addE("bare")
			e.Payload = nil
			h.ok(e)
		}, entry: func(h *harness) any {
			e := h.addE("bare")
			e.Payload = map[string]string{}
			return e
		}, noop: true},
		{name: "re-add with other type", entry: same(func(e *AddTaskEntry) { e.Type = "other" }), kind: ErrConflict},
		{name: "re-add with other payload", entry: same(func(e *AddTaskEntry) { e.Payload = map[string]string{"cmd": "false"} }), kind: ErrConflict},
		{name: "re-add with other cloud", entry: same(func(e *AddTaskEntry) { e.Cloud = "aws" }), kind: ErrConflict},
		{name: "re-add with other max attempts", entry: same(func(e *AddTaskEntry) { e.MaxAttempts = 7 }), kind: ErrConflict},
		{name: "empty id", entry: add(func(e *AddTaskEntry) { e.ID = "" }), kind: ErrInvalid},
		{name: "id too long", entry: add(func(e *AddTaskEntry) { e.ID = long(MaxIDLen + 1) }), kind: ErrInvalid},
		{name: "id of max length", entry: add(func(e *AddTaskEntry) { e.ID = long(MaxIDLen) }), tables: []string{"tasks"}},
		{name: "id starting with dash", entry: add(func(e *AddTaskEntry) { e.ID = "-x" }), kind: ErrInvalid},
		{name: "id with slash", entry: add(func(e *AddTaskEntry) { e.ID = "a/b" }), kind: ErrInvalid},
		{name: "id with non-ascii", entry: add(func(e *AddTaskEntry) { e.ID = "tâche" }), kind: ErrInvalid},
		{name: "empty type", entry: add(func(e *AddTaskEntry) { e.Type = "" }), kind: ErrInvalid},
		{name: "uppercase type", entry: add(func(e *AddTaskEntry) { e.Type = "Shell" }), kind: ErrInvalid},
		{name: "type too long", entry: add(func(e *AddTaskEntry) { e.Type = long(MaxTypeLen + 1) }), kind: ErrInvalid},
		{name: "too many payload keys", entry: add(func(e *AddTaskEntry) { e.Payload = bigPayload }), kind: ErrInvalid},
		{name: "empty payload key", entry: add(func(e *AddTaskEntry) { e.Payload = map[string]string{"": "v"} }), kind: ErrInvalid},
		{name: "payload key too long", entry: add(func(e *AddTaskEntry) { e.Payload = map[string]string{long(MaxPayloadKeyLen + 1): "v"} }), kind: ErrInvalid},
		{name: "payload value too long", entry: add(func(e *AddTaskEntry) { e.Payload = map[string]string{"k": long(MaxPayloadValueLen + 1)} }), kind: ErrInvalid},
		{name: "payload value not utf-8", entry: add(func(e *AddTaskEntry) { e.Payload = map[string]string{"k": "\xff"} }), kind: ErrInvalid},
		{name: "cloud with uppercase", entry: add(func(e *AddTaskEntry) { e.Cloud = "AWS" }), kind: ErrInvalid},
		{name: "cloud too long", entry: add(func(e *AddTaskEntry) { e.Cloud = long(65) }), kind: ErrInvalid},
		{name: "negative max attempts", entry: add(func(e *AddTaskEntry) { e.MaxAttempts = -1 }), kind: ErrInvalid},
		{name: "max attempts over limit", entry: add(func(e *AddTaskEntry) { e.MaxAttempts = MaxAttemptsLimit + 1 }), kind: ErrInvalid},
		{name: "zero time", entry: add(func(e *AddTaskEntry) { e.Time = 0 }), kind: ErrInvalid},
		{name: "negative time", entry: add(func(e *AddTaskEntry) { e.Time = -5 }), kind: ErrInvalid},
	})
}

func TestAssignTask(t *testing.T) {
	runCases(t, []applyCase{
		{name: "pending task to node with room", entry: func(h *harness) any { return h.assignE("pending", "n4") }, tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				got := h.wantTask("pending", TaskAssigned, "n4")
				if res.Task != got || got.Attempts != 1 || got.ModifyIndex != h.index {
					t.Fatalf("stored task %+v", got)
				}
				if last := got.History[len(got.History)-1]; last.Status != TaskAssigned || last.NodeID != "n4" {
					t.Fatalf("last event %+v", last)
				}
				if n := h.f.NodeTasks("n4"); len(n) != 1 || n[0] != got {
					t.Fatalf("NodeTasks(n4) = %v", n)
				}
			}},
		{name: "cloud-bound task to node in that cloud", entry: func(h *harness) any { return h.assignE("gcp-only", "n2") }, tables: []string{"tasks"}},
		{name: "degraded node still takes tasks", setup: func(h *harness) { h.ok(h.statusE("n4", NodeDegraded)) },
			entry: func(h *harness) any { return h.assignE("pending", "n4") }, tables: []string{"tasks"}},
		{name: "unknown task", entry: func(h *harness) any { return h.assignE("nope", "n4") }, kind: ErrNotFound},
		{name: "unknown node", entry: func(h *harness) any { return h.assignE("pending", "nope") }, kind: ErrInvalid},
		{name: "already assigned", entry: func(h *harness) any { return h.assignE("assigned", "n4") }, kind: ErrConflict},
		{name: "assigned again to its holder", entry: func(h *harness) any { return h.assignE("assigned", "n1") }, kind: ErrConflict},
		{name: "running", entry: func(h *harness) any { return h.assignE("running", "n4") }, kind: ErrConflict},
		{name: "complete", entry: func(h *harness) any { return h.assignE("complete", "n4") }, kind: ErrConflict},
		{name: "failed", entry: func(h *harness) any { return h.assignE("failed", "n4") }, kind: ErrConflict},
		{name: "cancelled", entry: func(h *harness) any { return h.assignE("cancelled", "n4") }, kind: ErrConflict},
		{name: "unreachable node", entry: func(h *harness) any { return h.assignE("pending", "n3") }, kind: ErrConflict},
		{name: "wrong cloud", entry: func(h *harness) any { return h.assignE("gcp-only", "n4") }, kind: ErrConflict},
		{name: "full node", entry: func(h *harness) any { return h.assignE("pending", "n1") }, kind: ErrConflict},
		{name: "empty task id", entry: func(h *harness) any { return h.assignE("", "n4") }, kind: ErrInvalid},
		{name: "empty node id", entry: func(h *harness) any { return h.assignE("pending", "") }, kind: ErrInvalid},
		{name: "zero time", entry: func(h *harness) any { e := h.assignE("pending", "n4"); e.Time = 0; return e }, kind: ErrInvalid},
	})
}

func TestStartTask(t *testing.T) {
	runCases(t, []applyCase{
		{name: "assigned task on its node", entry: func(h *harness) any { return h.startE("assigned", "n1") }, tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if got := h.wantTask("assigned", TaskRunning, "n1"); res.Task != got {
					t.Fatalf("result task %p, stored %p", res.Task, got)
				}
			}},
		{name: "resent start is a no-op", entry: func(h *harness) any { return h.startE("running", "n1") }, noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Task != h.task("running") {
					t.Fatal("no-op did not return the stored task")
				}
			}},
		{name: "assigned task from another node", entry: func(h *harness) any { return h.startE("assigned", "n4") }, kind: ErrConflict,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if !strings.Contains(res.Err.Error(), `"n1"`) {
					t.Fatalf("message %q does not name the holder n1", res.Err)
				}
			}},
		{name: "running task from another node", entry: func(h *harness) any { return h.startE("running", "n4") }, kind: ErrConflict},
		{name: "pending task", entry: func(h *harness) any { return h.startE("pending", "n1") }, kind: ErrConflict},
		{name: "complete task", entry: func(h *harness) any { return h.startE("complete", "n2") }, kind: ErrConflict},
		{name: "failed task", entry: func(h *harness) any { return h.startE("failed", "n2") }, kind: ErrConflict},
		{name: "cancelled task", entry: func(h *harness) any { return h.startE("cancelled", "n1") }, kind: ErrConflict},
		{name: "unknown task", entry: func(h *harness) any { return h.startE("nope", "n1") }, kind: ErrNotFound},
		{name: "empty node id", entry: func(h *harness) any { return h.startE("assigned", "") }, kind: ErrInvalid},
		{name: "zero time", entry: func(h *harness) any { e := h.startE("assigned", "n1"); e.Time = 0; return e }, kind: ErrInvalid},
	})
}

// finishCases covers complete_task and fail_task, which share their rules;
// entry builds the entry under test, other the opposite one.
func finishCases(to TaskStatus, entry, other func(h *harness, task, node string) any) []applyCase {
	done, opposite := "complete", "failed"
	if to == TaskFailed {
		done, opposite = "failed", "complete"
	}
	e := func(task, node string) func(h *harness) any {
		return func(h *harness) any { return entry(h, task, node) }
	}
	return []applyCase{
		{name: "running task on its node", entry: e("running", "n1"), tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				got := h.wantTask("running", to, "n1")
				if got.Result == nil || res.Task != got {
					t.Fatalf("stored task %+v", got)
				}
				if len(h.f.NodeTasks("n1")) != 1 {
					t.Fatalf("n1 still holds %d tasks, want 1", len(h.f.NodeTasks("n1")))
				}
			}},
		{name: "assigned task on its node", entry: e("assigned", "n1"), tables: []string{"tasks"}},
		{name: "resent report is a no-op", entry: e(done, "n2"), noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Task != h.task(done) {
					t.Fatal("no-op did not return the stored task")
				}
			}},
		{name: "same status from another node", entry: e(done, "n1"), kind: ErrConflict},
		{name: "opposite terminal state", entry: e(opposite, "n2"), kind: ErrConflict},
		{name: "late report from a node that lost the task", setup: func(h *harness) {
			h.ok(h.statusE("n1", NodeUnreachable)) // requeues "running"
			h.ok(h.assignE("running", "n4"))
		}, entry: e("running", "n1"), kind: ErrConflict},
		{name: "late report after requeue to pending", setup: func(h *harness) { h.ok(h.statusE("n1", NodeUnreachable)) },
			entry: e("running", "n1"), kind: ErrConflict},
		{name: "report after the opposite report", setup: func(h *harness) { h.ok(other(h, "running", "n1")) },
			entry: e("running", "n1"), kind: ErrConflict},
		{name: "held by another node", entry: e("running", "n4"), kind: ErrConflict,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if !strings.Contains(res.Err.Error(), `"n1"`) {
					t.Fatalf("message %q does not name the holder n1", res.Err)
				}
			}},
		{name: "pending task", entry: e("pending", "n1"), kind: ErrConflict},
		{name: "cancelled task", entry: e("cancelled", "n1"), kind: ErrConflict},
		{name: "unknown task", entry: e("nope", "n1"), kind: ErrNotFound},
		{name: "empty task id", entry: e("", "n1"), kind: ErrInvalid},
		{name: "empty node id", entry: e("running", ""), kind: ErrInvalid},
	}
}

func TestCompleteTask(t *testing.T) {
	complete := func(h *harness, task, node string) any { return h.completeE(task, node) }
	fail := func(h *harness, task, node string) any { return h.failE(task, node) }
	runCases(t, finishCases(TaskComplete, complete, fail))
}

func TestFailTask(t *testing.T) {
	complete := func(h *harness, task, node string) any { return h.completeE(task, node) }
	fail := func(h *harness, task, node string) any { return h.failE(task, node) }
	runCases(t, finishCases(TaskFailed, fail, complete))
}

func TestFinishTaskResult(t *testing.T) {
	h := newWorld(t)
	out := strings.Repeat("x", MaxOutputLen) + "tail"
	h.ok(&CompleteTaskEntry{TaskID: "running", NodeID: "n1", Time: h.tick(),
		Result: Result{ExitCode: 3, Output: "€" + out, Error: "bad \xff byte"}})
	r := h.task("running").Result
	if r.ExitCode != 3 || len(r.Output) != MaxOutputLen || !strings.HasSuffix(r.Output, "tail") {
		t.Fatalf("output kept %d bytes (suffix ok: %v), want the last %d", len(r.Output), strings.HasSuffix(r.Output, "tail"), MaxOutputLen)
	}
	if r.Error != "bad \uFFFD byte" {
		t.Fatalf("error = %q, want invalid UTF-8 replaced", r.Error)
	}
	// A cut inside a multi-byte rune drops the partial rune.
	if got := truncateTail("ab€", 2); got != "" {
		t.Fatalf("truncateTail(ab€, 2) = %q, want empty", got)
	}
	if got := truncateHead("a€b", 3); got != "a" {
		t.Fatalf("truncateHead(a€b, 3) = %q, want a", got)
	}
	// A resent complete with a different result keeps the first one.
	h.noop(&CompleteTaskEntry{TaskID: "running", NodeID: "n1", Time: h.tick(), Result: Result{Output: "other"}})
	if h.task("running").Result != r {
		t.Fatal("resent complete replaced the stored result")
	}
}

func TestCancelTask(t *testing.T) {
	c := func(id string) func(h *harness) any { return func(h *harness) any { return h.cancelE(id) } }
	runCases(t, []applyCase{
		{name: "pending task", entry: c("pending"), tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				got := h.wantTask("pending", TaskCancelled, "")
				if last := got.History[len(got.History)-1]; last.Message != "operator" {
					t.Fatalf("last event %+v, want the reason as message", last)
				}
			}},
		{name: "assigned task frees its node", entry: c("assigned"), tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				got := h.wantTask("assigned", TaskCancelled, "")
				if last := got.History[len(got.History)-1]; last.NodeID != "n1" {
					t.Fatalf("last event %+v, want node n1 kept", last)
				}
				if n := h.f.NodeTasks("n1"); len(n) != 1 || n[0].ID != "running" {
					t.Fatalf("NodeTasks(n1) = %v, want only running", n)
				}
				h.ok(h.assignE("pending", "n1")) // the freed slot is usable
			}},
		{name: "running task", entry: c("running"), tables: []string{"tasks"}},
		{name: "without reason", entry: func(h *harness) any { return &CancelTaskEntry{TaskID: "pending", Time: h.tick()} }, tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if last := res.Task.History[len(res.Task.History)-1]; last.Message != "cancelled" {
					t.Fatalf("message %q", last.Message)
				}
			}},
		{name: "long reason is cut", entry: func(h *harness) any {
			return &CancelTaskEntry{TaskID: "pending", Reason: strings.Repeat("r", 5000), Time: h.tick()}
		}, tables: []string{"tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if last := res.Task.History[len(res.Task.History)-1]; len(last.Message) != maxMessageLen {
					t.Fatalf("message is %d bytes", len(last.Message))
				}
			}},
		{name: "re-cancel is a no-op", entry: c("cancelled"), noop: true},
		{name: "complete task", entry: c("complete"), kind: ErrConflict},
		{name: "failed task", entry: c("failed"), kind: ErrConflict},
		{name: "unknown task", entry: c("nope"), kind: ErrNotFound},
		{name: "empty id", entry: c(""), kind: ErrInvalid},
		{name: "zero time", entry: func(h *harness) any { return &CancelTaskEntry{TaskID: "pending"} }, kind: ErrInvalid},
	})
}

func TestHistoryIsBoundedAndCopied(t *testing.T) {
	h := newHarness(t)
	h.ok(h.nodeE("n1", 1))
	e := h.addE("t")
	e.MaxAttempts = MaxAttemptsLimit
	h.ok(e)
	var kept []*Task
	for i := 0; i < MaxHistory; i++ {
		h.ok(h.assignE("t", "n1"))
		kept = append(kept, h.task("t"))
		h.ok(h.statusE("n1", NodeUnreachable))
		h.ok(h.statusE("n1", NodeHealthy))
	}
	got := h.task("t")
	if len(got.History) != MaxHistory {
		t.Fatalf("history has %d events, want %d", len(got.History), MaxHistory)
	}
	if got.History[0].Index <= 2 {
		t.Fatalf("oldest event at index %d: the oldest events were not dropped", got.History[0].Index)
	}
	// Older copies are untouched by later transitions.
	for i, old := range kept {
		if last := old.History[len(old.History)-1]; last.Status != TaskAssigned || old.Status != TaskAssigned {
			t.Fatalf("copy %d was modified: status %s, last event %+v", i, old.Status, last)
		}
	}
	checkInvariants(t, h.f)
}
