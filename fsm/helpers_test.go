package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// harness feeds entries to an FSM with increasing log indexes and times.
type harness struct {
	t     *testing.T
	f     *FSM
	index uint64
	now   int64
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return &harness{t: t, f: New(), now: 1_700_000_000_000_000_000}
}

// encode encodes an entry body or fails the test.
func encode(t testing.TB, body any) []byte {
	t.Helper()
	b, err := EncodeEntry(body)
	if err != nil {
		t.Fatalf("encode %T: %v", body, err)
	}
	return b
}

// applyRaw applies raw entry bytes at the next index.
func (h *harness) applyRaw(data []byte) *ApplyResult {
	h.t.Helper()
	h.index++
	out := h.f.ApplyRaft(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data})
	res, ok := out.(*ApplyResult)
	if !ok || res == nil {
		h.t.Fatalf("Apply returned %T %v, want *ApplyResult", out, out)
	}
	if res.Index != h.index {
		h.t.Fatalf("ApplyResult.Index = %d, want %d", res.Index, h.index)
	}
	return res
}

// apply encodes and applies body at the next index. Before that it runs
// Check on the body and wants exactly the error Apply then returns, and
// no visible change from Check (indexes, WatchCh; runCases and the Check
// tests also compare the snapshot bytes).
func (h *harness) apply(body any) *ApplyResult {
	h.t.Helper()
	data := encode(h.t, body)
	idx, ch := h.f.Indexes(), h.f.WatchCh()
	checkErr := h.f.Check(body)
	if h.f.Indexes() != idx || closed(ch) {
		h.t.Fatalf("Check(%T) changed the state", body)
	}
	res := h.applyRaw(data)
	if msg := sameErr(checkErr, res.Err); msg != "" {
		h.t.Fatalf("Check(%T) disagrees with Apply: %s", body, msg)
	}
	return res
}

// sameErr describes how a Check error and an ApplyResult.Err differ, ""
// when they are equal: both nil, or *Errors of the same Kind and Msg.
func sameErr(check, apply error) string {
	if check == nil && apply == nil {
		return ""
	}
	if (check == nil) != (apply == nil) {
		return fmt.Sprintf("Check returned %v, Apply %v", check, apply)
	}
	var ce, ae *Error
	if !errors.As(check, &ce) || !errors.As(apply, &ae) {
		return fmt.Sprintf("Check returned %#v, Apply %#v: want *Error", check, apply)
	}
	if ce.Kind != ae.Kind || ce.Msg != ae.Msg {
		return fmt.Sprintf("Check returned %v %q, Apply %v %q", ce.Kind, ce.Msg, ae.Kind, ae.Msg)
	}
	return ""
}

// ok applies body and fails the test if it was refused.
func (h *harness) ok(body any) *ApplyResult {
	h.t.Helper()
	res := h.apply(body)
	if res.Err != nil {
		h.t.Fatalf("apply %T: unexpected refusal: %v", body, res.Err)
	}
	return res
}

// changes applies body, wants it accepted, and wants WatchCh closed and
// the given table indexes moved to the entry's index.
func (h *harness) changes(body any, tables ...string) *ApplyResult {
	h.t.Helper()
	ch := h.f.WatchCh()
	before := h.f.Indexes()
	res := h.ok(body)
	if !closed(ch) {
		h.t.Fatalf("apply %T: WatchCh not closed after a change", body)
	}
	after := h.f.Indexes()
	got := map[string]uint64{"tasks": after.Tasks, "nodes": after.Nodes, "servers": after.Servers, "acl": after.ACL}
	old := map[string]uint64{"tasks": before.Tasks, "nodes": before.Nodes, "servers": before.Servers, "acl": before.ACL}
	for name := range got {
		want := old[name]
		if slices.Contains(tables, name) {
			want = h.index
		}
		if got[name] != want {
			h.t.Fatalf("apply %T: %s index = %d, want %d", body, name, got[name], want)
		}
	}
	return res
}

