package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

// wideWidth is the width from which servers and nodes sit side by side.
const wideWidth = 120

// layout is how the main view divides the screen; Update uses it to keep
// cursors visible, View to draw.
type layout struct {
	wide   bool
	rows   [numPanels]int // visible list rows per panel
	bodyH  int
	leftW  int // wide: servers' width; nodes get the rest minus a gap
	banner int // banner lines shown
}

func (m *Model) size() (int, int) {
	w, h := m.width, m.height
	if w <= 0 {
		w = 80
	}
	if h <= 0 {
		h = 24
	}
	return w, h
}

func (m *Model) layout() layout {
	w, h := m.size()
	var l layout
	l.banner = min(len(m.banners()), 2)
	if h >= 30 {
		l.banner = min(len(m.banners()), 3)
	}
	l.bodyH = max(h-2-l.banner-1, 0)
	want := func(n int) int { return max(n, 1) }
	s := 1
	if m.members != nil {
		s = want(len(m.members.Members))
	}
	n, t, e := want(len(m.nodes)), want(len(m.visibleTasks())), want(len(m.events))
	l.wide = w >= wideWidth
	if l.wide {
		l.leftW = w * 55 / 100
		rem := max(l.bodyH-5, 3) // titles: top row 2, tasks 2, events 1
		ev := min(e, clamp(rem/5, 3, 10))
		rem -= ev
		top := min(max(s, n), max(min(max(s, n), 3), rem/2))
		rem -= top
		tk := max(rem, 1)
		if tk > t {
			ev += tk - t // the events log grows into the spare rows
			tk = t
		}
		l.rows = [numPanels]int{top, top, tk, ev}
		return l
	}
	rem := max(l.bodyH-7, 4) // titles: 3 tables with headers, events 1
	ev := min(e, clamp(rem/6, 2, 8))
	rem -= ev
	sv := min(s, max(min(s, 2), rem-4))
	rem -= sv
	nd := min(n, max(rem/2, rem-t))
	nd = max(nd, 1)
	tk := max(rem-nd, 1)
	if tk > t {
		ev += tk - t
		tk = t
	}
	l.rows = [numPanels]int{sv, nd, tk, ev}
	return l
}

