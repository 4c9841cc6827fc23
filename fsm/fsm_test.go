package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestApplyOtherLogTypes(t *testing.T) {
	h := newWorld(t)
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration, raft.LogAddPeerDeprecated} {
		t.Run(typ.String(), func(t *testing.T) {
			before, ch := h.state()
			h.index++
			res, ok := h.f.ApplyRaft(&raft.Log{Index: h.index, Type: typ, Data: encode(t, h.addE("x"))}).(*ApplyResult)
			if !ok || res.Index != h.index || res.Err != nil || res.Task != nil {
				t.Fatalf("Apply = %+v, want an empty result at index %d", res, h.index)
			}
			h.unchanged(before, ch, typ.String())
		})
	}
	if res, ok := h.f.ApplyRaft(nil).(*ApplyResult); !ok || !errors.Is(res.Err, ErrInvalid) {
		t.Fatalf("Apply(nil) = %#v, want an ErrInvalid result", res)
	}
}

func TestApplyMalformed(t *testing.T) {
	valid := encode(t, &AddTaskEntry{ID: "t", Type: "shell", Time: 1})
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{byte(AddTask)}},
		{"type zero", []byte{0, EntryVersion, 0x80}},
		{"unknown type", []byte{0x7f, EntryVersion, 0x80}},
		{"unknown version", append([]byte{byte(AddTask), 2}, valid[2:]...)},
		{"no body", []byte{byte(AddTask), EntryVersion}},
		{"truncated body", valid[:len(valid)-3]},
		{"body is a string", []byte{byte(AddTask), EntryVersion, 0xa3, 'a', 'b', 'c'}},
		{"wrong field type", []byte{byte(AddTask), EntryVersion, 0x81, 0xa4, 't', 'i', 'm', 'e', 0xa1, 'x'}},
		{"map length beyond data", []byte{byte(NodeRegister), EntryVersion, 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"garbage", []byte{byte(CompleteTask), EntryVersion, 0xc1, 0xc1, 0xc1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWorld(t)
			h.refuseRaw(tc.data, ErrInvalid, tc.name)
		})
	}
}

func TestIgnoreUnknownFlag(t *testing.T) {
	h := newWorld(t)
	before, ch := h.state()
	res := h.applyRaw([]byte{byte(IgnoreUnknownFlag | 0x3f), EntryVersion, 0xc1, 0xff})
	if res.Err != nil {
		t.Fatalf("unknown entry with IgnoreUnknownFlag refused: %v", res.Err)
	}
	h.unchanged(before, ch, "ignored entry")

	// A known type with the flag set applies normally.
	data := encode(t, h.addE("flagged"))
	data[0] |= byte(IgnoreUnknownFlag)
	if res := h.applyRaw(data); res.Err != nil || res.Task == nil || res.Task.ID != "flagged" {
		t.Fatalf("flagged add_task = %+v", res)
	}
	// Without the flag, an unknown type is refused.
	h.refuseRaw([]byte{0x3f, EntryVersion, 0x80}, ErrInvalid, "unknown type")
}

func TestErrorKinds(t *testing.T) {
	err := error(&Error{Kind: ErrConflict, Msg: `task "t1" is pending; only assigned or running tasks can complete`})
	wrapped := fmt.Errorf("apply: %w", err)
	if !errors.Is(wrapped, ErrConflict) || errors.Is(wrapped, ErrNotFound) {
		t.Fatalf("errors.Is does not follow Kind")
	}
	if err.Error() != `task "t1" is pending; only assigned or running tasks can complete` {
		t.Fatalf("Error() = %q", err)
	}
	h := newWorld(t)
	res := h.refuse(h.completeE("pending", "n1"), ErrConflict)
	if want := `task "pending" is pending; only assigned or running tasks can complete`; res.Err.Error() != want {
		t.Fatalf("message = %q, want %q", res.Err, want)
	}
	res = h.refuse(h.addE(strings.Repeat("x", 10_000)), ErrInvalid)
	if len(res.Err.Error()) > 200 {
		t.Fatalf("message for a huge id is %d bytes long", len(res.Err.Error()))
	}
}

func TestWatchCh(t *testing.T) {
	h := newHarness(t)
	ch := h.f.WatchCh()
	h.ok(h.addE("t1"))
	if !closed(ch) {
		t.Fatal("WatchCh not closed by add_task")
	}
	ch2 := h.f.WatchCh()
	if ch2 == ch || closed(ch2) {
		t.Fatal("WatchCh was not replaced by a fresh channel")
	}
	h.noop(h.addE("t1"))                                    // no-op
	h.refuse(h.assignE("t1", "nope"), ErrInvalid)           // refused
	h.f.ApplyRaft(&raft.Log{Index: 99, Type: raft.LogNoop}) // not a command
	if closed(ch2) {
		t.Fatal("WatchCh closed without a change")
	}
	snap := snapBytes(t, h.f)
	if err := h.f.Restore(readCloser{bytesReader(snap)}); err != nil {
		t.Fatal(err)
	}
	if !closed(ch2) {
		t.Fatal("WatchCh not closed by Restore")
	}
}

