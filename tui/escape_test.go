package tui

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// Hostile strings, as anyone who can submit a task or register a node
// could send them.
const (
	osc = "\x1b]0;pwned\a"              // set the window title
	csi = "\x1b[2J"                     // clear the screen
	c1  = "\u009b31m"                   // C1 CSI (two bytes in UTF-8)
	etc = "\a\x7f\t\r\x00\xff\xc0\x9b!" // BEL DEL tab CR NUL, invalid UTF-8, a raw C1 byte
)

// evil decorates s with every kind of control text, a newline included.
func evil(s string) string { return s + osc + csi + "\n" + c1 + etc }

// hostileCluster feeds the model two rounds of answers whose every string
// is hostile, so that rows, events, banners, notes and the header all carry
// them.
func hostileCluster(m *Model) {
	srvID, srvAddr := evil("s2"), evil("10.0.1.2:50051")
	leader := evil("s1")
	members := func(state string) *rpc.MembersReply {
		return &rpc.MembersReply{From: leader, Warnings: []string{evil("voters split")}, Members: []rpc.Member{
			{ID: leader, Address: evil("10.0.1.1:50051"), Cloud: evil("aws"), Region: evil("us-east-1"), Suffrage: "voter", State: "leader", Leader: true, Term: 7},
			{ID: srvID, Address: srvAddr, Cloud: evil("gcp"), Region: "", Suffrage: evil("voter"), State: evil(state), LastContactMS: 20, Lag: 1, Term: 7},
			{ID: evil("s3"), Address: addr3, Suffrage: "voter", State: "unreachable", LastContactMS: -1, Lag: -1},
		}}
	}
	st := rpc.StatusReply{ID: srvID, Address: srvAddr, Cloud: evil("gcp"), Region: evil("eu"), State: evil("follower"),
		LeaderID: leader, LeaderAddr: evil("10.0.1.1:50051"), Term: 7, CommitIndex: 9, AppliedIndex: 9,
		LastContactMS: 4200, LastLeaderChangeMS: at(-time.Minute).UnixMilli()}
	nodes := func(status fsm.NodeStatus) *rpc.NodeListReply {
		return &rpc.NodeListReply{Nodes: []rpc.NodeInfo{
			{Node: fsm.Node{ID: evil("n1"), Address: evil("10.9.0.1"), Cloud: evil("aws"), Region: evil("r"), Capacity: 4, Status: status}, HeartbeatAgeMS: 300, ActiveTasks: 1},
			{Node: fsm.Node{ID: "n2", Address: "10.9.0.2", Cloud: "aws", Region: "us-east-1", Capacity: 4, Status: fsm.NodeStatus(evil("weird"))}, HeartbeatAgeMS: 9000},
		}}
	}
	tasks := func(status fsm.TaskStatus) *rpc.TaskListReply {
		t := &fsm.Task{ID: evil("t1"), Type: evil("shell"), Status: status, NodeID: evil("n1"), Attempts: 1, MaxAttempts: 3,
			Cloud:   evil("aws"),
			Payload: fsm.NewPayload(map[string]string{"cmd": evil("echo hi") + "\nsecond line" + osc, evil("key"): evil("v")}),
			History: []fsm.Event{
				{Time: at(-time.Minute).UnixNano(), Index: 3, Status: fsm.TaskPending, Message: evil("added")},
				{Time: at(-time.Second).UnixNano(), Index: 5, Status: status, NodeID: evil("n1"), Message: evil("exit")},
			},
			CreatedAt: at(-time.Minute).UnixNano(), UpdatedAt: at(-time.Second).UnixNano(), CreateIndex: 3, ModifyIndex: 5}
		if status == fsm.TaskFailed {
			t.Result = &fsm.Result{ExitCode: 2, Error: evil("boom"), Output: evil("out") + "\r\n" + csi + "line two\n"}
		}
		other := &fsm.Task{ID: "t2", Type: "shell", Status: fsm.TaskStatus(evil("odd")), CreateIndex: 1}
		return &rpc.TaskListReply{Tasks: []*fsm.Task{t, other}, Counts: map[string]int{"failed": 1, evil("odd"): 1}}
	}
	feed(m,
		ConnMsg{Addr: srvAddr, ID: srvID, At: at(0)},
		StatusMsg{Addr: srvAddr, Status: st, At: at(0)},
		MembersMsg{Addr: srvAddr, Reply: members("follower"), At: at(time.Second)},
		NodesMsg{Addr: srvAddr, Reply: nodes(fsm.NodeHealthy), At: at(time.Second)},
		TasksMsg{Addr: srvAddr, Reply: tasks(fsm.TaskRunning), At: at(time.Second)},
		// Second round: changes become events.
		MembersMsg{Addr: srvAddr, Reply: members("candidate"), At: at(2 * time.Second)},
		NodesMsg{Addr: srvAddr, Reply: nodes(fsm.NodeDegraded), At: at(2 * time.Second)},
		TasksMsg{Addr: srvAddr, Reply: tasks(fsm.TaskFailed), At: at(2 * time.Second)},
		// Failed reads: their errors show in the panels' notes and banners.
		NodesMsg{Addr: srvAddr, Err: evil("quorum lost"), At: at(3 * time.Second)},
		MembersMsg{Addr: srvAddr, Reply: members("follower"), Stale: true, Err: evil("no leader"), At: at(3 * time.Second)},
		StatusMsg{Addr: srvAddr, Status: st, At: at(3 * time.Second)},
	)
}