// noop applies body and wants it accepted without any change.
func (h *harness) noop(body any) *ApplyResult {
	h.t.Helper()
	before, ch := h.state()
	res := h.ok(body)
	h.unchanged(before, ch, fmt.Sprintf("no-op %T", body))
	return res
}

// refuse applies body and wants it refused with the given kind and
// without any change.
func (h *harness) refuse(body any, kind error) *ApplyResult {
	h.t.Helper()
	return h.refuseRaw(encode(h.t, body), kind, fmt.Sprintf("%T", body))
}

func (h *harness) refuseRaw(data []byte, kind error, what string) *ApplyResult {
	h.t.Helper()
	before, ch := h.state()
	res := h.applyRaw(data)
	if res.Err == nil {
		h.t.Fatalf("apply %s: accepted, want a refusal of kind %v", what, kind)
	}
	if !errors.Is(res.Err, kind) {
		h.t.Fatalf("apply %s: refused with %q, want kind %v", what, res.Err, kind)
	}
	var fe *Error
	if !errors.As(res.Err, &fe) || fe.Msg == "" {
		h.t.Fatalf("apply %s: error %#v is not an *Error with a message", what, res.Err)
	}
	if res.Task != nil || res.Node != nil || res.Tasks != nil || res.Token != nil || res.Retired != nil {
		h.t.Fatalf("apply %s: refusal returned task %v node %v tasks %v token %v retired %v, want nil", what, res.Task, res.Node, res.Tasks, res.Token, res.Retired)
	}
	h.unchanged(before, ch, "refused "+what)
	return res
}

// state returns the snapshot bytes and the watch channel.
func (h *harness) state() ([]byte, <-chan struct{}) {
	h.t.Helper()
	ch := h.f.WatchCh()
	return snapBytes(h.t, h.f), ch
}

