package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

func TestTaskListArgsFollowTheFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   rpc.TaskListArgs
	}{
		{"", rpc.TaskListArgs{Limit: 40, Reverse: true}},
		{"status:failed", rpc.TaskListArgs{Limit: 40, Reverse: true, Status: "failed"}},
		{"s:running,failed disk", rpc.TaskListArgs{Limit: 40, Reverse: true}}, // several statuses: filtered here
		{"status:bogus", rpc.TaskListArgs{Limit: 40, Reverse: true}},
		{"node:n7 type:shell words", rpc.TaskListArgs{Limit: 40, Reverse: true, NodeID: "n7", Type: "shell"}},
		{"node:" + strings.Repeat("n", fsm.MaxIDLen+1), rpc.TaskListArgs{Limit: 1, Reverse: true}},
	} {
		if got := TaskListArgs(tc.filter, 40); got != tc.want {
			t.Errorf("TaskListArgs(%q) = %+v, want %+v", tc.filter, got, tc.want)
		}
	}
	if got := TaskListArgs("", 1_000_000); got.Limit != rpc.MaxTaskListLimit {
		t.Errorf("page of 1M: limit %d", got.Limit)
	}
}

// TestWatcherAsksForABoundedTaskPage: the tasks panel never asks for the
// whole manifest: a page of TaskPage newest tasks, with the view's filter
// sent along, and a new filter cuts the blocking call short.
func TestWatcherAsksForABoundedTaskPage(t *testing.T) {
	f := newFakeCluster(1)
	cfg := testWatchConfig()
	cfg.TasksWait = 5 * time.Second // only a change (or a new filter) ends a call
	cfg.TaskPage = 50
	w, s := startWatcher(t, f, []string{fakeAddr("s1")}, cfg)
	s.waitFor(t, 0, 2*time.Second, "tasks", func(m tea.Msg) bool { tm, ok := m.(TasksMsg); return ok && tm.Reply != nil })
	first := f.callsOf(rpc.MethodTaskList)[0].list
	if first.Limit != 50 || !first.Reverse || first.Status != "" || first.NodeID != "" || first.Cursor != "" {
		t.Fatalf("first Task.List %+v, want the newest 50", first)
	}

	// Wait until the blocking call is in flight, then change the filter.
	testutil.Eventually(t, 2*time.Second, func() error {
		if n := len(f.callsOf(rpc.MethodTaskList)); n < 2 {
			return fmt.Errorf("%d Task.List calls, want the blocking second", n)
		}
		return nil
	})
	mark := s.mark()
	const filter = "status:failed node:n1 type:shell disk"
	w.SetTaskFilter(filter)
	s.waitFor(t, mark, 2*time.Second, "tasks for the new filter", func(m tea.Msg) bool {
		tm, ok := m.(TasksMsg)
		return ok && tm.Reply != nil && tm.Filter == filter
	})
	var asked *fakeCall
	for _, c := range f.callsOf(rpc.MethodTaskList) {
		if c.list.Status == "failed" {
			asked = &c
			break
		}
	}
	if asked == nil || asked.list.NodeID != "n1" || asked.list.Type != "shell" || asked.list.Limit != 50 || !asked.list.Reverse || asked.minIndex != 0 {
		t.Fatalf("Task.List for the new filter: %+v", asked)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs[mark:] {
		if tm, ok := m.(TasksMsg); ok && tm.Err != "" {
			t.Fatalf("the call cut short by the filter was reported: %+v", tm)
		}
	}
}

// TestFetchOnceAsksForTheNewestTasks: `top --once` reads the newest tasks
// it prints and the counts, not the manifest.
func TestFetchOnceAsksForTheNewestTasks(t *testing.T) {
	f := newFakeCluster(1)
	f.tasks.Counts = map[string]int{"pending": 400_000, "complete": 600_000}
	f.tasks.NextCursor = "c1more"
	for i := range onceTasks {
		f.tasks.Tasks = append(f.tasks.Tasks, task(fmt.Sprintf("t%07d", 999_999-i), "shell", fsm.TaskPending, "", 0, uint64(2_000_000-i), time.Second))
	}
	msgs, _, err := FetchOnce(context.Background(), f, []string{fakeAddr("s1")}, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	calls := f.callsOf(rpc.MethodTaskList)
	if len(calls) != 1 || calls[0].list.Limit != onceTasks || !calls[0].list.Reverse {
		t.Fatalf("Task.List calls %+v, want one for the newest %d", calls, onceTasks)
	}
	m := newTestModel(t, 80, 24)
	feed(m, msgs...)
	out := m.Plain()
	if !strings.Contains(out, "TASKS 1000000: pending 400000") || !strings.Contains(out, "(50 newest of 1000000 shown; rctl task list lists them all)") {
		t.Fatalf("plain snapshot:\n%s", out)
	}
}

// TestModelReportsFilterChanges: the model tells OnFilter the filter as
// it changes (through a command, so Update stays pure), and starts its
// task diff over for a page of another filter.
func TestModelReportsFilterChanges(t *testing.T) {
	var got []string
	m := New(Options{OnFilter: func(f string) { got = append(got, f) }, Now: t0})
	run := func(cmd tea.Cmd) {
		if cmd == nil {
			return
		}
		switch msg := cmd().(type) {
		case tea.BatchMsg:
			for _, c := range msg {
				if c != nil {
					c()
				}
			}
		}
	}
	for _, k := range []string{"/", "x", "enter", "f", "esc"} {
		_, cmd := m.Update(key(k))
		run(cmd)
	}
	if want := []string{"x", "status:pending x", ""}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("OnFilter got %q, want %q", got, want)
	}

	failed := task("t1", "shell", fsm.TaskFailed, "n1", 1, 10, time.Second)
	page := &rpc.TaskListReply{Tasks: []*fsm.Task{failed}, Counts: map[string]int{"failed": 1}}
	feed(m, TasksMsg{Reply: &rpc.TaskListReply{Tasks: []*fsm.Task{}, Counts: map[string]int{}}, At: t0})
	feed(m, TasksMsg{Filter: "status:failed", Reply: page, At: t0})
	for _, e := range m.events {
		if strings.Contains(e.Text, "t1 failed") {
			t.Fatalf("a page of another filter was taken for changes: %q", e.Text)
		}
	}
	feed(m, TasksMsg{Filter: "status:failed", Reply: page, At: t0})
	again := task("t2", "shell", fsm.TaskFailed, "n1", 1, 11, time.Second)
	feed(m, TasksMsg{Filter: "status:failed", Reply: &rpc.TaskListReply{Tasks: []*fsm.Task{again, failed}, Counts: map[string]int{"failed": 2}}, At: t0})
	if n := len(m.events); n != 1 || !strings.Contains(m.events[0].Text, "t2 failed") {
		t.Fatalf("events %+v, want t2's failure only", m.events)
	}
}
