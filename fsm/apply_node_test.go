package fsm

import (
	"strings"
	"testing"
)

func TestNodeRegister(t *testing.T) {
	reg := func(id string, mod func(e *NodeRegisterEntry)) func(h *harness) any {
		return func(h *harness) any {
			e := h.nodeE(id, 3)
			mod(e)
			return e
		}
	}
	// same re-registers n4 exactly as newWorld did.
	same := func(mod func(e *NodeRegisterEntry)) func(h *harness) any { return reg("n4", mod) }
	runCases(t, []applyCase{
		{name: "new node is healthy", entry: reg("n9", func(e *NodeRegisterEntry) { e.Meta = map[string]string{"rack": "r1"} }), tables: []string{"nodes"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				n := h.f.Node("n9")
				if n == nil || res.Node != n || n.Status != NodeHealthy || n.CreateIndex != h.index || n.RegisteredAt == 0 ||
					n.Capacity != 3 || n.Meta["rack"] != "r1" {
					t.Fatalf("stored node %+v", n)
				}
			}},
		{name: "identical re-register is a no-op", entry: same(func(e *NodeRegisterEntry) {}), noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Node != h.f.Node("n4") {
					t.Fatal("no-op did not return the stored node")
				}
			}},
		{name: "nil and empty meta are the same", entry: same(func(e *NodeRegisterEntry) { e.Meta = map[string]string{} }), noop: true},
		{name: "returning unreachable node becomes healthy", entry: reg("n3", func(e *NodeRegisterEntry) { e.Capacity = 5 }), tables: []string{"nodes"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				n := h.f.Node("n3")
				if n.Status != NodeHealthy || n.CreateIndex >= n.ModifyIndex || n.ModifyIndex != h.index {
					t.Fatalf("stored node %+v", n)
				}
			}},
		{name: "degraded node re-registering becomes healthy", setup: func(h *harness) { h.ok(h.statusE("n4", NodeDegraded)) },
			entry: same(func(e *NodeRegisterEntry) {}), tables: []string{"nodes"}},
		{name: "new capacity and labels", entry: same(func(e *NodeRegisterEntry) {
			e.Capacity, e.Address, e.Region = 9, "10.9.9.9:1", "us-west-2"
		}), tables: []string{"nodes"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				n := h.f.Node("n4")
				if n.Capacity != 9 || n.Address != "10.9.9.9:1" || n.Region != "us-west-2" {
					t.Fatalf("stored node %+v", n)
				}
			}},
		{name: "re-register of a node holding tasks requeues them (agent restarted)",
			entry: reg("n1", func(e *NodeRegisterEntry) {}), tables: []string{"nodes", "tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if n := len(h.f.NodeTasks("n1")); n != 0 {
					t.Fatalf("n1 still holds %d tasks after re-registering", n)
				}
				requeued := 0
				for _, tk := range h.f.Tasks(TaskPending) {
					if len(tk.History) == 0 {
						continue
					}
					last := tk.History[len(tk.History)-1]
					if last.NodeID == "n1" && last.Index == h.index && strings.Contains(last.Message, "registered again") {
						requeued++
					}
				}
				if requeued != 2 {
					t.Fatalf("%d of n1's 2 tasks requeued", requeued)
				}
			}},
		{name: "bad id", entry: reg("n 1", func(e *NodeRegisterEntry) {}), kind: ErrInvalid},
		{name: "empty id", entry: reg("", func(e *NodeRegisterEntry) {}), kind: ErrInvalid},
		{name: "zero capacity", entry: reg("n9", func(e *NodeRegisterEntry) { e.Capacity = 0 }), kind: ErrInvalid},
		{name: "capacity over limit", entry: reg("n9", func(e *NodeRegisterEntry) { e.Capacity = MaxCapacity + 1 }), kind: ErrInvalid},
		{name: "address too long", entry: reg("n9", func(e *NodeRegisterEntry) { e.Address = strings.Repeat("a", 257) }), kind: ErrInvalid},
		{name: "cloud too long", entry: reg("n9", func(e *NodeRegisterEntry) { e.Cloud = strings.Repeat("a", 65) }), kind: ErrInvalid},
		{name: "region with space", entry: reg("n9", func(e *NodeRegisterEntry) { e.Region = "us east" }), kind: ErrInvalid},
		{name: "meta with empty key", entry: reg("n9", func(e *NodeRegisterEntry) { e.Meta = map[string]string{"": "x"} }), kind: ErrInvalid},
		{name: "meta value too long", entry: reg("n9", func(e *NodeRegisterEntry) {
			e.Meta = map[string]string{"k": strings.Repeat("v", MaxPayloadValueLen+1)}
		}), kind: ErrInvalid},
		{name: "zero time", entry: reg("n9", func(e *NodeRegisterEntry) { e.Time = 0 }), kind: ErrInvalid},
		{name: "invalid update of existing node", entry: same(func(e *NodeRegisterEntry) { e.Capacity = -1 }), kind: ErrInvalid},
	})
}