// unchanged checks that the last entry changed nothing but Applied: the
// state must equal `before` with a raft no-op applied at that index, the
// table indexes must not move and WatchCh must stay open.
func (h *harness) unchanged(before []byte, ch <-chan struct{}, what string) {
	h.t.Helper()
	twin := restoreBytes(h.t, before)
	prev := twin.Indexes()
	twin.ApplyRaft(&raft.Log{Index: h.index, Type: raft.LogNoop})
	if got, want := snapBytes(h.t, h.f), snapBytes(h.t, twin); !bytes.Equal(got, want) {
		h.t.Fatalf("%s: state changed (snapshot %d bytes, want %d)", what, len(got), len(want))
	}
	idx := h.f.Indexes()
	if idx.Applied != h.index {
		h.t.Fatalf("%s: Applied = %d, want %d", what, idx.Applied, h.index)
	}
	idx.Applied = prev.Applied
	if idx != prev {
		h.t.Fatalf("%s: Indexes = %+v, want %+v", what, idx, prev)
	}
	if closed(ch) {
		h.t.Fatalf("%s: WatchCh closed without a change", what)
	}
	checkInvariants(h.t, h.f)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// snapBytes returns WriteSnapshot's bytes.
func snapBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

// restoreBytes returns a new FSM restored from snapshot bytes.
func restoreBytes(t testing.TB, b []byte) *FSM {
	t.Helper()
	f := New()
	if err := f.Restore(readCloser{bytes.NewReader(b)}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return f
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// Entry builders with sensible defaults; h.now advances on every call so
// that every entry carries a distinct time.

func (h *harness) tick() int64 { h.now += 1000; return h.now }

func (h *harness) addE(id string) *AddTaskEntry {
	return &AddTaskEntry{ID: id, Type: "shell", Payload: map[string]string{"cmd": "true"}, Time: h.tick()}
}

func (h *harness) nodeE(id string, capacity int) *NodeRegisterEntry {
	return &NodeRegisterEntry{ID: id, Address: "10.0.0.1:7000", Cloud: "aws", Region: "us-east-1", Capacity: capacity, Time: h.tick()}
}

func (h *harness) assignE(task, node string) *AssignTaskEntry {
	return &AssignTaskEntry{TaskID: task, NodeID: node, Time: h.tick()}
}

func (h *harness) startE(task, node string) *StartTaskEntry {
	return &StartTaskEntry{TaskID: task, NodeID: node, Time: h.tick()}
}

func (h *harness) completeE(task, node string) *CompleteTaskEntry {
	return &CompleteTaskEntry{TaskID: task, NodeID: node, Result: Result{Output: "done"}, Time: h.tick()}
}

func (h *harness) failE(task, node string) *FailTaskEntry {
	return &FailTaskEntry{TaskID: task, NodeID: node, Result: Result{ExitCode: 2, Error: "boom"}, Time: h.tick()}
}

func (h *harness) cancelE(task string) *CancelTaskEntry {
	return &CancelTaskEntry{TaskID: task, Reason: "operator", Time: h.tick()}
}

func (h *harness) statusE(node string, st NodeStatus) *NodeStatusEntry {
	return &NodeStatusEntry{NodeID: node, Status: st, Time: h.tick()}
}

func (h *harness) retireE(ids ...string) *RetireTasksEntry {
	return &RetireTasksEntry{TaskIDs: ids, Reason: "manual", Time: h.tick()}
}

// task returns the stored task or fails.
func (h *harness) task(id string) *Task {
	h.t.Helper()
	t := h.f.Task(id)
	if t == nil {
		h.t.Fatalf("task %q does not exist", id)
	}
	return t
}

// wantTask checks a task's status and holder.
func (h *harness) wantTask(id string, status TaskStatus, node string) *Task {
	h.t.Helper()
	t := h.task(id)
	if t.Status != status || t.NodeID != node {
		h.t.Fatalf("task %q is %s on %q, want %s on %q", id, t.Status, t.NodeID, status, node)
	}
	return t
}

// checkInvariants verifies the secondary indexes against the tasks and
// the rules every stored object must satisfy.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.st
	tt := &st.tasks
	if len(tt.ids)+tt.dead != len(tt.list) {
		t.Fatalf("ids has %d entries, list %d with %d tombstones", len(tt.ids), len(tt.list), tt.dead)
	}
	if n := len(tt.list); n > 0 && tt.list[n-1] == nil {
		t.Fatal("list ends with a tombstone")
	}
	if len(tt.handleOf) != len(tt.list) || len(tt.ord) != len(tt.ids)+len(tt.free) {
		t.Fatalf("%d handles for %d slots; %d ordinals for %d ids and %d free handles", len(tt.handleOf), len(tt.list), len(tt.ord), len(tt.ids), len(tt.free))
	}
	used := make(map[uint32]bool, len(tt.ord))
	for _, h := range tt.ids {
		used[h] = true
	}
	for _, h := range tt.free {
		if used[h] || int(h) >= len(tt.ord) {
			t.Fatalf("free handle %d is in use or out of range", h)
		}
		used[h] = true
	}
	if tt.dead >= compactMin && tt.dead > len(tt.ids) {
		t.Fatalf("%d tombstones for %d tasks: not compacted", tt.dead, len(tt.ids))
	}
	counts := make(map[TaskStatus]int)
	held := make(map[string][]uint32)
	var prev *Task
	for o, task := range tt.list {
		if task == nil {
			for _, s := range TaskStatuses {
				slot, _ := statusSlot(s)
				if tt.byStatus[slot].has(uint32(o)) {
					t.Fatalf("tombstone %d is in the bitset of %s", o, s)
				}
			}
			continue
		}
		if prev != nil && cmpTask(prev, task) >= 0 {
			t.Fatalf("list out of (CreateIndex, ID) order at %d: %q then %q", o, prev.ID, task.ID)
		}
		prev = task
		if h, ok := tt.ids[task.ID]; !ok || tt.ord[h] != uint32(o) || tt.handleOf[o] != h {
			t.Fatalf("ids[%q] = %d,%v: ordinal %d, want %d", task.ID, h, ok, tt.ord[h], o)
		}
		for _, s := range TaskStatuses {
			slot, _ := statusSlot(s)
			if tt.byStatus[slot].has(uint32(o)) != (task.Status == s) {
				t.Fatalf("task %q (%s): bitset of %s disagrees", task.ID, task.Status, s)
			}
		}
		counts[task.Status]++
		if isHeld(task) {
			held[task.NodeID] = append(held[task.NodeID], uint32(o))
			n := st.nodes[task.NodeID]
			if n == nil || n.Status == NodeUnreachable {
				t.Fatalf("task %q is %s on node %q, which is missing or unreachable", task.ID, task.Status, task.NodeID)
			}
		}
		switch {
		case len(task.History) > MaxHistory:
			t.Fatalf("task %q has %d history events", task.ID, len(task.History))
		case len(task.History) == 0:
			if task.Status != TaskPending || task.ModifyIndex != task.CreateIndex || task.UpdatedAt != task.CreatedAt {
				t.Fatalf("task %q changed since its creation but has no history", task.ID)
			}
		default:
			if last := task.History[len(task.History)-1]; last.Status != task.Status || last.Index != task.ModifyIndex {
				t.Fatalf("task %q: last event %+v does not match status %s index %d", task.ID, last, task.Status, task.ModifyIndex)
			}
		}
		if task.Attempts > task.MaxAttempts || task.MaxAttempts < 1 {
			t.Fatalf("task %q: attempts %d of %d", task.ID, task.Attempts, task.MaxAttempts)
		}
		if task.ModifyIndex > st.idx.Tasks {
			t.Fatalf("task %q: modify index %d > tasks index %d", task.ID, task.ModifyIndex, st.idx.Tasks)
		}
		if task.Payload != nil && len(task.Payload) == 0 {
			t.Fatalf("task %q: empty non-nil payload", task.ID)
		}
	}
	for _, s := range TaskStatuses {
		slot, _ := statusSlot(s)
		if tt.byStatus[slot].n != counts[s] {
			t.Fatalf("bitset count of %s = %d, want %d", s, tt.byStatus[slot].n, counts[s])
		}
	}
	if !maps.EqualFunc(held, tt.held, slices.Equal) {
		t.Fatalf("held = %v, want %v", tt.held, held)
	}
	checkPendingIndexLocked(t, tt)
	// Each finishOrder holds exactly the tasks of its status, in cmpFinish
	// order, with its keys and tombstones counted.
	for slot, s := range finishedStatuses {
		fo := &tt.finished[slot]
		var want []*Task
		for _, task := range tt.list {
			if task != nil && task.Status == s {
				want = append(want, task)
			}
		}
		slices.SortFunc(want, cmpFinish)
		var got []*Task
		dead := 0
		for i, e := range fo.q {
			if i > 0 && cmpFinishKey(fo.q[i-1], e) > 0 {
				t.Fatalf("finish order of %s: keys out of order at %d", s, i)
			}
			if e.t == nil {
				dead++
				continue
			}
			if e.at != e.t.UpdatedAt || e.ix != e.t.ModifyIndex || tt.get(e.t.ID) != e.t {
				t.Fatalf("finish order of %s: entry %d (%q) is stale", s, i, e.t.ID)
			}
			got = append(got, e.t)
		}
		if dead != fo.dead || !slices.Equal(got, want) {
			t.Fatalf("finish order of %s: %d tasks (%d tombstones, counted %d), want %d", s, len(got), dead, fo.dead, len(want))
		}
		if n := len(fo.q); n > 0 && (fo.q[0].t == nil || fo.q[n-1].t == nil) {
			t.Fatalf("finish order of %s starts or ends with a tombstone", s)
		}
	}
	// The retired record: at most its limit, FIFO positions consistent,
	// every id retired once, none of them a task.
	rt := &st.retired
	if len(rt.byID) > rt.limit {
		t.Fatalf("%d retired records, limit %d", len(rt.byID), rt.limit)
	}
	live := 0
	for i, rec := range rt.fifo {
		if rec == nil {
			continue
		}
		live++
		if rt.byID[rec.ID] != rec || rec.seq != rt.base+uint64(i) {
			t.Fatalf("retired record %q at %d is inconsistent (seq %d, base %d)", rec.ID, i, rec.seq, rt.base)
		}
		if !rec.Status.Terminal() || rec.RetiredAt <= 0 || rec.RetireIndex == 0 || rec.RetireIndex > st.idx.Tasks {
			t.Fatalf("retired record %+v is invalid (tasks index %d)", rec.RetiredTask, st.idx.Tasks)
		}
		if tt.get(rec.ID) != nil {
			t.Fatalf("%q is both retired and a task", rec.ID)
		}
	}
	if live != len(rt.byID) || live+rt.dead != len(rt.fifo) {
		t.Fatalf("retired: %d in the FIFO, %d by id, %d tombstones of %d slots", live, len(rt.byID), rt.dead, len(rt.fifo))
	}
	for id, n := range st.nodes {
		if n.ID != id || !n.Status.Valid() || n.ModifyIndex > st.idx.Nodes {
			t.Fatalf("node %q is inconsistent: %+v (nodes index %d)", id, n, st.idx.Nodes)
		}
	}
	for id, sv := range st.servers {
		if sv.ID != id {
			t.Fatalf("server %q stored as %q", sv.ID, id)
		}
	}
	acl := &st.acl
	if len(acl.tokens) != len(acl.byHash) {
		t.Fatalf("%d tokens but %d secret hashes", len(acl.tokens), len(acl.byHash))
	}
	for id, tk := range acl.tokens {
		if tk.AccessorID != id || acl.byHash[tk.SecretHash] != tk || validACLToken(tk) != nil ||
			tk.CreateIndex > st.idx.ACL || tk.CreateTime <= 0 {
			t.Fatalf("token %q is inconsistent: %+v (acl index %d)", id, tk, st.idx.ACL)
		}
	}
	if acl.bootstrapIndex > st.idx.ACL {
		t.Fatalf("bootstrap index %d > acl index %d", acl.bootstrapIndex, st.idx.ACL)
	}
}

// secretHash is what a proposer stores for a secret: the lowercase hex
// SHA-256.
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func (h *harness) tokenE(id, secret, role string) ACLToken {
	return ACLToken{AccessorID: id, SecretHash: secretHash(secret), Role: role, Description: "token " + id}
}

func (h *harness) bootstrapE(id, secret string) *ACLBootstrapEntry {
	return &ACLBootstrapEntry{Token: h.tokenE(id, secret, ACLManagement), Time: h.tick()}
}

func (h *harness) createE(id, secret, role string) *ACLTokenCreateEntry {
	return &ACLTokenCreateEntry{Token: h.tokenE(id, secret, role), Time: h.tick()}
}

func (h *harness) revokeE(id string) *ACLTokenRevokeEntry {
	return &ACLTokenRevokeEntry{AccessorID: id, Time: h.tick()}
}

// withACL bootstraps ACLs with token "root" (secret "root-secret") and
// creates "ops" (operator, "ops-secret") and "ro" (reader, "ro-secret").
func withACL(h *harness) {
	h.t.Helper()
	h.ok(h.bootstrapE("root", "root-secret"))
	h.ok(h.createE("ops", "ops-secret", ACLOperator))
	h.ok(h.createE("ro", "ro-secret", ACLReader))
}
