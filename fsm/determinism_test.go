package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// genLog generates n log entries from a seeded PRNG: every entry type
// (ACL entries included: bootstraps, most of them repeating the first,
// creates and revokes over small pools of ids and secrets; retire_tasks
// of mostly finished tasks, some unfinished or missing ones, a few
// malformed; retired ids come back through add_task from the same pool),
// mostly plausible transitions (chosen by looking at a shadow FSM) mixed
// with refused ones, garbage, ignorable unknown entries and non-command
// logs. The same seed always yields the same log.
func genLog(t testing.TB, seed uint64, n int) []*raft.Log {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	shadow := New()
	now := int64(1_700_000_000_000_000_000)
	var log []*raft.Log
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	taskID := func() string { return fmt.Sprintf("t%03d", r.IntN(n/8+1)) }
	nodeID := func() string { return fmt.Sprintf("n%d", r.IntN(8)) }
	clouds := []string{"", "", "aws", "gcp"}
	// held returns a random task in one of the statuses, or a random id.
	some := func(statuses ...TaskStatus) *Task {
		var all []*Task
		for _, s := range statuses {
			all = append(all, shadow.Tasks(s)...)
		}
		if len(all) == 0 || r.IntN(10) == 0 {
			return &Task{ID: taskID(), NodeID: nodeID()}
		}
		return all[r.IntN(len(all))]
	}
	accessor := func() string { return fmt.Sprintf("a%d", r.IntN(8)) }
	secret := func() string { return secretHash(fmt.Sprint("secret-", r.IntN(10))) }
	roles := []string{ACLReader, ACLOperator, ACLManagement, ACLOperator, "admin"}
	for i := 1; i <= n; i++ {
		now += int64(r.IntN(5_000_000))
		l := &raft.Log{Index: uint64(i), Term: 1, Type: raft.LogCommand}
		var body any
		switch k := r.IntN(110); {
		case k >= 106:
			e := &RetireTasksEntry{Reason: pick([]string{"age", "count", "manual"}), Time: now}
			for j := 0; j < 1+r.IntN(5); j++ {
				tk := some(TaskComplete, TaskFailed, TaskCancelled)
				if r.IntN(6) == 0 {
					tk = some(TaskPending, TaskAssigned, TaskRunning)
				}
				if !slices.Contains(e.TaskIDs, tk.ID) {
					e.TaskIDs = append(e.TaskIDs, tk.ID)
				}
			}
			switch r.IntN(25) {
			case 0:
				e.TaskIDs = append(e.TaskIDs, e.TaskIDs[0]) // refused: listed twice
			case 1:
				e.TaskIDs = nil // refused: empty
			}
			body = e
		case k >= 105:
			body = &ACLTokenRevokeEntry{AccessorID: pick([]string{"root", accessor(), accessor()}), Time: now}
		case k >= 102:
			body = &ACLTokenCreateEntry{Token: ACLToken{AccessorID: accessor(), SecretHash: secret(), Role: pick(roles),
				Description: pick([]string{"", "ci", "ops team"})}, Time: now}
		case k >= 100:
			tok := ACLToken{AccessorID: "root", SecretHash: secretHash("root"), Role: ACLManagement}
			if r.IntN(3) == 0 {
				tok.AccessorID, tok.SecretHash = accessor(), secret()
			}
			body = &ACLBootstrapEntry{Token: tok, Time: now}
		case k < 22:
			mk := func() AddTaskEntry {
				e := AddTaskEntry{ID: taskID(), Type: pick([]string{"shell", "http", "noop"}), Cloud: pick(clouds),
					MaxAttempts: r.IntN(4), Time: now}
				if r.IntN(3) > 0 {
					e.Payload = map[string]string{"cmd": pick([]string{"true", "false"}), "k" + fmt.Sprint(r.IntN(3)): "v"}
				}
				return e
			}
			if k < 19 {
				e := mk()
				body = &e
				break
			}
			b := &AddTasksEntry{Time: now}
			for j := 0; j < 1+r.IntN(4); j++ {
				b.Tasks = append(b.Tasks, mk())
			}
			body = b
		case k < 40:
			body = &AssignTaskEntry{TaskID: some(TaskPending).ID, NodeID: nodeID(), Time: now}
		case k < 52:
			tk := some(TaskAssigned)
			body = &StartTaskEntry{TaskID: tk.ID, NodeID: tk.NodeID, Time: now}
		case k < 62:
			tk := some(TaskAssigned, TaskRunning, TaskComplete)
			body = &CompleteTaskEntry{TaskID: tk.ID, NodeID: tk.NodeID, Result: Result{Output: fmt.Sprint("out ", i)}, Time: now}
		case k < 68:
			tk := some(TaskAssigned, TaskRunning, TaskFailed)
			body = &FailTaskEntry{TaskID: tk.ID, NodeID: tk.NodeID, Result: Result{ExitCode: 1 + r.IntN(3), Error: "err"}, Time: now}
		case k < 72:
			body = &CancelTaskEntry{TaskID: some(TaskPending, TaskAssigned, TaskRunning, TaskCancelled, TaskComplete).ID, Reason: "gen", Time: now}
		case k < 79:
			body = &NodeRegisterEntry{ID: nodeID(), Address: "10.0.0.1:7", Cloud: pick(clouds[2:]), Capacity: 1 + r.IntN(4), Time: now}
		case k < 86:
			body = &NodeStatusEntry{NodeID: nodeID(), Status: NodeStatus(pick([]string{"healthy", "degraded", "unreachable", "unreachable", "bogus"})), Time: now}
		case k < 88:
			body = &NodeUnregisterEntry{NodeID: nodeID(), Time: now}
		case k < 90:
			body = &ServerUpsertEntry{Server: Server{ID: fmt.Sprint("s", r.IntN(4)), Address: fmt.Sprint("10.1.0.", r.IntN(3), ":50051"), Cloud: pick(clouds)}}
		case k < 91:
			body = &ServerRemoveEntry{ID: fmt.Sprint("s", r.IntN(4))}
		case k < 93:
			body = &AssignTaskEntry{TaskID: taskID(), NodeID: nodeID()} // no time: refused
		case k < 95:
			garbage := make([]byte, r.IntN(12))
			for j := range garbage {
				garbage[j] = byte(r.Uint32())
			}
			l.Data = garbage
		case k < 96:
			l.Data = []byte{byte(IgnoreUnknownFlag | 0x40), EntryVersion, 0x80}
		case k < 98:
			l.Type = raft.LogNoop
		default:
			l.Type = raft.LogBarrier
		}
		if body != nil {
			l.Data = encode(t, body)
		}
		shadow.ApplyRaft(l)
		log = append(log, l)
	}
	return log
}

