package tui

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rctl-dev/rctl/fsm"
)

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	switch msg := cmd().(type) {
	case tea.QuitMsg:
		return true
	case tea.BatchMsg:
		for _, c := range msg {
			if isQuit(c) {
				return true
			}
		}
	}
	return false
}

func TestKeysFocusAndMove(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	if m.focus != panelServers {
		t.Fatalf("initial focus %v, want servers", m.focus)
	}
	steps := []struct {
		key   string
		focus panel
	}{
		{"tab", panelNodes}, {"tab", panelTasks}, {"tab", panelEvents}, {"tab", panelServers},
		{"shift+tab", panelEvents}, {"left", panelTasks}, {"right", panelEvents}, {"l", panelServers}, {"h", panelEvents},
	}
	for _, s := range steps {
		feed(m, key(s.key))
		if m.focus != s.focus {
			t.Fatalf("after %q focus is %s, want %s", s.key, panelNames[m.focus], panelNames[s.focus])
		}
	}

	feed(m, key("tab"), key("tab")) // nodes
	feed(m, key("j"), key("down"), key("j"))
	if m.cur[panelNodes] != 3 || m.sel[panelNodes] != "n2" {
		t.Fatalf("after 3 moves down the nodes cursor is %d on %q, want 3 on n2 (status order n4 n3 n1 n2)", m.cur[panelNodes], m.sel[panelNodes])
	}
	feed(m, key("j")) // clamps at the end
	if m.cur[panelNodes] != 3 {
		t.Fatalf("cursor moved past the last node: %d", m.cur[panelNodes])
	}
	feed(m, key("k"), key("up"))
	if m.sel[panelNodes] != "n3" {
		t.Fatalf("after 2 moves up the selected node is %q, want n3", m.sel[panelNodes])
	}
	feed(m, key("G"))
	if m.sel[panelNodes] != "n2" {
		t.Fatalf("G selected %q, want the last node n2", m.sel[panelNodes])
	}
	feed(m, key("g"))
	if m.sel[panelNodes] != "n4" {
		t.Fatalf("g selected %q, want the first node n4", m.sel[panelNodes])
	}
}

func TestKeysSortCyclesAndCursorFollowsSelection(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, key("tab"), key("j")) // nodes, select n3 (status order: n4 n3 n1 n2)
	if m.sel[panelNodes] != "n3" {
		t.Fatalf("selected %q, want n3", m.sel[panelNodes])
	}
	// id, heartbeat (oldest first), tasks (most first), cloud, status again.
	wantOrders := []string{"n1 n2 n3 n4", "n4 n3 n1 n2", "n1 n2 n3 n4", "n1 n2 n3 n4", "n4 n3 n1 n2"}
	for i, want := range wantOrders {
		feed(m, key("s"))
		if got := strings.Join(m.panelIDs(panelNodes), " "); got != want {
			t.Fatalf("sort %d (%s): order %q, want %q", i+1, nodeSortNames[m.sortBy], got, want)
		}
		if ids := m.panelIDs(panelNodes); ids[m.cur[panelNodes]] != "n3" {
			t.Fatalf("sort %s moved the cursor off n3 to %s", nodeSortNames[m.sortBy], ids[m.cur[panelNodes]])
		}
	}

	// A new task arrives on top: the tasks cursor stays on its task.
	feed(m, key("tab"), key("j"), key("j"))
	sel := m.sel[panelTasks]
	more := someTasks()
	more.Tasks = append(more.Tasks, task("new-one", "shell", fsm.TaskPending, "", 0, 99, 0))
	feed(m, TasksMsg{Addr: addr2, Reply: more, At: at(10 * time.Second)})
	if ids := m.panelIDs(panelTasks); ids[0] != "new-one" || ids[m.cur[panelTasks]] != sel {
		t.Fatalf("after a new task the cursor is on %q, want %q (list %v)", ids[m.cur[panelTasks]], sel, ids)
	}
}