// moveAndLose adds a failover and a total loss: notice, events, banner.
func moveAndLose(m *Model) {
	feed(m,
		ConnMsg{Addr: evil("10.0.1.3:50051"), ID: evil("s3"), PrevAddr: m.connAddr, PrevID: m.connID, Reason: evil("eof"), At: at(4 * time.Second)},
		ConnLostMsg{Tried: []string{evil("a1"), evil("a2")}, Err: evil("refused"), At: at(5 * time.Second)},
	)
}

// assertNoControls fails if s holds ESC, another byte below 0x20 other than
// '\n', DEL, a C1 control or invalid UTF-8.
func assertNoControls(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%s: invalid UTF-8 in output:\n%q", what, s)
		return
	}
	for i, r := range s {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			t.Errorf("%s: control %U at byte %d:\n%q", what, r, i, s)
			return
		}
	}
}

// views renders m in every mode the hostile data can reach: the main view
// with each panel focused, the task detail (scrolled to its end), the
// nodes' enter filter (the footer shows the node id), the filter editor
// with pasted control text, Plain, and after a failover and a total loss.
// Names say which.
func views(t *testing.T, m *Model) map[string]string {
	t.Helper()
	out := map[string]string{"main": m.View(), "plain": m.Plain()}
	for p := 1; p < int(numPanels); p++ {
		feed(m, key("tab"))
		out["main, focus "+panelNames[m.focus]] = m.View()
	}
	for m.focus != panelTasks {
		feed(m, key("tab"))
	}
	feed(m, key("g"), key("enter"))
	if m.mode != modeDetail || m.detailID != evil("t1") {
		t.Fatalf("enter on the tasks panel opened mode %d, task %q", m.mode, m.detailID)
	}
	out["detail"] = m.View()
	for i := 0; i < 40; i++ {
		feed(m, key("j"))
	}
	out["detail, scrolled"] = m.View()
	feed(m, key("esc"))
	for m.focus != panelNodes {
		feed(m, key("tab"))
	}
	feed(m, key("g"))
	for i := 0; m.sel[panelNodes] != evil("n1"); i++ {
		if i > 5 {
			t.Fatalf("node %q not found in the nodes panel", evil("n1"))
		}
		feed(m, key("j"))
	}
	feed(m, key("enter"))
	if !strings.Contains(m.filter, evil("n1")) {
		t.Fatalf("enter on node %q set the filter to %q", evil("n1"), m.filter)
	}
	out["node filter"] = m.View()
	feed(m, key("/"), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(" pasted" + osc + "\n" + c1), Paste: true})
	out["editing filter"] = m.View()
	feed(m, key("esc"), key("esc"))
	moveAndLose(m)
	out["lost"] = m.View()
	out["lost, plain"] = m.Plain()
	return out
}

// The live view, the task detail and Plain, at several sizes, show every
// control character in server data escaped: with the Ascii profile (as
// the golden tests use) the output holds no ESC at all, no control byte
// but '\n', and every frame still fits the terminal exactly.
func TestViewEscapesServerText(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {120, 40}, {60, 16}, {200, 60}, {40, 10}} {
		w, h := sz[0], sz[1]
		t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
			m := newTestModel(t, w, h)
			hostileCluster(m)
			for name, v := range views(t, m) {
				if strings.Contains(v, "\x1b") {
					t.Errorf("%s: ESC in output:\n%q", name, v)
					continue
				}
				assertNoControls(t, name, v)
				if !strings.Contains(name, "plain") {
					checkFrame(t, v, w, h)
				}
			}
		})
	}
}

