package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// The golden views: each case builds a model from messages and renders it at
// a fixed size. Run `go test ./tui -update` after an intended change.
func TestViewGolden(t *testing.T) {
	cases := []struct {
		name string
		w, h int
		run  func(m *Model)
	}{
		{"normal_80x24", 80, 24, normalCluster},
		{"normal_120x40", 120, 40, normalCluster},
		{"waiting_80x24", 80, 24, func(m *Model) {}},
		{"no_leader_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			st := statusOf("s2", addr2, "candidate", "", 8, 1234)
			st.LastContactMS = 1800
			feed(m, StatusMsg{Addr: addr2, Status: st, At: at(7 * time.Second)},
				TasksMsg{Addr: addr2, Err: "server s2 knows no leader: the cluster is electing one; retry", At: at(8 * time.Second)},
				TickMsg(at(9*time.Second)))
		}},
		{"no_leader_120x40", 120, 40, func(m *Model) {
			normalCluster(m)
			feed(m, StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "follower", "", 7, 1234), At: at(7 * time.Second)},
				MembersMsg{Addr: addr2, Reply: staleMembers(), Stale: true, Err: "Status.Members on 10.0.1.2:50051: no answer before the deadline", At: at(8 * time.Second)})
		}},
		{"server_lost_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, ConnMsg{Addr: addr3, ID: "s3", PrevAddr: addr2, PrevID: "s2",
				Reason: "lost connection to 10.0.1.2:50051: server closed the connection", At: at(6 * time.Second)},
				StatusMsg{Addr: addr3, Status: statusOf("s3", addr3, "follower", "s1", 7, 1240), At: at(6 * time.Second)},
				MembersMsg{Addr: addr3, Reply: withState(fiveServers(), "s2", "unreachable"), At: at(7 * time.Second)},
				TickMsg(at(8*time.Second)))
		}},
		{"all_lost_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, ConnLostMsg{Tried: []string{addr3, addr4, addr2}, Err: "cannot connect to 10.0.1.2:50051: connect: connection refused", At: at(6 * time.Second)},
				TickMsg(at(12*time.Second)))
		}},
		{"quorum_lost_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			ms := withState(withState(withState(fiveServers(), "s2", "unreachable"), "s3", "unreachable"), "s4", "unreachable")
			feed(m, MembersMsg{Addr: addr2, Reply: ms, At: at(6 * time.Second)})
		}},
		{"filter_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, key("/"))
			typeKeys(m, "status:running,failed re")
			feed(m, key("enter"))
		}},
		{"filter_typing_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, key("/"))
			typeKeys(m, "cache")
		}},
		{"detail_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, key("tab"), key("tab"), key("j"), key("j"), key("j"), key("j"), key("j"), key("j"), key("j"), key("enter"))
		}},
		{"detail_scrolled_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, key("/"))
			typeKeys(m, "resize")
			feed(m, key("enter"), key("enter"), key("j"), key("j"), key("j"), key("j"), key("j"), key("j"))
		}},
		{"help_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, key("?"))
		}},
		{"nodes_sorted_80x24", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, key("tab"), key("s"), key("j"))
		}},
		{"resize_to_100x30", 80, 24, func(m *Model) {
			normalCluster(m)
			feed(m, tea.WindowSizeMsg{Width: 120, Height: 40}, tea.WindowSizeMsg{Width: 100, Height: 30})
		}},
		{"tiny_60x16", 60, 16, normalCluster},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(t, tc.w, tc.h)
			tc.run(m)
			w, h := m.size()
			view := m.View()
			checkFrame(t, view, w, h)
			golden(t, tc.name, view)
		})
	}
}

func staleMembers() *rpc.MembersReply {
	ms := fiveServers()
	ms.From = "s2"
	for i := range ms.Members {
		m := &ms.Members[i]
		m.State, m.Leader, m.LastContactMS, m.Lag, m.Term = "unknown", false, -1, -1, 0
		if m.ID == "s2" {
			m.State, m.Term = "follower", 7
		}
	}
	return ms
}

func withState(ms *rpc.MembersReply, id, state string) *rpc.MembersReply {
	for i := range ms.Members {
		if ms.Members[i].ID == id {
			ms.Members[i].State, ms.Members[i].LastContactMS, ms.Members[i].Lag, ms.Members[i].Term = state, -1, -1, 0
		}
	}
	return ms
}

// Every size from tiny to huge yields a full frame that fits the terminal.
func TestViewFitsEverySize(t *testing.T) {
	for _, w := range []int{20, 40, 59, 80, 99, 119, 120, 121, 160, 250} {
		for _, h := range []int{5, 10, 16, 24, 29, 30, 40, 60} {
			m := newTestModel(t, w, h)
			normalCluster(m)
			for _, k := range []string{"", "tab", "enter", "?"} {
				if k != "" {
					feed(m, key(k))
				}
				checkFrame(t, m.View(), w, h)
			}
		}
	}
}

