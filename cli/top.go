package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/term"
	"github.com/muesli/termenv"
	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/rpc"
	"github.com/rctl-dev/rctl/tui"
)

func newTopCommand(g *globals) *cobra.Command {
	var (
		once    bool
		noColor bool
		refresh time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live terminal view of the cluster: leader, servers, nodes, tasks and events",
		Long: `A live, full-screen view of the cluster, kept open during incidents.

Header: the leader (id and cloud), term, commit and applied index and the time
since the last leader change, as the connected server sees them, and the health
figures from the leader's probe: the leader's write p99 (proposal to result),
the slowest server's log fsync p99 (both over the last minute) and the longest
round trip from the leader. A banner says so loudly when there is no leader,
when the connected server seems cut off from the majority, when the view moved
to another server, and when a round trip does not fit the --timing profile.
Servers: every Raft server with cloud/region, role, suffrage, last contact,
replication lag and round trip (RTT) as the leader probes them (refreshed
every --refresh and on each leader change). * marks the connected server.
Nodes: every agent with status, heartbeat age, active tasks/capacity; sortable.
Tasks: counts per status and the newest 500 tasks matching the filter (the
server applies status:, node: and type:; the page is bounded however large the
manifest is); enter opens a task's payload, result and history.
Events: leader changes, server and node status changes, task failures and
requeues, found by comparing successive answers.

Updates arrive through blocking queries (no polling). When the connected server
stops answering, top moves to the next address it knows (--addr plus every
server it has seen in the member list) and says so on screen.

Keys: tab/←/→ switch panel, j/k/↑/↓ move, enter task detail (on a node: its
tasks), esc back, / filter tasks (words, status:failed,running, node:ID,
type:T), f cycle the status filter, s cycle the nodes' sort, ? help, q quit.

With --once, or when stdout is not a terminal, top prints one plain-text
snapshot (no colour) and exits: 0 on success, 1 with one line on stderr when no
server answers. -o json prints that snapshot as JSON. --timeout bounds --once.`,
		Example: `  rctl top --addr 10.0.1.5:50051,10.0.2.7:50051
  rctl top --once > cluster-state.txt
  rctl top --once -o json | jq .status.leader_id`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if refresh < 100*time.Millisecond {
				return usagef("--refresh must be at least 100ms, got %s", refresh)
			}
			if len(g.addrs()) == 0 {
				return usagef("--addr is empty; give at least one server address")
			}
			if once || g.json() || !isTerminal(g.stdout) || !isTerminal(os.Stdin) {
				return topOnce(g)
			}
			return topLive(g, refresh, noColor)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&once, "once", false, "print one plain-text snapshot and exit (the default when stdout is not a terminal)")
	fl.BoolVar(&noColor, "no-color", false, "draw without colour (also when NO_COLOR is set)")
	fl.DurationVar(&refresh, "refresh", time.Second, "how often the servers panel is refreshed (Status.Members has no blocking form); other panels update as the cluster changes")
	return cmd
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// topOnce prints one snapshot: plain text, or JSON with -o json.
func topOnce(g *globals) error {
	ctx, cancel := g.ctx()
	defer cancel()
	pool := rpc.NewPoolWith(g.credentials())
	defer pool.Close()
	msgs, snap, err := tui.FetchOnce(ctx, pool, g.addrs(), time.Now)
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(snap)
	}
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := tui.New(tui.Options{Seeds: g.addrs(), Renderer: r})
	for _, msg := range msgs {
		m.Update(msg)
	}
	_, err = fmt.Fprint(g.stdout, m.Plain())
	return err
}

// topLive runs the full-screen view until q or Ctrl-C.
func topLive(g *globals, refresh time.Duration, noColor bool) error {
	out := g.stdout.(*os.File) // checked by isTerminal
	r := lipgloss.NewRenderer(out)
	if noColor {
		r.SetColorProfile(termenv.Ascii)
	}
	var w *tui.Watcher // set before the program runs: the filter follows the view
	m := tui.New(tui.Options{Seeds: g.addrs(), Renderer: r, MembersEvery: refresh,
		OnFilter: func(f string) { w.SetTaskFilter(f) }})
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithOutput(out))

	ctx, cancel := context.WithCancel(context.Background())
	pool := rpc.NewPoolWith(g.credentials())
	w = tui.NewWatcher(pool, g.addrs(), tui.WatchConfig{MembersEvery: refresh}, p.Send)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	_, err := p.Run()
	cancel() // every call's context derives from ctx: the watcher stops at once
	<-done
	pool.Close()
	if err != nil {
		return fmt.Errorf("top: %w", err)
	}
	return nil
}