// sgr matches the Select Graphic Rendition sequences lipgloss emits.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// With colour on, the only escape sequences left are lipgloss's own SGR
// styling: server text was escaped before it was styled.
func TestColourViewHasOnlyStylingEscapes(t *testing.T) {
	for _, profile := range []termenv.Profile{termenv.ANSI, termenv.TrueColor} {
		r := lipgloss.NewRenderer(io.Discard)
		r.SetColorProfile(profile)
		m := New(Options{Renderer: r, Location: time.UTC, Now: t0})
		feed(m, tea.WindowSizeMsg{Width: 120, Height: 40})
		hostileCluster(m)
		for name, v := range views(t, m) {
			if name == "main" && !sgr.MatchString(v) {
				t.Fatalf("profile %v: the main view has no styling at all; the test proves nothing", profile)
			}
			assertNoControls(t, fmt.Sprintf("profile %v, %s", profile, name), sgr.ReplaceAllString(v, ""))
		}
	}
}

// The escaped values read as Go escapes where they are shown, and
// escaping keeps the plain tables' columns and the detail's lines intact.
func TestEscapedValuesAreReadable(t *testing.T) {
	m := newTestModel(t, 200, 60)
	hostileCluster(m)
	esc := func(s string) string { // what evil(s) looks like escaped
		return s + `\x1b]0;pwned\a\x1b[2J\n\u009b31m\a\x7f\t\r\x00\xff\xc0\x9b!`
	}
	main := m.View()
	for _, want := range []string{"connected to " + esc("s2"), "leader " + esc("s1"), "WARNING: " + esc("voters split")} {
		if !strings.Contains(main, want) {
			t.Errorf("main view lacks %q:\n%s", want, main)
		}
	}
	for _, want := range []string{
		"node " + esc("n1") + " healthy → degraded",
		// An error shows its first line only, as for clean text.
		"task " + esc("t1") + " failed on " + esc("n1") + " (exit 2: boom" + `\x1b]0;pwned\a\x1b[2J` + ")",
	} {
		if !strings.Contains(strings.Join(eventTexts(m), "\n"), want) {
			t.Errorf("events lack %q:\n%s", want, strings.Join(eventTexts(m), "\n"))
		}
	}

	plain := m.Plain()
	lines := strings.Split(plain, "\n")
	hdr := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "ID") && strings.Contains(l, "HEARTBEAT") {
			hdr = i
		}
	}
	if hdr < 0 || hdr+2 >= len(lines) {
		t.Fatalf("plain has no nodes table:\n%s", plain)
	}
	col := lipgloss.Width(lines[hdr][:strings.Index(lines[hdr], "STATUS")])
	for _, l := range lines[hdr+1 : hdr+3] {
		// Each node row is one line whose STATUS starts under the header's.
		i := strings.Index(l, "degraded")
		if i < 0 {
			i = strings.Index(l, "weird")
		}
		if i < 0 || lipgloss.Width(l[:i]) != col {
			t.Errorf("node row not aligned under STATUS (column %d):\n%s\n%s", col, lines[hdr], l)
		}
	}
	if !strings.HasPrefix(lines[hdr+1], esc("n1")) && !strings.HasPrefix(lines[hdr+2], esc("n1")) {
		t.Errorf("no node row starts with the escaped id %q:\n%s", esc("n1"), strings.Join(lines[hdr:hdr+3], "\n"))
	}

	for m.focus != panelTasks {
		feed(m, key("tab"))
	}
	feed(m, key("g"), key("enter"))
	var trimmed []string
	for _, l := range strings.Split(m.View(), "\n") {
		trimmed = append(trimmed, strings.TrimRight(l, " "))
	}
	detail := strings.Join(trimmed, "\n")
	for _, want := range []string{
		"[Task " + esc("t1") + "]",
		"  id         " + esc("t1") + "\n",
		// Multi-line payload values and output keep their lines.
		"  cmd = echo hi" + `\x1b]0;pwned\a\x1b[2J` + "\n        " + `\u009b31m\a\x7f\t\r\x00\xff\xc0\x9b!` + "\n        second line" + `\x1b]0;pwned\a` + "\n",
		"  " + esc("key") + " = v" + `\x1b]0;pwned\a\x1b[2J` + "\n",
		"  error      boom" + `\x1b]0;pwned\a\x1b[2J` + "\n",
		"    out" + `\x1b]0;pwned\a\x1b[2J` + "\n    " + `\u009b31m\a\x7f\t\r\x00\xff\xc0\x9b!\r` + "\n",
		"    " + `\x1b[2Jline two`,
	} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail view lacks %q:\n%s", want, detail)
		}
	}
}