func TestPlainGolden(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	out := m.Plain()
	golden(t, "plain_once", out)
	for _, want := range []string{"s1", "s2*", "s3", "s4", "s5", "leader s1", "n4", "resize-images"} {
		if !strings.Contains(out, want) {
			t.Errorf("plain snapshot lacks %q", want)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line %d has trailing spaces: %q", i+1, l)
		}
	}
}

func TestPlainNoLeaderStale(t *testing.T) {
	m := newTestModel(t, 80, 24)
	feed(m,
		ConnMsg{Addr: addr2, ID: "s2", At: at(0)},
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "candidate", "", 8, 1234), At: at(0)},
		MembersMsg{Addr: addr2, Reply: staleMembers(), Stale: true, Err: "no leader", At: at(0)},
		NodesMsg{Addr: addr2, Reply: fourNodes(), Stale: true, Err: "no leader", At: at(0)},
		TasksMsg{Addr: addr2, Reply: someTasks(), Stale: true, Err: "no leader", At: at(0)},
	)
	golden(t, "plain_no_leader", m.Plain())
}

// eventTexts returns the events log, oldest first.
func eventTexts(m *Model) []string {
	var out []string
	for _, e := range m.events {
		out = append(out, e.Text)
	}
	return out
}

func TestEventsFromDiffs(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	want := []string{
		"node n3 healthy → degraded",
		"node n4 healthy → unreachable",
		"task resize-images failed on n3 (exit 2: exit status 2)",
	}
	if got := eventTexts(m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events after the normal cluster:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Leader lost, then a new one; a server goes unreachable and comes back;
	// a task is requeued; a node registers and another leaves.
	requeued := someTasks()
	requeued.Tasks[4] = task("reindex-search", "shell", fsm.TaskPending, "n2", 2, 22, time.Second)
	nodes := fourNodes()
	nodes.Nodes = append(nodes.Nodes[1:], node("n5", "aws", "us-east-1", fsm.NodeHealthy, 10, 0, 4))
	m.events = nil
	feed(m,
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "follower", "", 7, 1234), At: at(10 * time.Second)},
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "follower", "s3", 8, 1236), At: at(11500 * time.Millisecond)},
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "follower", "s2", 9, 1240), At: at(12 * time.Second)},
		StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "leader", "s2", 10, 1240), At: at(13 * time.Second)},
		MembersMsg{Addr: addr2, Reply: withState(fiveServers(), "s1", "unreachable"), At: at(13 * time.Second)},
		MembersMsg{Addr: addr2, Reply: fiveServers(), At: at(14 * time.Second)},
		MembersMsg{Addr: addr2, Reply: staleMembers(), Stale: true, At: at(15 * time.Second)}, // no news
		TasksMsg{Addr: addr2, Reply: requeued, At: at(16 * time.Second)},
		NodesMsg{Addr: addr2, Reply: nodes, At: at(17 * time.Second)},
		ConnMsg{Addr: addr3, ID: "s3", PrevAddr: addr2, PrevID: "s2", Reason: "connection refused", At: at(18 * time.Second)},
		ConnLostMsg{Tried: []string{addr1, addr3}, Err: "connection refused", At: at(19 * time.Second)},
		ConnLostMsg{Tried: []string{addr1, addr3}, Err: "connection refused", At: at(20 * time.Second)}, // same outage
		ConnMsg{Addr: addr1, ID: "s1", At: at(21 * time.Second)},
	)
	want = []string{
		"leader s1 lost (term 7): no leader",
		"new leader s3 (term 8) after 1.5s without one",
		"leader s3 → s2 (term 9)",
		"term 9 → 10, leader still s2",
		"server s1 leader → unreachable",
		"server s1 unreachable → leader",
		"task reindex-search requeued from n2 (attempt 2/3)",
		"node n5 registered (healthy)",
		"node n1 deregistered",
		"moved to s3 (10.0.1.3:50051) from s2 (10.0.1.2:50051): connection refused",
		"no server answers (tried 10.0.1.1:50051, 10.0.1.3:50051): connection refused",
		"reconnected to s1 (10.0.1.1:50051) after 2.0s",
	}
	if got := eventTexts(m); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEventsLogIsBounded(t *testing.T) {
	m := newTestModel(t, 80, 24)
	for i := 0; i < maxEvents+50; i++ {
		leader := fmt.Sprintf("s%d", i%2+1)
		feed(m, StatusMsg{Addr: addr1, Status: statusOf("s1", addr1, "follower", leader, uint64(i+1), 1), At: at(time.Duration(i) * time.Second)})
	}
	if len(m.events) != maxEvents {
		t.Fatalf("events log holds %d entries, want %d", len(m.events), maxEvents)
	}
	if last := m.events[len(m.events)-1].Text; !strings.Contains(last, fmt.Sprintf("term %d", maxEvents+50)) {
		t.Fatalf("newest event is %q", last)
	}
}