func TestNodeStatus(t *testing.T) {
	st := func(id string, s NodeStatus) func(h *harness) any {
		return func(h *harness) any { return h.statusE(id, s) }
	}
	runCases(t, []applyCase{
		{name: "healthy to degraded keeps tasks", entry: st("n1", NodeDegraded), tables: []string{"nodes"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Node.Status != NodeDegraded || len(h.f.NodeTasks("n1")) != 2 {
					t.Fatalf("node %+v holds %d tasks", res.Node, len(h.f.NodeTasks("n1")))
				}
			}},
		{name: "unreachable requeues held tasks", entry: st("n1", NodeUnreachable), tables: []string{"nodes", "tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				for _, id := range []string{"assigned", "running"} {
					got := h.wantTask(id, TaskPending, "")
					last := got.History[len(got.History)-1]
					if last.Message != "requeued: node n1 unreachable" || last.NodeID != "n1" || got.ModifyIndex != h.index {
						t.Fatalf("task %q: last event %+v", id, last)
					}
				}
				if len(h.f.NodeTasks("n1")) != 0 {
					t.Fatal("n1 still holds tasks")
				}
			}},
		{name: "unreachable without tasks leaves the tasks index", entry: st("n4", NodeUnreachable), tables: []string{"nodes"}},
		{name: "unreachable back to healthy", entry: st("n3", NodeHealthy), tables: []string{"nodes"}},
		{name: "same status is a no-op", entry: st("n1", NodeHealthy), noop: true},
		{name: "unknown node", entry: st("nope", NodeDegraded), kind: ErrNotFound},
		{name: "invalid status", entry: st("n1", "sleepy"), kind: ErrInvalid},
		{name: "empty status", entry: st("n1", ""), kind: ErrInvalid},
		{name: "zero time", entry: func(h *harness) any { return &NodeStatusEntry{NodeID: "n1", Status: NodeDegraded} }, kind: ErrInvalid},
	})
}

func TestNodeUnregister(t *testing.T) {
	un := func(id string) func(h *harness) any {
		return func(h *harness) any { return &NodeUnregisterEntry{NodeID: id, Time: h.tick()} }
	}
	runCases(t, []applyCase{
		{name: "node with tasks", entry: un("n1"), tables: []string{"nodes", "tasks"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if h.f.Node("n1") != nil || res.Node != nil {
					t.Fatal("n1 still exists")
				}
				for _, id := range []string{"assigned", "running"} {
					got := h.wantTask(id, TaskPending, "")
					if last := got.History[len(got.History)-1]; last.Message != "requeued: node n1 left" {
						t.Fatalf("task %q: last event %+v", id, last)
					}
				}
			}},
		{name: "node without tasks", entry: un("n4"), tables: []string{"nodes"}},
		{name: "node that finished tasks keeps their holder", entry: un("n2"), tables: []string{"nodes"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				h.wantTask("complete", TaskComplete, "n2")
			}},
		{name: "unknown node", entry: un("nope"), kind: ErrNotFound},
		{name: "empty id", entry: un(""), kind: ErrInvalid},
		{name: "zero time", entry: func(h *harness) any { return &NodeUnregisterEntry{NodeID: "n1"} }, kind: ErrInvalid},
	})
}

// TestRequeueGivesUp walks a task through MaxAttempts assignments to
// nodes that disappear, then checks it fails instead of returning to
// pending, on both paths (unreachable and unregister).
func TestRequeueGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(h *harness, node string)
		why  string
	}{
		{name: "unreachable", why: "unreachable", lose: func(h *harness, node string) { h.ok(h.statusE(node, NodeUnreachable)) }},
		{name: "unregister", why: "left", lose: func(h *harness, node string) { h.ok(&NodeUnregisterEntry{NodeID: node, Time: h.tick()}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			e := h.addE("t")
			e.MaxAttempts = 2
			h.ok(e)
			h.ok(h.addE("other")) // held by the same node, attempts left
			for attempt := 1; attempt <= 2; attempt++ {
				h.ok(h.nodeE("n1", 4))
				h.ok(h.assignE("t", "n1"))
				if attempt == 2 {
					h.ok(h.assignE("other", "n1"))
					h.ok(h.startE("t", "n1"))
				}
				tc.lose(h, "n1")
				if attempt == 1 {
					h.wantTask("t", TaskPending, "")
				}
			}
			got := h.wantTask("t", TaskFailed, "n1")
			want := "node n1 " + tc.why + "; gave up after 2 attempts"
			if got.Attempts != 2 || got.Result == nil || got.Result.Error != want || got.Result.ExitCode != -1 {
				t.Fatalf("task %+v result %+v, want error %q", got, got.Result, want)
			}
			if last := got.History[len(got.History)-1]; last.Status != TaskFailed || last.NodeID != "n1" {
				t.Fatalf("last event %+v", last)
			}
			h.wantTask("other", TaskPending, "")
			if n := h.f.NodeTasks("n1"); len(n) != 0 {
				t.Fatalf("NodeTasks(n1) = %v after losing the node", n)
			}
			checkInvariants(t, h.f)
		})
	}
}

// TestRequeueOrderAndCapacity checks NodeTasks order and that a requeued
// task can be placed again.
func TestRequeueOrderAndCapacity(t *testing.T) {
	h := newHarness(t)
	h.ok(h.nodeE("n1", 3))
	h.ok(h.nodeE("n2", 3))
	for _, id := range []string{"c", "a", "b"} {
		h.ok(h.addE(id))
	}
	for _, id := range []string{"b", "c", "a"} {
		h.ok(h.assignE(id, "n1"))
	}
	var ids []string
	for _, task := range h.f.NodeTasks("n1") {
		ids = append(ids, task.ID)
	}
	if strings.Join(ids, ",") != "c,a,b" {
		t.Fatalf("NodeTasks(n1) = %v, want creation order c,a,b", ids)
	}
	h.refuse(h.assignE("a", "n2"), ErrConflict)
	h.ok(h.statusE("n1", NodeUnreachable))
	for _, id := range []string{"c", "a", "b"} {
		h.ok(h.assignE(id, "n2"))
		if got := h.wantTask(id, TaskAssigned, "n2"); got.Attempts != 2 {
			t.Fatalf("task %q attempts = %d, want 2", id, got.Attempts)
		}
	}
	h.noop(h.addE("a")) // the same add with a later time is still the same task
	checkInvariants(t, h.f)
}
