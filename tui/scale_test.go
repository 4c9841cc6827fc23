package tui

import (
	"fmt"
	"io"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// scaleModel is a model fed 10,000 nodes and a full tasks page of a
// 1M-task manifest.
func scaleModel(tb testing.TB) *Model {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(Options{Renderer: r, Location: time.UTC, Now: t0})
	feed(m, tea.WindowSizeMsg{Width: 160, Height: 50})
	nodes := &rpc.NodeListReply{QueryMeta: rpc.QueryMeta{Index: 90, KnownLeader: true}}
	statuses := []fsm.NodeStatus{fsm.NodeHealthy, fsm.NodeHealthy, fsm.NodeDegraded, fsm.NodeUnreachable}
	for i := range 10_000 {
		nodes.Nodes = append(nodes.Nodes, node(fmt.Sprintf("n%05d", i), "aws", "us-east-1", statuses[i%4], int64(i%5000), i%4, 4))
	}
	page := &rpc.TaskListReply{Counts: map[string]int{"pending": 400_000, "running": 10_000, "complete": 590_000}, NextCursor: "c1x",
		QueryMeta: rpc.QueryMeta{Index: 1_000_000}}
	for i := range 500 {
		page.Tasks = append(page.Tasks, task(fmt.Sprintf("t%07d", 1_000_000-i), "shell", fsm.TaskRunning, fmt.Sprintf("n%05d", i), 1, uint64(2_000_000-i), time.Second))
	}
	feed(m, NodesMsg{Reply: nodes, At: t0}, TasksMsg{Reply: page, At: t0})
	return m
}

// BenchmarkModelAtScale: one key press and one redraw with 10,000 nodes
// and a tasks page of a 1M-task manifest (go test -run='^$'
// -bench=ModelAtScale ./tui/).
func BenchmarkModelAtScale(b *testing.B) {
	m := scaleModel(b)
	keys := []tea.KeyMsg{key("j"), key("k")}
	for i := 0; b.Loop(); i++ {
		m.Update(keys[i%2])
		_ = m.View()
	}
}