func TestBanners(t *testing.T) {
	cases := []struct {
		name string
		run  func(m *Model)
		want []string // prefixes of the banners, in order
	}{
		{"healthy", normalCluster, nil},
		{"no leader", func(m *Model) {
			normalCluster(m)
			feed(m, StatusMsg{Addr: addr2, Status: statusOf("s2", addr2, "candidate", "", 8, 1), At: at(6 * time.Second)})
		}, []string{"NO LEADER for 0ms: s2 (candidate, term 8)"}},
		{"cut off follower", func(m *Model) {
			normalCluster(m)
			st := statusOf("s2", addr2, "follower", "s1", 7, 1)
			st.LastContactMS = 4200
			feed(m, StatusMsg{Addr: addr2, Status: st, At: at(6 * time.Second)})
		}, []string{"NO QUORUM? s2 last heard from leader s1 4.2s ago"}},
		{"reads fail for want of quorum", func(m *Model) {
			normalCluster(m)
			feed(m, TasksMsg{Addr: addr2, Err: "server s1 could not confirm its leadership with a quorum before the deadline; the cluster may have lost its majority", At: at(6 * time.Second)})
		}, []string{"NO QUORUM: reads fail: server s1 could not confirm"}},
		{"failover notice expires", func(m *Model) {
			normalCluster(m)
			feed(m, ConnMsg{Addr: addr3, ID: "s3", PrevAddr: addr2, PrevID: "s2", Reason: "eof", At: at(6 * time.Second)},
				TickMsg(at(6*time.Second+noticeFor+time.Second)))
		}, nil},
		{"geometry warning", func(m *Model) {
			normalCluster(m)
			ms := fiveServers()
			ms.Warnings = []string{"voters are split aws 3 + gcp 3"}
			feed(m, MembersMsg{Addr: addr2, Reply: ms, At: at(6 * time.Second)})
		}, []string{"WARNING: voters are split"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestModel(t, 80, 24)
			tc.run(m)
			bs := m.banners()
			if len(bs) != len(tc.want) {
				t.Fatalf("banners %+v, want %d", bs, len(tc.want))
			}
			for i, b := range bs {
				if !strings.HasPrefix(b.text, tc.want[i]) {
					t.Errorf("banner %d is %q, want prefix %q", i, b.text, tc.want[i])
				}
			}
		})
	}
}

func TestFilterParsing(t *testing.T) {
	ts := someTasks().Tasks
	cases := []struct {
		filter string
		want   []string
	}{
		{"", nil}, // all
		{"status:failed", []string{"resize-images"}},
		{"s:running,assigned", []string{"warm-cache", "reindex-search", "send-digest"}},
		{"node:n1", []string{"backup-db", "warm-cache", "send-digest"}},
		{"type:gpu.train", []string{"train-model"}},
		{"RE", []string{"resize-images", "reindex-search"}},
		{"fleet status:complete", []string{"ping-fleet"}},
		{"n3 complete", []string{"ping-fleet"}},
		{"nothing-matches", []string{}},
	}
	for _, tc := range cases {
		f := parseFilter(tc.filter)
		var got []string
		for _, task := range ts {
			if f.match(task) {
				got = append(got, task.ID)
			}
		}
		if tc.want == nil {
			if len(got) != len(ts) {
				t.Errorf("filter %q matched %v, want all", tc.filter, got)
			}
			continue
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("filter %q matched %v, want %v", tc.filter, got, tc.want)
		}
	}
}

// Read errors belong to the server they came from: moving clears them, and
// late failures from the old server are ignored.
func TestErrorsFollowTheConnection(t *testing.T) {
	m := newTestModel(t, 80, 24)
	normalCluster(m)
	feed(m, TasksMsg{Addr: addr2, Err: "lost connection to 10.0.1.2:50051", At: at(6 * time.Second)})
	if m.tasksErr == "" {
		t.Fatal("error from the connected server not kept")
	}
	feed(m, ConnMsg{Addr: addr3, ID: "s3", PrevAddr: addr2, PrevID: "s2", Reason: "eof", At: at(7 * time.Second)})
	if m.tasksErr != "" {
		t.Fatalf("error of the old server survived the move: %q", m.tasksErr)
	}
	feed(m, NodesMsg{Addr: addr2, Err: "lost connection to 10.0.1.2:50051", At: at(7 * time.Second)})
	if m.nodesErr != "" {
		t.Fatalf("late error from the old server shown: %q", m.nodesErr)
	}
	if strings.Contains(m.View(), "lost connection to 10.0.1.2:50051:") {
		t.Fatalf("view shows the old server's error:\n%s", m.View())
	}
}