func TestReadAPI(t *testing.T) {
	h := newWorld(t)
	ids := func(ts []*Task) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(h.f.Tasks(TaskPending)); got != "pending,gcp-only" {
		t.Fatalf("Tasks(pending) = %s", got)
	}
	if got := ids(h.f.Tasks("")); got != "pending,assigned,running,complete,failed,cancelled,gcp-only" {
		t.Fatalf("Tasks() = %s", got)
	}
	if got := h.f.Tasks("bogus"); got != nil {
		t.Fatalf("Tasks(bogus) = %v, want nil", got)
	}
	counts := h.f.TaskCounts()
	want := map[TaskStatus]int{TaskPending: 2, TaskAssigned: 1, TaskRunning: 1, TaskComplete: 1, TaskFailed: 1, TaskCancelled: 1}
	if len(counts) != len(TaskStatuses) || fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("TaskCounts = %v, want %v", counts, want)
	}
	h.ok(h.cancelE("pending"))
	h.ok(h.cancelE("gcp-only"))
	if c := h.f.TaskCounts(); c[TaskPending] != 0 || len(c) != len(TaskStatuses) {
		t.Fatalf("TaskCounts = %v, want pending present with 0", c)
	}
	if got := ids(h.f.NodeTasks("n1")); got != "assigned,running" {
		t.Fatalf("NodeTasks(n1) = %s", got)
	}
	if got := h.f.NodeTasks("nope"); len(got) != 0 {
		t.Fatalf("NodeTasks(nope) = %v", got)
	}
	var nodes []string
	for _, n := range h.f.Nodes() {
		nodes = append(nodes, n.ID)
	}
	if !slices.IsSorted(nodes) || len(nodes) != 4 {
		t.Fatalf("Nodes() = %v", nodes)
	}
	for _, id := range []string{"s3", "s1", "s2"} {
		h.ok(&ServerUpsertEntry{Server: Server{ID: id, Address: id + ":1"}})
	}
	if s := h.f.Servers(); len(s) != 3 || s[0].ID != "s1" || s[2].ID != "s3" {
		t.Fatalf("Servers() = %v", s)
	}
}

// TestOutOfOrderIndexes feeds add_task entries with decreasing indexes
// (raft never does) and checks the (CreateIndex, ID) order still holds.
func TestOutOfOrderIndexes(t *testing.T) {
	h := newHarness(t)
	h.ok(h.nodeE("n1", 10))
	for _, step := range []struct {
		index uint64
		id    string
	}{{100, "a"}, {50, "b"}, {50, "a0"}, {200, "c"}, {10, "d"}} {
		h.index = step.index - 1
		h.ok(h.addE(step.id))
		checkInvariants(t, h.f)
	}
	h.index = 300
	h.ok(h.assignE("c", "n1"))
	h.ok(h.assignE("d", "n1"))
	var got []string
	for _, task := range h.f.Tasks("") {
		got = append(got, task.ID)
	}
	if strings.Join(got, ",") != "d,a0,b,a,c" {
		t.Fatalf("Tasks() = %v, want d,a0,b,a,c", got)
	}
	if n := h.f.NodeTasks("n1"); len(n) != 2 || n[0].ID != "d" {
		t.Fatalf("NodeTasks(n1) = %v", n)
	}
	checkInvariants(t, h.f)
}

// TestCopyOnWrite checks that pointers handed out never change.
func TestCopyOnWrite(t *testing.T) {
	h := newWorld(t)
	task := h.task("running")
	snapshot := *task
	hist := slices.Clone(task.History)
	payload := task.Payload
	node := h.f.Node("n1")
	nodeCopy := *node
	h.ok(h.statusE("n1", NodeUnreachable))
	h.ok(h.assignE("running", "n4"))
	if task.Status != snapshot.Status || task.NodeID != snapshot.NodeID || task.ModifyIndex != snapshot.ModifyIndex ||
		!slices.Equal(task.History, hist) || !payload.Equal(map[string]string{"cmd": "true"}) {
		t.Fatalf("stored task was modified in place: %+v", task)
	}
	if node.Status != nodeCopy.Status || node.ModifyIndex != nodeCopy.ModifyIndex || node.UpdatedAt != nodeCopy.UpdatedAt {
		t.Fatalf("stored node was modified in place: %+v", node)
	}
}

// TestConcurrentReaders runs readers against Apply; meant for -race.
func TestConcurrentReaders(t *testing.T) {
	log := genLog(t, 7, 3000)
	f := New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				for _, task := range f.Tasks(TaskStatuses[i%len(TaskStatuses)]) {
					_ = task.Status
					_ = len(task.History)
					// A task may be retired meanwhile (and added again): it is
					// then remembered as retired (the log is far too short to
					// forget any). Both are read under one lock.
					if got := f.Task(task.ID); got == nil {
						f.mu.RLock()
						gone := f.st.tasks.get(task.ID) == nil && f.st.retired.byID[task.ID] == nil
						f.mu.RUnlock()
						if gone {
							t.Errorf("Task(%q) vanished", task.ID)
							return
						}
					}
					_, _ = f.Retired(task.ID)
				}
				for _, n := range f.Nodes() {
					for _, task := range f.NodeTasks(n.ID) {
						_ = task.NodeID
					}
				}
				_ = f.TaskCounts()
				_ = f.Indexes()
				_ = f.RetireCandidates(1_700_000_000_000_000_000+int64(i)*1e9, time.Second, 5, 100)
				if r == 0 && i%50 == 0 {
					var buf bytes.Buffer
					if err := f.WriteSnapshot(&buf); err != nil {
						t.Errorf("snapshot during apply: %v", err)
						return
					}
					if _, err := ReadSnapshotInfo(&buf); err != nil {
						t.Errorf("snapshot during apply: %v", err)
						return
					}
				}
			}
		}(r)
	}
	for _, l := range log {
		f.ApplyRaft(l)
	}
	close(stop)
	wg.Wait()
	checkInvariants(t, f)
}