func TestKeysDetailHelpAndBack(t *testing.T) {
	m := newTestModel(t, 80, 16)
	normalCluster(m)
	feed(m, key("enter")) // servers: nothing to open
	if m.mode != modeMain {
		t.Fatal("enter on the servers panel left the main view")
	}
	feed(m, key("tab"), key("tab"), key("j"), key("enter"))
	if m.mode != modeDetail || m.detailID != "train-model" {
		t.Fatalf("enter on the second task: mode %d detail %q, want detail of train-model", m.mode, m.detailID)
	}
	if !strings.Contains(m.View(), "[Task train-model]") {
		t.Fatalf("detail view lacks its title:\n%s", m.View())
	}
	feed(m, key("j"), key("j"))
	if m.detailOff != 2 {
		t.Fatalf("detail scrolled to %d, want 2", m.detailOff)
	}
	feed(m, key("k"))
	if m.detailOff != 1 {
		t.Fatalf("detail scrolled to %d, want 1", m.detailOff)
	}
	feed(m, key("?"))
	if m.mode != modeHelp || !strings.Contains(m.View(), "[Help]") {
		t.Fatal("? in the detail view did not open help")
	}
	feed(m, key("esc"))
	if m.mode != modeMain {
		t.Fatalf("esc in help: mode %d, want main", m.mode)
	}
	feed(m, key("enter"), key("esc"))
	if m.mode != modeMain || m.focus != panelTasks {
		t.Fatalf("esc in detail: mode %d focus %s, want main view on tasks", m.mode, panelNames[m.focus])
	}
	feed(m, key("?"), key("?"))
	if m.mode != modeMain {
		t.Fatal("? did not toggle help off")
	}

	// The detail follows live updates and says when its task is gone.
	feed(m, key("enter"))
	feed(m, TasksMsg{Addr: addr2, Reply: someTasks(), At: at(20 * time.Second)})
	if !strings.Contains(m.View(), "updated    25.0s ago") {
		t.Fatalf("detail did not refresh with the new answer:\n%s", m.View())
	}
	empty := someTasks()
	empty.Tasks = empty.Tasks[:1]
	feed(m, TasksMsg{Addr: addr2, Reply: empty, At: at(21 * time.Second)})
	if !strings.Contains(m.View(), "no longer listed") {
		t.Fatalf("detail of a vanished task:\n%s", m.View())
	}
}

func TestKeysEnterOnNodeFiltersItsTasks(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, key("tab"), key("j"), key("j"), key("enter")) // n1
	if m.filter != "node:n1" || m.focus != panelTasks {
		t.Fatalf("enter on n1: filter %q focus %s", m.filter, panelNames[m.focus])
	}
	if got := strings.Join(m.panelIDs(panelTasks), " "); got != "send-digest warm-cache backup-db" {
		t.Fatalf("tasks of n1: %s", got)
	}
}

func TestKeysFilterTyping(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, key("/"))
	if !m.editing || m.focus != panelTasks {
		t.Fatal("/ did not start editing the filter on the tasks panel")
	}
	typeKeys(m, "warm")
	if got := m.panelIDs(panelTasks); len(got) != 1 || got[0] != "warm-cache" {
		t.Fatalf("filter applies while typing: %v", got)
	}
	// q, j, ? and s are text while typing.
	typeKeys(m, "qj?s")
	if m.filter != "warmqj?s" || m.mode != modeMain || m.sortBy != sortNodeStatus {
		t.Fatalf("keys while typing: filter %q mode %d sort %d", m.filter, m.mode, m.sortBy)
	}
	feed(m, key("backspace"), key("backspace"), key("backspace"), key("backspace"))
	if m.filter != "warm" {
		t.Fatalf("backspace: filter %q", m.filter)
	}
	feed(m, key("esc"))
	if m.editing || m.filter != "" {
		t.Fatalf("esc while typing restores the previous (empty) filter, got %q", m.filter)
	}

	feed(m, key("/"))
	typeKeys(m, "status:failed ")
	feed(m, key("enter"))
	if m.editing || m.filter != "status:failed" {
		t.Fatalf("enter keeps the trimmed filter, got editing=%v %q", m.editing, m.filter)
	}
	if got := m.panelIDs(panelTasks); len(got) != 1 || got[0] != "resize-images" {
		t.Fatalf("status:failed lists %v", got)
	}
	feed(m, key("/"))
	typeKeys(m, " nope")
	feed(m, key("esc"))
	if m.filter != "status:failed" {
		t.Fatalf("esc while editing must restore %q, got %q", "status:failed", m.filter)
	}
	feed(m, key("esc"))
	if m.filter != "" {
		t.Fatalf("esc in the main view clears the filter, got %q", m.filter)
	}

	// ctrl+c quits even while typing.
	feed(m, key("/"))
	_, cmd := m.Update(key("ctrl+c"))
	if !isQuit(cmd) {
		t.Fatal("ctrl+c while typing did not quit")
	}
}