// View renders the whole screen: exactly height lines, none wider than width.
func (m *Model) View() string {
	if m.quitting {
		return ""
	}
	w, h := m.size()
	lay := m.layout()
	lines := m.headerLines(w)
	bs := m.banners()
	for i := 0; i < lay.banner; i++ {
		b := bs[i]
		text := b.text
		if i == lay.banner-1 && len(bs) > lay.banner {
			text = fmt.Sprintf("(+%d more) %s", len(bs)-lay.banner, text)
		}
		st := m.st.bannerWarn
		if b.level == levelBad {
			st = m.st.bannerBad
		}
		lines = append(lines, st.Render(fit(" "+text, w)))
	}
	var body []string
	switch m.mode {
	case modeHelp:
		body = scrollLines(m.helpLines(), m.helpOff, lay.bodyH)
	case modeDetail:
		body = scrollLines(m.detailLines(w), m.detailOff, lay.bodyH)
	default:
		body = m.mainLines(w, lay)
	}
	for len(body) < lay.bodyH {
		body = append(body, "")
	}
	lines = append(lines, body[:lay.bodyH]...)
	lines = append(lines, m.footer(w))
	for i, l := range lines {
		lines[i] = fit(l, w)
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

func scrollLines(all []string, off, h int) []string {
	off = clamp(off, 0, max(len(all)-h, 0))
	return all[off:min(off+h, len(all))]
}

// Header

func (m *Model) headerLines(w int) []string {
	// The connected server's id and address, its state, the leader's id
	// and cloud come from servers: escaped before they are styled.
	connID, connAddr := termsafe.Field(m.connID), termsafe.Field(m.connAddr)
	left := m.st.title.Render("rctl top")
	switch {
	case m.lost:
		left += "  " + m.st.bad.Render("NOT CONNECTED") + m.st.dim.Render(" (last: "+serverName(connID, connAddr)+")")
	case m.connAddr == "":
		left += m.st.dim.Render("  connecting to " + termsafe.Field(strings.Join(m.seeds, ", ")) + "…")
	default:
		state := ""
		if m.status != nil && m.statusAddr == m.connAddr {
			state = ", " + termsafe.Field(m.status.State)
		}
		left += "  connected to " + m.st.bold.Render(orDash(connID)) + m.st.dim.Render(" "+connAddr+state)
	}
	clock := ""
	if !m.now.IsZero() {
		clock = m.now.In(m.loc).Format("15:04:05")
	}
	pad := w - ansi.StringWidth(left) - ansi.StringWidth(clock)
	line1 := left
	if pad >= 1 {
		line1 += strings.Repeat(" ", pad) + clock
	}

	if m.status == nil {
		return []string{line1, m.st.dim.Render("waiting for the first answer…")}
	}
	st := m.status
	var b strings.Builder
	b.WriteString("leader ")
	changed := ""
	if st.LastLeaderChangeMS > 0 {
		changed = age(m.now.Sub(time.UnixMilli(st.LastLeaderChangeMS)))
	}
	if st.LeaderID == "" {
		b.WriteString(m.st.bad.Render("NONE"))
		if changed != "" {
			b.WriteString(" (lost " + changed + " ago)")
		}
	} else {
		b.WriteString(m.st.leader.Render(termsafe.Field(st.LeaderID)))
		cloud, region := "", ""
		if lm := m.leaderMember(); lm != nil {
			cloud, region = lm.Cloud, lm.Region
		} else if st.LeaderID == st.ID {
			cloud, region = st.Cloud, st.Region
		}
		if cr := cloudRegion(cloud, region); cr != "-" {
			b.WriteString(" " + termsafe.Field(cr))
		}
		if changed != "" {
			b.WriteString(" for " + changed)
		}
	}
	fmt.Fprintf(&b, "  term %d", st.Term)
	if hf := m.healthFigures(); hf != "" {
		b.WriteString("  " + hf)
	}
	fmt.Fprintf(&b, "  commit %d  applied %d", st.CommitIndex, st.AppliedIndex)
	return []string{line1, b.String()}
}

func cloudRegion(cloud, region string) string {
	switch {
	case cloud == "" && region == "":
		return "-"
	case region == "":
		return cloud
	case cloud == "":
		return "-/" + region
	}
	return cloud + "/" + region
}

// Panels

func (m *Model) panelTitle(p panel, w int, count string, extra string) string {
	name := panelNames[p]
	if count != "" {
		name += " " + count
	}
	var t string
	if m.focus == p && m.mode == modeMain {
		t = m.st.panelFocus.Render("[" + name + "]")
	} else {
		t = m.st.panel.Render(" " + name + " ")
	}
	if extra != "" {
		t += " " + extra
	}
	n := w - ansi.StringWidth(t) - 1
	if n > 0 {
		t += " " + m.st.dim.Render(strings.Repeat("─", n))
	}
	return fit(t, w)
}

func (m *Model) mainLines(w int, lay layout) []string {
	if lay.wide {
		left := m.serversPanel(lay.leftW, lay.rows[panelServers])
		right := m.nodesPanel(w-lay.leftW-1, lay.rows[panelNodes])
		var out []string
		for i := 0; i < max(len(left), len(right)); i++ {
			l, r := "", ""
			if i < len(left) {
				l = left[i]
			}
			if i < len(right) {
				r = right[i]
			}
			out = append(out, fit(l, lay.leftW)+" "+r)
		}
		out = append(out, m.tasksPanel(w, lay.rows[panelTasks])...)
		return append(out, m.eventsPanel(w, lay.rows[panelEvents])...)
	}
	out := m.serversPanel(w, lay.rows[panelServers])
	out = append(out, m.nodesPanel(w, lay.rows[panelNodes])...)
	out = append(out, m.tasksPanel(w, lay.rows[panelTasks])...)
	return append(out, m.eventsPanel(w, lay.rows[panelEvents])...)
}

// padRows pads a panel to its title, header and h rows.
func padRows(lines []string, h int) []string {
	for len(lines) < h+2 {
		lines = append(lines, "")
	}
	return lines
}

// dataNote describes how fresh a panel's data is when the last read failed,
// was served stale, or is older than oldAfter (0: never old). The note
// quotes an error string and the server's id: it is escaped, then styled.
func (m *Model) dataNote(err string, stale bool, at time.Time, oldAfter time.Duration) string {
	var text string
	style := m.st.warn
	switch {
	case err != "" && at.IsZero():
		text, style = "unavailable: "+firstLine(err), m.st.bad
	case err != "" && stale:
		text = "stale copy of " + orDash(m.connID) + " (leader unreachable: " + firstLine(err) + ")"
	case err != "":
		text, style = "data from "+age(m.now.Sub(at))+" ago: "+firstLine(err), m.st.bad
	case stale:
		text = "stale copy of " + orDash(m.connID)
	case oldAfter > 0 && !at.IsZero() && m.now.Sub(at) > oldAfter:
		text = "as of " + age(m.now.Sub(at)) + " ago"
	default:
		return ""
	}
	return style.Render(termsafe.Field(text))
}

// nodesOld: node data older than this is marked in the panel's title
// (Node.List answers at least every 2 s).
const nodesOld = 5 * time.Second

var serverCols = []column{
	{title: "ID", max: 16},
	{title: "CLOUD/REGION", max: 20, drop: 2},
	{title: "ROLE"},
	{title: "VOTE", drop: 3},
	{title: "CONTACT", right: true},
	{title: "LAG", right: true},
	{title: "RTT", right: true, drop: 4},
	{title: "TERM", right: true, drop: 5},
	{title: "ADDRESS", drop: 6},
}

// health classifies a server as the leader sees it.
type health int

const (
	healthUnknown health = iota
	healthOK
	healthWarn
	healthBad
)

func (m *Model) serverHealth(s rpc.Member) health {
	contact := time.Duration(s.LastContactMS) * time.Millisecond
	switch {
	case isBadServerState(s.State):
		return healthBad
	case s.State == "unknown" || s.State == "":
		return healthUnknown
	case s.State == "leader":
		return healthOK
	case s.LastContactMS < 0:
		return healthWarn
	case contact > contactBad:
		return healthBad
	case contact > contactWarn || s.Lag >= lagWarn:
		return healthWarn
	}
	return healthOK
}

func (m *Model) serverStyle(s rpc.Member) lipgloss.Style {
	switch m.serverHealth(s) {
	case healthOK:
		if s.State == "leader" {
			return m.st.leader
		}
		return m.st.ok
	case healthWarn:
		return m.st.warn
	case healthBad:
		return m.st.bad
	}
	return m.st.dim
}

func (m *Model) serversPanel(w, h int) []string {
	var rows [][]cell
	ok := 0
	if m.members != nil {
		for _, s := range m.members.Members {
			st := m.serverStyle(s)
			if m.serverHealth(s) == healthOK {
				ok++
			}
			id := s.ID
			if s.Address == m.connAddr || s.ID == m.connID {
				id += "*"
			}
			role := s.State
			if role == "" {
				role = "unknown"
			}
			contact, lag := msAge(s.LastContactMS), "-"
			if s.Lag >= 0 {
				lag = fmt.Sprint(s.Lag)
			}
			if s.State == "leader" {
				contact = "-"
			}
			term := "-"
			if s.Term > 0 {
				term = fmt.Sprint(s.Term)
			}
			rows = append(rows, []cell{styled(id, st), txt(cloudRegion(s.Cloud, s.Region)), styled(role, st),
				txt(s.Suffrage), styled(contact, st), styled(lag, st), txt(rttText(s)), txt(term), txt(s.Address)})
		}
	}
	count, note := "", m.dataNote(m.membersErr, m.membersStale, m.membersAt, m.membersOld)
	if m.members != nil {
		count = fmt.Sprintf("%d/%d ok", ok, len(m.members.Members))
		if m.membersStale {
			count = fmt.Sprint(len(m.members.Members))
		}
	}
	out := []string{m.panelTitle(panelServers, w, count, note)}
	if len(rows) == 0 {
		out = append(out, m.st.dim.Render("  waiting for Status.Members…"))
		return padRows(out, h)
	}
	out = append(out, renderTable(m.st, serverCols, rows, w, m.off[panelServers], h, m.cur[panelServers], m.focus == panelServers && m.mode == modeMain)...)
	return padRows(out, h)
}

var nodeCols = []column{
	{title: "ID", max: 24},
	{title: "STATUS"},
	{title: "HEARTBEAT", right: true},
	{title: "TASKS", right: true},
	{title: "CLOUD/REGION", max: 20, drop: 2},
	{title: "ADDRESS", drop: 3},
}

func (m *Model) nodeStyle(s fsm.NodeStatus) lipgloss.Style {
	switch s {
	case fsm.NodeHealthy:
		return m.st.ok
	case fsm.NodeDegraded:
		return m.st.warn
	}
	return m.st.bad
}

func (m *Model) nodesPanel(w, h int) []string {
	v := m.nodeView()
	rows := v.rows
	byStatus := map[fsm.NodeStatus]int{}
	for _, n := range m.nodes {
		byStatus[n.Status]++
	}
	var parts []string
	for _, s := range []fsm.NodeStatus{fsm.NodeHealthy, fsm.NodeDegraded, fsm.NodeUnreachable} {
		if byStatus[s] > 0 {
			parts = append(parts, m.nodeStyle(s).Render(fmt.Sprintf("%d %s", byStatus[s], s)))
		}
	}
	extra := strings.Join(parts, " ")
	if extra != "" {
		extra += " "
	}
	extra += m.st.dim.Render("sort:" + nodeSortNames[m.sortBy])
	if note := m.dataNote(m.nodesErr, m.nodesStale, m.nodesAt, nodesOld); note != "" {
		extra = note
	}
	out := []string{m.panelTitle(panelNodes, w, fmt.Sprint(len(m.nodes)), extra)}
	if len(rows) == 0 {
		msg := "  no nodes registered"
		if m.nodesAt.IsZero() {
			msg = "  waiting for Node.List…"
		}
		out = append(out, m.st.dim.Render(msg))
		return padRows(out, h)
	}
	out = append(out, renderTableNat(m.st, nodeCols, rows, v.nat, w, m.off[panelNodes], h, m.cur[panelNodes], m.focus == panelNodes && m.mode == modeMain)...)
	return padRows(out, h)
}

var taskCols = []column{
	{title: "ID", max: 28},
	{title: "TYPE", max: 12, drop: 3},
	{title: "STATUS"},
	{title: "NODE", max: 16, drop: 2},
	{title: "ATT", right: true, drop: 4},
	{title: "AGE", right: true},
	{title: "INFO", flex: true, min: 10, drop: 1},
}

var taskStatuses = []fsm.TaskStatus{fsm.TaskPending, fsm.TaskAssigned, fsm.TaskRunning, fsm.TaskComplete, fsm.TaskFailed, fsm.TaskCancelled}

func (m *Model) taskStyle(s fsm.TaskStatus) lipgloss.Style {
	switch s {
	case fsm.TaskComplete:
		return m.st.ok
	case fsm.TaskFailed:
		return m.st.bad
	case fsm.TaskRunning, fsm.TaskAssigned:
		return m.st.info
	case fsm.TaskCancelled:
		return m.st.dim
	}
	return m.st.plain
}

// taskInfo is the one-line summary of what last happened to a task.
func taskInfo(t *fsm.Task) string {
	if t.Result != nil && t.Result.Error != "" {
		return firstLine(t.Result.Error)
	}
	if n := len(t.History); n > 0 && t.History[n-1].Message != "" {
		return firstLine(t.History[n-1].Message)
	}
	if t.Result != nil {
		return fmt.Sprintf("exit %d", t.Result.ExitCode)
	}
	return ""
}

func (m *Model) tasksPanel(w, h int) []string {
	vis := m.visibleTasks()
	rows := make([][]cell, 0, len(vis))
	for _, t := range vis {
		st := m.taskStyle(t.Status)
		rows = append(rows, []cell{txt(t.ID), txt(t.Type), styled(string(t.Status), st), txt(orDash(t.NodeID)),
			txt(fmt.Sprintf("%d/%d", t.Attempts, maxAttempts(t))), txt(nsAge(m.now, t.UpdatedAt)), styled(taskInfo(t), m.st.dim)})
	}
	var parts []string
	total := 0
	for _, s := range taskStatuses {
		n := m.counts[string(s)]
		total += n
		style := m.st.dim
		if n > 0 {
			style = m.taskStyle(s)
		}
		parts = append(parts, style.Render(fmt.Sprintf("%s %d", s, n)))
	}
	extra := strings.Join(parts, " ")
	if note := m.dataNote(m.tasksErr, m.tasksStale, m.tasksAt, 0); note != "" {
		extra = note
	}
	count := fmt.Sprint(total)
	if m.filter != "" || m.tasksMore {
		count = m.shownOf(len(vis))
	}
	out := []string{m.panelTitle(panelTasks, w, count, extra)}
	if len(rows) == 0 {
		msg := "  no tasks"
		switch {
		case m.tasksAt.IsZero():
			msg = "  waiting for Task.List…"
		case m.filter != "":
			msg = "  no task matches the filter " + termsafe.Field(m.filter)
		}
		out = append(out, m.st.dim.Render(msg))
		return padRows(out, h)
	}
	out = append(out, renderTable(m.st, taskCols, rows, w, m.off[panelTasks], h, m.cur[panelTasks], m.focus == panelTasks && m.mode == modeMain)...)
	return padRows(out, h)
}

func (m *Model) eventsPanel(w, h int) []string {
	out := []string{m.panelTitle(panelEvents, w, fmt.Sprint(len(m.events)), m.st.dim.Render("newest first"))}
	if len(m.events) == 0 {
		return append(out, m.st.dim.Render("  no events yet"))
	}
	focused := m.focus == panelEvents && m.mode == modeMain
	off := m.off[panelEvents]
	for i := off; i < min(off+h, len(m.events)); i++ {
		e := m.events[len(m.events)-1-i]
		marker := "  "
		if focused && i == m.cur[panelEvents] {
			marker = "> "
		}
		line := fit(marker+e.At.In(m.loc).Format("15:04:05")+"  "+e.Text, w)
		if focused && i == m.cur[panelEvents] {
			line = m.st.selected.Render(line)
		} else {
			line = m.st.forLevel(e.Level).Render(line)
		}
		out = append(out, line)
	}
	return out
}

// Detail view

// detailLines renders the task detail view. Nearly every value in it comes
// from the task's submitter or its node: kv and kvStyled escape the value
// (termsafe.Field) before styling it, payload values and the task's output
// are escaped line by line (termsafe.Block), and the history goes through
// the table's cells.
func (m *Model) detailLines(w int) []string {
	t := m.findTask(m.detailID)
	id := termsafe.Field(m.detailID)
	title := m.st.panelFocus.Render("[Task " + id + "]")
	if t == nil {
		return []string{title, "", m.st.warn.Render("  task " + id + " is no longer listed (removed, or the list has not loaded)")}
	}
	label := func(k string) string { return "  " + m.st.dim.Render(fmt.Sprintf("%-10s", k)) + " " }
	kv := func(k, v string) string { return label(k) + termsafe.Field(v) }
	kvStyled := func(k, v string, st lipgloss.Style) string { return label(k) + st.Render(termsafe.Field(v)) }
	out := []string{title + " " + m.st.dim.Render(strings.Repeat("─", max(w-ansi.StringWidth(title)-1, 0))),
		kv("id", t.ID),
		kv("type", t.Type),
		kvStyled("status", string(t.Status), m.taskStyle(t.Status)),
		kv("node", orDash(t.NodeID)),
		kv("attempts", fmt.Sprintf("%d of %d", t.Attempts, maxAttempts(t))),
		kv("cloud", orDefault(t.Cloud, "any")),
		kv("created", fmt.Sprintf("%s ago (index %d)", nsAge(m.now, t.CreatedAt), t.CreateIndex)),
		kv("updated", fmt.Sprintf("%s ago (index %d)", nsAge(m.now, t.UpdatedAt), t.ModifyIndex)),
		"",
		m.st.bold.Render(fmt.Sprintf("Payload (%d)", t.Payload.Len())),
	}
	keys := t.Payload.Keys() // sorted
	if len(keys) == 0 {
		out = append(out, m.st.dim.Render("  (empty)"))
	}
	for _, k := range keys {
		v, _ := t.Payload.Get(k)
		k = termsafe.Field(k)
		vl := strings.Split(termsafe.Block(v), "\n")
		out = append(out, "  "+k+" = "+vl[0])
		for _, l := range vl[1:] {
			out = append(out, "  "+strings.Repeat(" ", ansi.StringWidth(k)+3)+l)
		}
	}
	out = append(out, "", m.st.bold.Render("Result"))
	if t.Result == nil {
		out = append(out, m.st.dim.Render("  (none yet)"))
	} else {
		out = append(out, kv("exit code", fmt.Sprint(t.Result.ExitCode)))
		if t.Result.Error != "" {
			out = append(out, kvStyled("error", firstLine(t.Result.Error), m.st.bad))
		}
		if t.Result.Output != "" {
			out = append(out, kv("output", ""))
			for _, l := range strings.Split(termsafe.Block(strings.TrimRight(t.Result.Output, "\n")), "\n") {
				out = append(out, "    "+l)
			}
		}
	}
	out = append(out, "", m.st.bold.Render(fmt.Sprintf("History (%d, oldest first)", len(t.History))))
	rows := make([][]cell, 0, len(t.History))
	for _, e := range t.History {
		rows = append(rows, []cell{txt(time.Unix(0, e.Time).In(m.loc).Format("15:04:05.000")), txt(fmt.Sprint(e.Index)),
			styled(string(e.Status), m.taskStyle(e.Status)), txt(orDash(e.NodeID)), txt(e.Message)})
	}
	cols := []column{{title: "TIME"}, {title: "INDEX", right: true}, {title: "STATUS"}, {title: "NODE"}, {title: "MESSAGE", flex: true, min: 8}}
	out = append(out, renderTable(m.st, cols, rows, w, 0, len(rows), -1, false)...)
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Help view

func (m *Model) helpLines() []string {
	k := func(key, what string) string { return "  " + m.st.key.Render(fmt.Sprintf("%-17s", key)) + what }
	return []string{
		m.st.panelFocus.Render("[Help]"),
		"",
		m.st.bold.Render("Keys"),
		k("tab, →, l", "next panel (servers, nodes, tasks, events)"),
		k("shift+tab, ←, h", "previous panel"),
		k("j, ↓ / k, ↑", "move the cursor (scroll in detail and help)"),
		k("pgdn / pgup", "move a page; g / G: first / last"),
		k("enter", "tasks: open the task's detail (payload, result, history);"),
		k("", "nodes: show that node's tasks (filter node:ID)"),
		k("esc", "back; in the main view, clear the filter"),
		k("/", "filter tasks: words match id, type, node, status;"),
		k("", "status:failed,running  node:ID  type:T narrow further"),
		k("f", "cycle the status filter (all, pending, …, cancelled)"),
		k("s", "cycle the nodes' sort: status (worst first), id, heartbeat…"),
		k("?", "this help"),
		k("q, ctrl+c", "quit"),
		"",
		m.st.bold.Render("Reading the view"),
		"  The header is the connected server's view: leader, term, commit and applied",
		"  index, time since it saw the leader change. * marks the connected server.",
		"  Servers: state, last contact and lag as the leader probes them (--refresh).",
		"  " + m.st.leader.Render("leader") + "  " + m.st.ok.Render("healthy") + "  " +
			m.st.warn.Render("lagging / slow contact") + "  " + m.st.bad.Render("unreachable / candidate") + "  " + m.st.dim.Render("unknown"),
		"  Nodes: status decided by the leader from heartbeats; TASKS is active/capacity.",
		"  Updates arrive by blocking queries; when the connected server fails the view",
		"  moves to another known server and says so in a FAILOVER banner.",
	}
}

// Footer

func (m *Model) footer(w int) string {
	k := m.st.key.Render
	d := m.st.dim.Render
	// The filter may hold a node's id (enter on the nodes panel) or
	// pasted text: escaped like server data.
	switch {
	case m.editing:
		return "/" + termsafe.Field(m.filter) + "█" + d("  words, status:a,b node:ID type:T · enter keep · esc cancel")
	case m.mode == modeHelp:
		return k("esc") + d(" back  ") + k("j/k") + d(" scroll  ") + k("q") + d(" quit")
	case m.mode == modeDetail:
		return k("esc") + d(" back  ") + k("j/k") + d(" scroll  ") + k("q") + d(" quit")
	case m.filter != "":
		return m.st.warn.Render("filter: "+termsafe.Field(m.filter)) + d(fmt.Sprintf(" (%s tasks)  ", strings.Replace(m.shownOf(len(m.visibleTasks())), "/", " of ", 1))) +
			k("/") + d(" edit  ") + k("esc") + d(" clear  ") + k("?") + d(" help  ") + k("q") + d(" quit")
	}
	return k("tab") + d(" panel  ") + k("j/k") + d(" move  ") + k("enter") + d(" detail  ") + k("/") + d(" filter  ") +
		k("f") + d(" status  ") + k("s") + d(" sort  ") + k("?") + d(" help  ") + k("q") + d(" quit")
}