// resultString renders an ApplyResult for comparison across FSMs.
func resultString(res *ApplyResult) string {
	s := fmt.Sprint(res.Index, " ", res.Err)
	if res.Task != nil {
		s += fmt.Sprintf(" task %s %s %s %d", res.Task.ID, res.Task.Status, res.Task.NodeID, res.Task.ModifyIndex)
	}
	if res.Node != nil {
		s += fmt.Sprintf(" node %s %s %d", res.Node.ID, res.Node.Status, res.Node.ModifyIndex)
	}
	for _, t := range res.Tasks {
		s += fmt.Sprintf(" batch %s %s %d", t.ID, t.Status, t.ModifyIndex)
	}
	if res.Token != nil {
		s += fmt.Sprintf(" token %+v", *res.Token)
	}
	for _, t := range res.Retired {
		s += fmt.Sprintf(" retired %s %s %d", t.ID, t.Status, t.ModifyIndex)
	}
	return s
}

// TestDeterminism feeds generated logs to two FSMs and checks they agree
// on every result and end byte-identical, and that an FSM restored from a
// midway snapshot and fed the rest agrees too.
func TestDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { testDeterminism(t, seed) })
	}
}

func testDeterminism(t *testing.T, seed uint64) {
	const n = 5000
	log := genLog(t, seed, n)
	a, b := New(), New()
	var mid []byte
	accepted := map[string]int{}
	refused := map[error]int{}
	seen := map[TaskStatus]bool{}
	for i, l := range log {
		ra, rb := a.ApplyRaft(l).(*ApplyResult), b.ApplyRaft(l).(*ApplyResult)
		if sa, sb := resultString(ra), resultString(rb); sa != sb {
			t.Fatalf("entry %d: results differ:\n%s\n%s", l.Index, sa, sb)
		}
		if ra.Err == nil && l.Type == raft.LogCommand && len(l.Data) > 0 {
			if _, known := entryBodies[EntryType(l.Data[0])&^IgnoreUnknownFlag]; known {
				accepted[EntryType(l.Data[0]).String()]++
			}
		}
		for _, kind := range []error{ErrInvalid, ErrConflict, ErrNotFound} {
			if errors.Is(ra.Err, kind) {
				refused[kind]++
			}
		}
		for s, c := range a.TaskCounts() {
			seen[s] = seen[s] || c > 0
		}
		if (i+1)%500 == 0 {
			sa, sb := snapBytes(t, a), snapBytes(t, b)
			if !bytes.Equal(sa, sb) {
				t.Fatalf("after %d entries the snapshots differ", i+1)
			}
			checkInvariants(t, a)
			if i+1 == n/2 {
				mid = sa
			}
		}
	}
	t.Logf("accepted %v; refused %v; counts %v", accepted, refused, a.TaskCounts())
	for _, name := range entryNames {
		if accepted[name] == 0 {
			t.Errorf("the generated log never applied a %s entry", name)
		}
	}
	for _, kind := range []error{ErrInvalid, ErrConflict, ErrNotFound} {
		if refused[kind] == 0 {
			t.Errorf("the generated log never produced a %v refusal", kind)
		}
	}
	for _, s := range TaskStatuses {
		if !seen[s] {
			t.Errorf("no task was ever %s", s)
		}
	}

	// A third FSM restored from the midpoint snapshot and fed the rest of
	// the log ends in the same state.
	c := restoreBytes(t, mid)
	for _, l := range log[n/2:] {
		c.ApplyRaft(l)
	}
	if !bytes.Equal(snapBytes(t, a), snapBytes(t, c)) {
		t.Fatal("restored-then-replayed FSM differs from the one that applied the whole log")
	}
	checkInvariants(t, c)
}