func TestKeysStatusCycle(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	want := []string{"status:pending", "status:assigned", "status:running", "status:complete", "status:failed", "status:cancelled", ""}
	for _, w := range want {
		feed(m, key("f"))
		if m.filter != w {
			t.Fatalf("f: filter %q, want %q", m.filter, w)
		}
	}
	m.filter = "cache s:running"
	feed(m, key("f"))
	if m.filter != "status:pending cache" {
		t.Fatalf("f replaces the status token: %q", m.filter)
	}
}

func TestKeysQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		m := newTestModel(t, 80, 24)
		normalCluster(m)
		_, cmd := m.Update(key(k))
		if !isQuit(cmd) {
			t.Fatalf("%s did not quit", k)
		}
		if m.View() != "" {
			t.Fatalf("view after quit is not empty")
		}
	}
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, key("tab"), key("tab"), key("enter"))
	if _, cmd := m.Update(key("q")); !isQuit(cmd) {
		t.Fatal("q in the detail view did not quit")
	}
}

func TestScrollKeepsCursorVisible(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, key("tab"), key("tab"))
	rows := m.lastLayout.rows[panelTasks]
	for i := 0; i < 9; i++ {
		feed(m, key("j"))
		if c, o := m.cur[panelTasks], m.off[panelTasks]; c < o || c >= o+rows {
			t.Fatalf("cursor %d outside the window [%d,%d)", c, o, o+rows)
		}
	}
	if !strings.Contains(m.View(), "> backup-db") {
		t.Fatalf("last task not shown under the cursor:\n%s", m.View())
	}
	feed(m, key("pgup"))
	if m.cur[panelTasks] != 9-rows {
		t.Fatalf("pgup: cursor %d, want %d", m.cur[panelTasks], 9-rows)
	}
	// Shrinking the terminal keeps the cursor in view.
	feed(m, tea.WindowSizeMsg{Width: 80, Height: 16})
	if c, o, r := m.cur[panelTasks], m.off[panelTasks], m.lastLayout.rows[panelTasks]; c < o || c >= o+r {
		t.Fatalf("after resize the cursor %d is outside [%d,%d)", c, o, o+r)
	}
}

// Keys that arrive together (a script, fast typing) act one by one, and
// esc followed at once by a key (parsed as alt+key) is esc then the key.
func TestKeysBurstAndAltAreSplit(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, key("tab"), key("tab"), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("jjj")}, key("enter"))
	if m.mode != modeDetail || m.detailID != "compact-s3" {
		t.Fatalf("burst jjj then enter: mode %d detail %q, want the fourth task compact-s3", m.mode, m.detailID)
	}
	feed(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/"), Alt: true}) // esc, then /
	if m.mode != modeMain || !m.editing {
		t.Fatalf("alt+/ from the detail view: mode %d editing %v, want the main view typing a filter", m.mode, m.editing)
	}
	feed(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("fail")}, key("enter"))
	if m.filter != "fail" {
		t.Fatalf("burst typed into the filter: %q", m.filter)
	}
	if _, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("jq")}); !isQuit(cmd) {
		t.Fatal("q inside a burst did not quit")
	}
}
