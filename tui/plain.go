package tui

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

// Plain renders the model's data as plain text without colour or screen
// size limits: the output of `rctl top --once`, for scripts and bug
// reports. Servers and nodes are listed in full, tasks newest first up to
// 50 (FetchOnce asks for no more), with the counts of the whole manifest.
//
// Server-provided strings are escaped (termsafe.Field) as they are
// written: table rows through tabRow, which also keeps a tab or newline in
// a value from breaking the columns; banners and events arrive escaped (see
// banners and addEvent); the header and the panels' notes explicitly.
func (m *Model) Plain() string {
	var b strings.Builder
	m.plainHeader(&b)
	b.WriteString("\n")
	m.plainServers(&b)
	b.WriteString("\n")
	m.plainNodes(&b)
	b.WriteString("\n")
	m.plainTasks(&b)
	m.plainEvents(&b)
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// plainHeader writes the first lines of Plain: the time and the connected
// server, the leader and the Raft figures, then the banners.
func (m *Model) plainHeader(b *strings.Builder) {
	now := m.now.In(m.loc)
	fmt.Fprintf(b, "rctl top at %s, connected to %s", now.Format(time.DateTime+" MST"), termsafe.Field(serverName(m.connID, m.connAddr)))
	if m.status != nil {
		fmt.Fprintf(b, " (%s)", termsafe.Field(m.status.State))
	}
	b.WriteString("\n")
	if st := m.status; st != nil {
		hf := m.healthFigures()
		if hf != "" {
			hf = "  " + hf
		}
		fmt.Fprintf(b, "leader %s  term %d%s  commit %d  applied %d\n", m.plainLeader(st), st.Term, hf, st.CommitIndex, st.AppliedIndex)
	}
	for _, bn := range m.banners() {
		mark := "!"
		if bn.level == levelBad {
			mark = "!!"
		}
		fmt.Fprintf(b, "%s %s\n", mark, bn.text)
	}
}

// plainLeader describes the leader in st for Plain's header: its ID, its
// cloud/region and for how long it has led, or NONE and since when.
func (m *Model) plainLeader(st *rpc.StatusReply) string {
	changed := ""
	if st.LastLeaderChangeMS > 0 {
		changed = age(m.now.Sub(time.UnixMilli(st.LastLeaderChangeMS)))
	}
	leader := "NONE"
	if changed != "" {
		leader += " (lost " + changed + " ago)"
	}
	if st.LeaderID != "" {
		leader = termsafe.Field(st.LeaderID)
		if lm := m.leaderMember(); lm != nil && cloudRegion(lm.Cloud, lm.Region) != "-" {
			leader += " " + termsafe.Field(cloudRegion(lm.Cloud, lm.Region))
		}
		if changed != "" {
			leader += " for " + changed
		}
	}
	return leader
}

// plainNote is the note after a section's title in Plain: why its data is
// missing (err) or that it is a follower's local copy (stale); "" if
// neither.
func (m *Model) plainNote(err string, stale bool) string {
	switch {
	case err != "" && stale:
		return termsafe.Field(fmt.Sprintf(" [stale: %s's local copy; leader unreachable: %s]", orDash(m.connID), firstLine(err)))
	case err != "":
		return termsafe.Field(" [unavailable: " + firstLine(err) + "]")
	case stale:
		return termsafe.Field(fmt.Sprintf(" [stale: %s's local copy]", orDash(m.connID)))
	}
	return ""
}

// plainServers writes Plain's SERVERS section: a count and, when the
// members are known, a table of them.
func (m *Model) plainServers(b *strings.Builder) {
	if m.members == nil {
		fmt.Fprintf(b, "SERVERS%s\n", m.plainNote(orDefault(m.membersErr, "no answer"), false))
		return
	}
	ok := 0
	for _, s := range m.members.Members {
		if m.serverHealth(s) == healthOK {
			ok++
		}
	}
	fmt.Fprintf(b, "SERVERS %d, %d ok%s\n", len(m.members.Members), ok, m.plainNote(m.membersErr, m.membersStale))
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	tabRow(tw, "ID", "ADDRESS", "CLOUD/REGION", "SUFFRAGE", "STATE", "LAST_CONTACT", "LAG", "RTT", "TERM", "HEALTH")
	for _, s := range m.members.Members {
		id := s.ID
		if s.Address == m.connAddr || s.ID == m.connID {
			id += "*"
		}
		lag, term, contact := "-", "-", msAge(s.LastContactMS)
		if s.Lag >= 0 {
			lag = fmt.Sprint(s.Lag)
		}
		if s.Term > 0 {
			term = fmt.Sprint(s.Term)
		}
		if s.State == "leader" {
			contact = "-"
		}
		tabRow(tw, id, s.Address, cloudRegion(s.Cloud, s.Region),
			s.Suffrage, orDefault(s.State, "unknown"), contact, lag, rttText(s), term, healthName(m.serverHealth(s)))
	}
	tw.Flush()
	b.WriteString("(* = the connected server)\n")
}

// plainNodes writes Plain's NODES section: counts by status and a table
// of every node.
func (m *Model) plainNodes(b *strings.Builder) {
	counts := map[string]int{}
	for _, n := range m.nodes {
		counts[string(n.Status)]++
	}
	fmt.Fprintf(b, "NODES %d: %d healthy, %d degraded, %d unreachable%s\n", len(m.nodes),
		counts["healthy"], counts["degraded"], counts["unreachable"], m.plainNote(m.nodesErr, m.nodesStale))
	if len(m.nodes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	tabRow(tw, "ID", "STATUS", "HEARTBEAT", "ACTIVE/CAPACITY", "CLOUD/REGION", "ADDRESS")
	for _, n := range m.sortedNodes() {
		tabRow(tw, n.ID, string(n.Status), msAge(n.HeartbeatAgeMS),
			fmt.Sprintf("%d/%d", n.ActiveTasks, n.Capacity), cloudRegion(n.Cloud, n.Region), orDash(n.Address))
	}
	tw.Flush()
}

// plainTasks writes Plain's TASKS section: the manifest's counts by
// status and a table of the newest visible tasks, up to onceTasks.
func (m *Model) plainTasks(b *strings.Builder) {
	var parts []string
	total := 0
	for _, s := range taskStatuses {
		total += m.counts[string(s)]
		parts = append(parts, fmt.Sprintf("%s %d", s, m.counts[string(s)]))
	}
	fmt.Fprintf(b, "TASKS %d: %s%s\n", total, strings.Join(parts, ", "), m.plainNote(m.tasksErr, m.tasksStale))
	vis := m.visibleTasks()
	if len(vis) == 0 {
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	tabRow(tw, "ID", "TYPE", "STATUS", "NODE", "ATTEMPTS", "UPDATED", "INFO")
	for _, t := range vis[:min(len(vis), onceTasks)] {
		tabRow(tw, t.ID, t.Type, string(t.Status), orDash(t.NodeID),
			fmt.Sprintf("%d/%d", t.Attempts, maxAttempts(t)), nsAge(m.now, t.UpdatedAt)+" ago", taskInfo(t))
	}
	tw.Flush()
	if shown := min(len(vis), onceTasks); shown < total {
		fmt.Fprintf(b, "(%d newest of %d shown; rctl task list lists them all)\n", shown, total)
	}
}

// plainEvents writes Plain's EVENTS section, newest first, if there are
// any events.
func (m *Model) plainEvents(b *strings.Builder) {
	if len(m.events) == 0 {
		return
	}
	b.WriteString("\nEVENTS\n")
	for i := len(m.events) - 1; i >= 0; i-- {
		e := m.events[i]
		fmt.Fprintf(b, "%s  %s\n", e.At.In(m.loc).Format("15:04:05"), e.Text)
	}
}

// tabRow writes one row of a tabwriter table, every cell escaped with
// termsafe.Field: the choke point for Plain's tables.
func tabRow(w io.Writer, cells ...string) {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(termsafe.Field(c))
	}
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}

func healthName(h health) string {
	switch h {
	case healthOK:
		return "ok"
	case healthWarn:
		return "lagging"
	case healthBad:
		return "down"
	}
	return "unknown"
}

// Snapshot is the JSON form of `rctl top --once -o json`.
type Snapshot struct {
	Connected string             `json:"connected"`
	Status    *rpc.StatusReply   `json:"status"`
	Members   *rpc.MembersReply  `json:"members"`
	Nodes     []rpc.NodeInfo     `json:"nodes"`
	Tasks     *rpc.TaskListReply `json:"tasks"`
	Errors    map[string]string  `json:"errors,omitempty"`
	Stale     []string           `json:"stale,omitempty"`
}
