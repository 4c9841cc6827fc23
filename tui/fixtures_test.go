package tui

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the fixtures' clock: every message is stamped relative to it.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// newTestModel returns a model that renders without colour, in UTC.
func newTestModel(t *testing.T, w, h int) *Model {
	t.Helper()
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(Options{Seeds: []string{"10.0.1.1:50051", "10.0.1.2:50051"}, Renderer: r, Location: time.UTC, Now: t0})
	feed(m, tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

func feed(m *Model, msgs ...tea.Msg) {
	for _, msg := range msgs {
		m.Update(msg)
	}
}

func key(s string) tea.KeyMsg {
	switch s {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "left":
		return tea.KeyMsg{Type: tea.KeyLeft}
	case "right":
		return tea.KeyMsg{Type: tea.KeyRight}
	case "backspace":
		return tea.KeyMsg{Type: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "pgup":
		return tea.KeyMsg{Type: tea.KeyPgUp}
	case "pgdown":
		return tea.KeyMsg{Type: tea.KeyPgDown}
	case "space":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// typeKeys sends each rune of s as a key press.
func typeKeys(m *Model, s string) {
	for _, r := range s {
		if r == ' ' {
			feed(m, key("space"))
		} else {
			feed(m, key(string(r)))
		}
	}
}

// golden compares got with testdata/name.golden (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s: %v (run go test ./tui -update to create it)", path, err)
	}
	if got != string(want) {
		t.Errorf("view differs from %s (go test ./tui -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("view %s has escape codes despite the Ascii profile", name)
	}
}

// checkFrame asserts the view is exactly h lines, none wider than w.
func checkFrame(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Errorf("view has %d lines, want %d", len(lines), h)
	}
	for i, l := range lines {
		if n := lipgloss.Width(l); n > w {
			t.Errorf("line %d is %d cells wide, want at most %d: %q", i+1, n, w, l)
		}
	}
}

const (
	addr1 = "10.0.1.1:50051"
	addr2 = "10.0.1.2:50051"
	addr3 = "10.0.1.3:50051"
	addr4 = "10.0.2.1:50051"
	addr5 = "10.0.2.2:50051"
)

func statusOf(id, addr, state, leader string, term, index uint64) rpc.StatusReply {
	leaderAddr := map[string]string{"s1": addr1, "s2": addr2, "s3": addr3, "s4": addr4, "s5": addr5}[leader]
	return rpc.StatusReply{ID: id, Address: addr, Cloud: "aws", Region: "us-east-1", State: state,
		LeaderID: leader, LeaderAddr: leaderAddr, Term: term, CommitIndex: index, AppliedIndex: index, LastIndex: index,
		LastContactMS: 12, LastLeaderChangeMS: at(-4*time.Minute - 7*time.Second).UnixMilli(), NumPeers: 5, Version: "test"}
}

// fiveServers is a healthy 3 AWS + 2 GCP cluster led by s1.
func fiveServers() *rpc.MembersReply {
	return &rpc.MembersReply{From: "s1", Warnings: []string{}, Members: []rpc.Member{
		{ID: "s1", Address: addr1, Cloud: "aws", Region: "us-east-1", Suffrage: "voter", State: "leader", Leader: true, LastContactMS: 0, Lag: 0, Term: 7, CommitP99MS: 61.4, LogSyncP99MS: 1.2},
		{ID: "s2", Address: addr2, Cloud: "aws", Region: "us-east-1", Suffrage: "voter", State: "follower", LastContactMS: 18, Lag: 0, Term: 7, RTTMS: 1.2, CommitP99MS: -1, LogSyncP99MS: 0.9},
		{ID: "s3", Address: addr3, Cloud: "aws", Region: "us-east-2", Suffrage: "voter", State: "follower", LastContactMS: 25, Lag: 2, Term: 7, RTTMS: 24.9, CommitP99MS: -1, LogSyncP99MS: 1.6},
		{ID: "s4", Address: addr4, Cloud: "gcp", Region: "europe-west1", Suffrage: "voter", State: "follower", LastContactMS: 240, Lag: 140, Term: 7, RTTMS: 243.4, CommitP99MS: -1, LogSyncP99MS: 14.2},
		{ID: "s5", Address: addr5, Cloud: "gcp", Region: "europe-west1", Suffrage: "nonvoter", State: "follower", LastContactMS: 251, Lag: 3, Term: 7, RTTMS: 244.1, CommitP99MS: -1, LogSyncP99MS: 1.1},
	}}
}

func node(id, cloud, region string, st fsm.NodeStatus, hbMS int64, active, capacity int) rpc.NodeInfo {
	return rpc.NodeInfo{Node: fsm.Node{ID: id, Address: "10.9.0." + id[1:], Cloud: cloud, Region: region, Capacity: capacity, Status: st},
		HeartbeatAgeMS: hbMS, ActiveTasks: active}
}

func fourNodes() *rpc.NodeListReply {
	return &rpc.NodeListReply{QueryMeta: rpc.QueryMeta{Index: 90, KnownLeader: true}, Nodes: []rpc.NodeInfo{
		node("n1", "aws", "us-east-1", fsm.NodeHealthy, 420, 2, 4),
		node("n2", "aws", "us-east-2", fsm.NodeHealthy, 380, 1, 4),
		node("n3", "gcp", "europe-west1", fsm.NodeDegraded, 2600, 1, 2),
		node("n4", "gcp", "europe-west1", fsm.NodeUnreachable, 9100, 0, 2),
	}}
}

func task(id, typ string, st fsm.TaskStatus, nodeID string, attempts int, idx uint64, updatedAgo time.Duration) *fsm.Task {
	t := &fsm.Task{ID: id, Type: typ, Status: st, NodeID: nodeID, Attempts: attempts, MaxAttempts: 3,
		Payload:   fsm.NewPayload(map[string]string{"cmd": "echo " + id}),
		CreatedAt: at(-10 * time.Minute).UnixNano(), UpdatedAt: at(-updatedAgo).UnixNano(),
		CreateIndex: idx, ModifyIndex: idx + 5,
		History: []fsm.Event{{Time: at(-10 * time.Minute).UnixNano(), Index: idx, Status: fsm.TaskPending, Message: "added"}}}
	if st != fsm.TaskPending {
		t.History = append(t.History, fsm.Event{Time: at(-9 * time.Minute).UnixNano(), Index: idx + 1, Status: fsm.TaskAssigned, NodeID: nodeID})
	}
	switch st {
	case fsm.TaskComplete:
		t.Result = &fsm.Result{ExitCode: 0, Output: "done"}
		t.History = append(t.History, fsm.Event{Time: t.UpdatedAt, Index: idx + 5, Status: st, NodeID: nodeID})
	case fsm.TaskFailed:
		t.Result = &fsm.Result{ExitCode: 2, Output: "fetching…\nerror: disk full", Error: "exit status 2"}
		t.History = append(t.History, fsm.Event{Time: t.UpdatedAt, Index: idx + 5, Status: st, NodeID: nodeID, Message: "exit status 2"})
	case fsm.TaskCancelled:
		t.History = append(t.History, fsm.Event{Time: t.UpdatedAt, Index: idx + 5, Status: st, Message: "cancelled by operator"})
	}
	return t
}

func someTasks() *rpc.TaskListReply {
	ts := []*fsm.Task{
		task("backup-db", "shell", fsm.TaskComplete, "n1", 1, 10, 8*time.Minute),
		task("rotate-logs", "shell", fsm.TaskComplete, "n2", 1, 12, 7*time.Minute),
		task("resize-images", "shell", fsm.TaskFailed, "n3", 3, 14, 3*time.Minute),
		task("warm-cache", "sleep", fsm.TaskRunning, "n1", 1, 20, 50*time.Second),
		task("reindex-search", "shell", fsm.TaskRunning, "n2", 2, 22, 20*time.Second),
		task("send-digest", "shell", fsm.TaskAssigned, "n1", 1, 30, 2*time.Second),
		task("compact-s3", "shell", fsm.TaskPending, "", 0, 32, 90*time.Second),
		task("gc-tmp", "shell", fsm.TaskCancelled, "", 0, 34, 6*time.Minute),
		task("train-model", "gpu.train", fsm.TaskPending, "", 1, 40, 5*time.Second),
		task("ping-fleet", "shell", fsm.TaskComplete, "n3", 1, 42, 30*time.Second),
	}
	ts[6].Cloud = "gcp"
	counts := map[string]int{}
	for _, t := range ts {
		counts[string(t.Status)]++
	}
	return &rpc.TaskListReply{Tasks: ts, Counts: counts, QueryMeta: rpc.QueryMeta{Index: 47, KnownLeader: true}}
}

// normalCluster feeds a five-server cluster led by s1, connected to s2,
// then a second round of answers in which a node degrades, another becomes
// unreachable and a task fails (the events log's first lines).
func normalCluster(m *Model) {
	nodes := fourNodes()
	nodes.Nodes[2].Status, nodes.Nodes[3].Status = fsm.NodeHealthy, fsm.NodeHealthy
	tasks := someTasks()
	tasks.Tasks[2] = task("resize-images", "shell", fsm.TaskRunning, "n3", 3, 14, 3*time.Minute)
	feed(m,
		ConnMsg{Addr: addr2, ID: "s2", At: at(0)},
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "follower", "s1", 7, 1230), At: at(0)},
		MembersMsg{Addr: addr2, Reply: fiveServers(), At: at(100 * time.Millisecond)},
		NodesMsg{Addr: addr2, Reply: nodes, At: at(150 * time.Millisecond)},
		TasksMsg{Addr: addr2, Reply: tasks, At: at(200 * time.Millisecond)},
		NodesMsg{Addr: addr2, Reply: fourNodes(), At: at(4 * time.Second)},
		TasksMsg{Addr: addr2, Reply: someTasks(), At: at(5 * time.Second)},
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "follower", "s1", 7, 1234), At: at(5 * time.Second)},
		MembersMsg{Addr: addr2, Reply: fiveServers(), At: at(5 * time.Second)},
	)
}
