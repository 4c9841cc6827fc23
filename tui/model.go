package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/humanize"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

// Options configure a Model.
type Options struct {
	// Seeds are the --addr addresses, named when no server answers.
	Seeds []string
	// Renderer renders the styles; nil uses lipgloss's default renderer
	// (colour as the terminal supports). Tests pass one with the Ascii
	// profile so views carry no escape codes.
	Renderer *lipgloss.Renderer
	// Location is the zone of clock times in the header and events; nil
	// means time.Local.
	Location *time.Location
	// Now is the model's initial clock; zero means the first message's time.
	Now time.Time
	// TickEvery is how often the clock advances in a live program (ages
	// and "leader for" in the header); 0 means 1 s.
	TickEvery time.Duration
	// MembersEvery is the watcher's Status.Members period (0: 1 s); the
	// servers panel is marked old after a few missed refreshes.
	MembersEvery time.Duration
	// OnFilter, if set, is told the tasks filter whenever it changes (run
	// as a tea.Cmd, off the update): the live program passes
	// (*Watcher).SetTaskFilter, so the server filters the page the panel
	// asks for.
	OnFilter func(filter string)
}

// Timing constants of the view.
const (
	// noticeFor is how long a failover notice stays in the banner area.
	noticeFor = 30 * time.Second
	// maxEvents bounds the rolling events log.
	maxEvents = 200
	// contactWarn: a follower that has not heard from the leader for longer
	// is shown as lagging; contactBad: as cut off (it should have started
	// an election by then with either timing profile).
	contactWarn = 1 * time.Second
	contactBad  = 3 * time.Second
	// lagWarn: a server this many entries behind the leader is lagging.
	lagWarn = 100
	// onceTasks bounds the task list of the plain snapshot.
	onceTasks = 50
)

type panel int

const (
	panelServers panel = iota
	panelNodes
	panelTasks
	panelEvents
	numPanels
)

var panelNames = [numPanels]string{"Servers", "Nodes", "Tasks", "Events"}

type mode int

const (
	modeMain mode = iota
	modeDetail
	modeHelp
)

type level int

const (
	levelInfo level = iota
	levelWarn
	levelBad
)

// Event is one line of the events log.
type Event struct {
	At    time.Time
	Level level
	Text  string // escaped (termsafe.Field) by addEvent
}

// nodeSort is the order of the nodes panel; `s` cycles through them.
type nodeSort int

const (
	sortNodeStatus nodeSort = iota // worst first: what an incident needs
	sortNodeID
	sortNodeHeartbeat
	sortNodeTasks
	sortNodeCloud
	numNodeSorts
)

var nodeSortNames = [numNodeSorts]string{"status", "id", "heartbeat", "tasks", "cloud"}

type taskSeen struct {
	status   fsm.TaskStatus
	attempts int
}

// Model is the state of `rctl top`. It is a tea.Model; all data arrives as
// messages (see msg.go), so it can be driven without a network.
type Model struct {
	st         styles
	loc        *time.Location
	seeds      []string
	tick       time.Duration
	membersOld time.Duration

	now           time.Time
	width, height int

	// connection
	connAddr, connID string
	notice           string // failover notice, shown until noticeAt+noticeFor
	noticeAt         time.Time
	lost             bool // no server answers
	lostSince        time.Time
	lostTried        []string
	lostErr          string

	// data, each with the time it arrived
	status     *rpc.StatusReply
	statusAt   time.Time
	statusAddr string

	members      *rpc.MembersReply
	membersAt    time.Time
	membersStale bool
	membersErr   string

	nodes      []rpc.NodeInfo
	nodesCache *nodesView // derived from nodes; nil: to rebuild
	nodesAt    time.Time
	nodesStale bool
	nodesErr   string

	// tasks is one bounded page: the newest tasks matching tasksFilter
	// (the view's filter when it was asked for); counts cover the whole
	// manifest, and tasksMore says the page did not reach the oldest.
	tasks       []*fsm.Task // newest first
	counts      map[string]int
	tasksAt     time.Time
	tasksStale  bool
	tasksErr    string
	tasksMore   bool
	tasksFilter string
	onFilter    func(string)
	askedFilter string // the filter last reported to onFilter

	// baselines for the events diff
	leaderKnown  bool // a status has been seen
	prevLeader   string
	prevTerm     uint64
	leaderLostAt time.Time
	memberStates map[string]string
	nodeStatus   map[string]fsm.NodeStatus
	taskSeen     map[string]taskSeen
	events       []Event // oldest first

	// ui
	mode       mode
	focus      panel
	sel        [numPanels]string // selected id in servers, nodes, tasks
	cur        [numPanels]int
	off        [numPanels]int
	sortBy     nodeSort
	filter     string
	editing    bool
	editPrev   string
	detailID   string
	detailOff  int
	helpOff    int
	quitting   bool
	lastLayout layout
}

// New returns a model with no data yet.
func New(o Options) *Model {
	r := o.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	tick := o.TickEvery
	if tick <= 0 {
		tick = time.Second
	}
	every := o.MembersEvery
	if every <= 0 {
		every = time.Second
	}
	return &Model{st: newStyles(r), loc: loc, seeds: o.Seeds, now: o.Now, tick: tick, width: 80, height: 24,
		membersOld: max(3*time.Second, 2*every+time.Second), onFilter: o.OnFilter}
}

// Init starts the clock.
func (m *Model) Init() tea.Cmd { return m.tickCmd() }

func (m *Model) tickCmd() tea.Cmd {
	return tea.Tick(m.tick, func(t time.Time) tea.Msg { return TickMsg(t) })
}

// Update applies one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		cmd := m.handleKey(msg)
		m.fixScroll()
		if m.filter != m.askedFilter && m.onFilter != nil {
			m.askedFilter = m.filter
			f, report := m.filter, m.onFilter
			cmd = tea.Batch(cmd, func() tea.Msg { report(f); return nil })
		}
		return m, cmd
	case TickMsg:
		m.advance(time.Time(msg))
		return m, m.tickCmd()
	case StatusMsg:
		m.advance(msg.At)
		m.onStatus(msg)
	case MembersMsg:
		m.advance(msg.At)
		m.onMembers(msg)
	case NodesMsg:
		m.advance(msg.At)
		m.onNodes(msg)
	case TasksMsg:
		m.advance(msg.At)
		m.onTasks(msg)
	case ConnMsg:
		m.advance(msg.At)
		m.onConn(msg)
	case ConnLostMsg:
		m.advance(msg.At)
		m.onConnLost(msg)
	}
	m.fixScroll()
	return m, nil
}

func (m *Model) advance(t time.Time) {
	if t.After(m.now) {
		m.now = t
	}
}

// addEvent appends to the events log. The arguments hold server-provided
// ids, states and error strings, so the formatted text is escaped here,
// once, for both the live view and Plain (the formats themselves hold no
// control characters).
func (m *Model) addEvent(l level, format string, args ...any) {
	text := termsafe.Field(fmt.Sprintf(format, args...))
	m.events = append(m.events, Event{At: m.now, Level: l, Text: text})
	if len(m.events) > maxEvents {
		m.events = append([]Event(nil), m.events[len(m.events)-maxEvents:]...)
	}
}

func (m *Model) onConn(msg ConnMsg) {
	if msg.PrevAddr != "" && msg.PrevAddr != msg.Addr {
		m.notice = fmt.Sprintf("now on %s; left %s: %s", serverName(msg.ID, msg.Addr),
			serverName(msg.PrevID, msg.PrevAddr), firstLine(msg.Reason))
		m.noticeAt = m.now
		m.addEvent(levelWarn, "moved to %s from %s: %s", serverName(msg.ID, msg.Addr),
			serverName(msg.PrevID, msg.PrevAddr), firstLine(msg.Reason))
	} else if m.lost {
		m.addEvent(levelInfo, "reconnected to %s after %s", serverName(msg.ID, msg.Addr), age(m.now.Sub(m.lostSince)))
	}
	if m.lost && msg.PrevAddr == "" {
		m.notice = fmt.Sprintf("reconnected to %s after %s without any server", serverName(msg.ID, msg.Addr), age(m.now.Sub(m.lostSince)))
		m.noticeAt = m.now
	}
	if msg.Addr != m.connAddr {
		// Read errors were the old server's; new answers will say.
		m.membersErr, m.nodesErr, m.tasksErr = "", "", ""
	}
	m.connAddr, m.connID = msg.Addr, msg.ID
	m.lost = false
}

// fromOldServer reports a failed read sent by a server the view has left.
func (m *Model) fromOldServer(addr string, failed bool) bool {
	return failed && m.connAddr != "" && addr != m.connAddr
}

func (m *Model) onConnLost(msg ConnLostMsg) {
	if !m.lost {
		m.lost = true
		m.lostSince = m.now
		m.addEvent(levelBad, "no server answers (tried %s): %s", strings.Join(msg.Tried, ", "), firstLine(msg.Err))
	}
	m.lostTried, m.lostErr = msg.Tried, msg.Err
}

func (m *Model) onStatus(msg StatusMsg) {
	st := msg.Status
	m.status, m.statusAt, m.statusAddr = &st, m.now, msg.Addr
	if m.connAddr == "" {
		m.connAddr = msg.Addr
	}
	if msg.Addr == m.connAddr {
		m.connID = st.ID
	}
	if !m.leaderKnown {
		m.leaderKnown = true
		m.prevLeader, m.prevTerm = st.LeaderID, st.Term
		if st.LeaderID == "" {
			m.leaderLostAt = m.now
			m.addEvent(levelBad, "%s knows no leader (term %d)", orDash(st.ID), st.Term)
		}
		return
	}
	switch {
	case st.LeaderID == m.prevLeader:
		if st.Term != m.prevTerm && st.LeaderID != "" {
			m.addEvent(levelWarn, "term %d → %d, leader still %s", m.prevTerm, st.Term, st.LeaderID)
		}
	case st.LeaderID == "":
		m.leaderLostAt = m.now
		m.addEvent(levelBad, "leader %s lost (term %d): no leader", m.prevLeader, st.Term)
	case m.prevLeader == "":
		if !m.leaderLostAt.IsZero() {
			m.addEvent(levelWarn, "new leader %s (term %d) after %s without one", st.LeaderID, st.Term, age(m.now.Sub(m.leaderLostAt)))
		} else {
			m.addEvent(levelWarn, "new leader %s (term %d)", st.LeaderID, st.Term)
		}
		m.leaderLostAt = time.Time{}
	default:
		m.addEvent(levelWarn, "leader %s → %s (term %d)", m.prevLeader, st.LeaderID, st.Term)
	}
	if st.LeaderID != "" {
		m.leaderLostAt = time.Time{}
	}
	m.prevLeader, m.prevTerm = st.LeaderID, st.Term
}

func (m *Model) onMembers(msg MembersMsg) {
	if m.fromOldServer(msg.Addr, msg.Reply == nil) {
		return
	}
	m.membersErr = msg.Err
	if msg.Reply == nil {
		return
	}
	m.members, m.membersAt, m.membersStale = msg.Reply, m.now, msg.Stale
	if msg.Stale {
		return // a stale list has no probes: states are "unknown", not news
	}
	states := map[string]string{}
	for _, s := range msg.Reply.Members {
		states[s.ID] = s.State
	}
	if m.memberStates != nil {
		for _, s := range msg.Reply.Members {
			prev, ok := m.memberStates[s.ID]
			switch {
			case !ok:
				m.addEvent(levelInfo, "server %s joined (%s, %s)", s.ID, s.Suffrage, s.Address)
			case prev != s.State && (isBadServerState(prev) || isBadServerState(s.State)):
				l := levelInfo
				if isBadServerState(s.State) {
					l = levelBad
				}
				m.addEvent(l, "server %s %s → %s", s.ID, prev, s.State)
			}
		}
		for id := range m.memberStates {
			if _, ok := states[id]; !ok {
				m.addEvent(levelWarn, "server %s left the configuration", id)
			}
		}
	}
	m.memberStates = states
}

func isBadServerState(s string) bool {
	return s == "unreachable" || s == "candidate" || s == "shutdown"
}

func (m *Model) onNodes(msg NodesMsg) {
	if m.fromOldServer(msg.Addr, msg.Reply == nil) {
		return
	}
	m.nodesErr = msg.Err
	if msg.Reply == nil {
		return
	}
	m.nodes, m.nodesAt, m.nodesStale = msg.Reply.Nodes, m.now, msg.Stale
	m.nodesCache = nil
	now := map[string]fsm.NodeStatus{}
	for _, n := range msg.Reply.Nodes {
		now[n.ID] = n.Status
	}
	if m.nodeStatus != nil {
		for _, n := range msg.Reply.Nodes {
			prev, ok := m.nodeStatus[n.ID]
			switch {
			case !ok:
				m.addEvent(levelInfo, "node %s registered (%s)", n.ID, n.Status)
			case prev != n.Status:
				m.addEvent(nodeLevel(n.Status), "node %s %s → %s", n.ID, prev, n.Status)
			}
		}
		var gone []string
		for id := range m.nodeStatus {
			if _, ok := now[id]; !ok {
				gone = append(gone, id)
			}
		}
		sort.Strings(gone)
		for _, id := range gone {
			m.addEvent(levelInfo, "node %s deregistered", id)
		}
	}
	m.nodeStatus = now
}

func nodeLevel(s fsm.NodeStatus) level {
	switch s {
	case fsm.NodeHealthy:
		return levelInfo
	case fsm.NodeDegraded:
		return levelWarn
	}
	return levelBad
}

func (m *Model) onTasks(msg TasksMsg) {
	if m.fromOldServer(msg.Addr, msg.Reply == nil) {
		return
	}
	m.tasksErr = msg.Err
	if msg.Reply == nil {
		return
	}
	ts := append([]*fsm.Task(nil), msg.Reply.Tasks...)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].CreateIndex > ts[j].CreateIndex })
	m.tasks, m.counts, m.tasksAt, m.tasksStale = ts, msg.Reply.Counts, m.now, msg.Stale
	m.tasksMore = msg.Reply.NextCursor != ""
	if msg.Filter != m.tasksFilter {
		// Another selection of tasks: not changes of the tasks listed
		// before. Start the diff over.
		m.tasksFilter, m.taskSeen = msg.Filter, nil
	}
	// The events below compare successive pages, so they cover the tasks
	// the page holds (the newest matching the filter), not the manifest.
	seen := make(map[string]taskSeen, len(ts))
	// Oldest first, so events read in the order things were created.
	for i := len(ts) - 1; i >= 0; i-- {
		t := ts[i]
		seen[t.ID] = taskSeen{status: t.Status, attempts: t.Attempts}
		if m.taskSeen == nil {
			continue
		}
		prev, ok := m.taskSeen[t.ID]
		switch {
		case t.Status == fsm.TaskFailed && (!ok || prev.status != fsm.TaskFailed):
			m.addEvent(levelBad, "task %s failed%s%s", t.ID, onNode(t.NodeID), resultNote(t.Result))
		case ok && t.Status == fsm.TaskPending && t.Attempts > 0 &&
			(prev.status == fsm.TaskAssigned || prev.status == fsm.TaskRunning):
			m.addEvent(levelWarn, "task %s requeued from %s (attempt %d/%d)", t.ID, orDash(t.NodeID), t.Attempts, maxAttempts(t))
		}
	}
	m.taskSeen = seen
}

func onNode(id string) string {
	if id == "" {
		return ""
	}
	return " on " + id
}

func resultNote(r *fsm.Result) string {
	if r == nil {
		return ""
	}
	if r.Error != "" {
		return fmt.Sprintf(" (exit %d: %s)", r.ExitCode, firstLine(r.Error))
	}
	return fmt.Sprintf(" (exit %d)", r.ExitCode)
}

func maxAttempts(t *fsm.Task) int {
	if t.MaxAttempts > 0 {
		return t.MaxAttempts
	}
	return fsm.DefaultMaxAttempts
}

// Derived views of the data.

// leaderMember returns the leader's member entry, if listed.
func (m *Model) leaderMember() *rpc.Member {
	if m.status == nil || m.members == nil {
		return nil
	}
	for i := range m.members.Members {
		if m.members.Members[i].ID == m.status.LeaderID {
			return &m.members.Members[i]
		}
	}
	return nil
}

// nodesView is the nodes panel derived from one Node.List answer in one
// order: sorted once, its ids and table cells made once, not on every key
// press and redraw (10,000 nodes took 70 ms a frame). Nothing in it
// depends on the clock: ages are the answer's.
type nodesView struct {
	sortBy nodeSort
	nodes  []rpc.NodeInfo // sorted
	ids    []string
	rows   [][]cell
	nat    []int // natural column widths of rows (see naturalWidths)
}

// nodeView returns the nodes view, rebuilt after a new answer (onNodes
// drops it) or a change of order.
func (m *Model) nodeView() *nodesView {
	if v := m.nodesCache; v != nil && v.sortBy == m.sortBy {
		return v
	}
	v := &nodesView{sortBy: m.sortBy, nodes: m.sortNodes()}
	v.ids = make([]string, len(v.nodes))
	v.rows = make([][]cell, len(v.nodes))
	for i, n := range v.nodes {
		st := m.nodeStyle(n.Status)
		v.ids[i] = n.ID
		v.rows[i] = []cell{styled(n.ID, st), styled(string(n.Status), st), txt(msAge(n.HeartbeatAgeMS)),
			txt(fmt.Sprintf("%d/%d", n.ActiveTasks, n.Capacity)), txt(cloudRegion(n.Cloud, n.Region)), txt(orDash(n.Address))}
	}
	v.nat = naturalWidths(nodeCols, v.rows)
	m.nodesCache = v
	return v
}

// sortedNodes returns the nodes in the panel's order (shared: read-only).
func (m *Model) sortedNodes() []rpc.NodeInfo { return m.nodeView().nodes }

// sortNodes sorts a copy of the nodes into the panel's order.
func (m *Model) sortNodes() []rpc.NodeInfo {
	ns := append([]rpc.NodeInfo(nil), m.nodes...)
	rank := map[fsm.NodeStatus]int{fsm.NodeUnreachable: 0, fsm.NodeDegraded: 1, fsm.NodeHealthy: 2}
	sort.SliceStable(ns, func(i, j int) bool {
		a, b := ns[i], ns[j]
		switch m.sortBy {
		case sortNodeStatus:
			if rank[a.Status] != rank[b.Status] {
				return rank[a.Status] < rank[b.Status]
			}
		case sortNodeHeartbeat:
			if a.HeartbeatAgeMS != b.HeartbeatAgeMS {
				return a.HeartbeatAgeMS > b.HeartbeatAgeMS
			}
		case sortNodeTasks:
			if a.ActiveTasks != b.ActiveTasks {
				return a.ActiveTasks > b.ActiveTasks
			}
		case sortNodeCloud:
			if a.Cloud+"/"+a.Region != b.Cloud+"/"+b.Region {
				return a.Cloud+"/"+a.Region < b.Cloud+"/"+b.Region
			}
		}
		return a.ID < b.ID
	})
	return ns
}

// taskFilter is the parsed `/` filter: status:a,b (or s:) restricts the
// status, node:ID and type:T match exactly, and other words must all occur
// (case-insensitively) in the task's id, type, node or status.
type taskFilter struct {
	statuses map[fsm.TaskStatus]bool
	node     string
	typ      string
	words    []string
}

func parseFilter(s string) taskFilter {
	var f taskFilter
	for _, tok := range strings.Fields(s) {
		key, val, ok := strings.Cut(tok, ":")
		switch {
		case ok && (key == "status" || key == "s"):
			for _, v := range strings.Split(val, ",") {
				if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
					if f.statuses == nil {
						f.statuses = map[fsm.TaskStatus]bool{}
					}
					f.statuses[fsm.TaskStatus(v)] = true
				}
			}
		case ok && key == "node":
			f.node = val
		case ok && key == "type":
			f.typ = val
		default:
			f.words = append(f.words, strings.ToLower(tok))
		}
	}
	return f
}

func (f taskFilter) empty() bool {
	return f.statuses == nil && f.node == "" && f.typ == "" && len(f.words) == 0
}

func (f taskFilter) match(t *fsm.Task) bool {
	if f.statuses != nil && !f.statuses[t.Status] {
		return false
	}
	if f.node != "" && t.NodeID != f.node {
		return false
	}
	if f.typ != "" && t.Type != f.typ {
		return false
	}
	if len(f.words) > 0 {
		hay := strings.ToLower(t.ID + " " + t.Type + " " + t.NodeID + " " + string(t.Status))
		for _, w := range f.words {
			if !strings.Contains(hay, w) {
				return false
			}
		}
	}
	return true
}

// tasksTotal is the number of tasks the filter selects in the whole
// manifest when the counts tell (no filter, or only statuses), else -1.
func (m *Model) tasksTotal() int {
	f := parseFilter(m.filter)
	if f.node != "" || f.typ != "" || len(f.words) > 0 {
		return -1
	}
	n := 0
	for _, s := range taskStatuses {
		if f.statuses == nil || f.statuses[s] {
			n += m.counts[string(s)]
		}
	}
	return n
}

// shownOf describes the tasks shown against what the manifest holds:
// "12", "12/40" (a filter or a partial page whose total is known) or
// "12/≥12" (a partial page under a filter the counts cannot total).
func (m *Model) shownOf(shown int) string {
	total := m.tasksTotal()
	switch {
	case total >= 0 && total == shown && m.filter == "":
		return fmt.Sprint(shown)
	case total >= 0:
		return fmt.Sprintf("%d/%d", shown, total)
	case m.tasksMore:
		return fmt.Sprintf("%d/≥%d", shown, shown)
	}
	return fmt.Sprintf("%d/%d", shown, len(m.tasks))
}

// visibleTasks returns the tasks of the page that pass the filter, newest
// first (the server applied what it could; words and several statuses are
// applied here).
func (m *Model) visibleTasks() []*fsm.Task {
	f := parseFilter(m.filter)
	if f.empty() {
		return m.tasks
	}
	out := make([]*fsm.Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		if f.match(t) {
			out = append(out, t)
		}
	}
	return out
}

func (m *Model) findTask(id string) *fsm.Task {
	for _, t := range m.tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// panelIDs returns the ids listed in a panel, in display order (events: nil).
func (m *Model) panelIDs(p panel) []string {
	var ids []string
	switch p {
	case panelServers:
		if m.members != nil {
			for _, s := range m.members.Members {
				ids = append(ids, s.ID)
			}
		}
	case panelNodes:
		ids = m.nodeView().ids // shared: read-only
	case panelTasks:
		for _, t := range m.visibleTasks() {
			ids = append(ids, t.ID)
		}
	}
	return ids
}

func (m *Model) panelLen(p panel) int {
	if p == panelEvents {
		return len(m.events)
	}
	return len(m.panelIDs(p))
}

// fixScroll keeps each panel's cursor on its selected id (lists re-sort and
// grow under it) and inside the visible window.
func (m *Model) fixScroll() {
	lay := m.layout()
	m.lastLayout = lay
	for p := panel(0); p < numPanels; p++ {
		n := m.panelLen(p)
		if p != panelEvents && m.sel[p] != "" {
			for i, id := range m.panelIDs(p) {
				if id == m.sel[p] {
					m.cur[p] = i
					break
				}
			}
		}
		m.cur[p] = clamp(m.cur[p], 0, max(n-1, 0))
		h := max(lay.rows[p], 1)
		if m.cur[p] < m.off[p] {
			m.off[p] = m.cur[p]
		}
		if m.cur[p] >= m.off[p]+h {
			m.off[p] = m.cur[p] - h + 1
		}
		m.off[p] = clamp(m.off[p], 0, max(n-h, 0))
	}
}

func clamp(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// Banners.

type banner struct {
	level level
	text  string // escaped: see banners
}

// banners lists the conditions an operator must see first, worst first.
// Their texts quote server ids, states, warnings and error strings, so
// every text is escaped (termsafe.Field) before it is returned, for both
// the live view and Plain.
func (m *Model) banners() []banner {
	var out []banner
	switch {
	case m.lost:
		out = append(out, banner{levelBad, fmt.Sprintf("NO SERVER ANSWERS for %s (tried %s): %s — retrying; data below is from %s ago",
			age(m.now.Sub(m.lostSince)), strings.Join(m.lostTried, ", "), firstLine(m.lostErr), age(m.now.Sub(m.statusAt)))})
	case m.status == nil:
		// nothing yet
	case m.status.LeaderID == "":
		since := ""
		if !m.leaderLostAt.IsZero() {
			since = " for " + age(m.now.Sub(m.leaderLostAt))
		}
		out = append(out, banner{levelBad, fmt.Sprintf("NO LEADER%s: %s (%s, term %d) knows no leader — writes and reads wait for an election",
			since, orDash(m.status.ID), m.status.State, m.status.Term)})
	case m.status.State == "follower" && time.Duration(m.status.LastContactMS)*time.Millisecond > contactBad:
		out = append(out, banner{levelBad, fmt.Sprintf("NO QUORUM? %s last heard from leader %s %s ago: it may be cut off from the majority",
			m.status.ID, m.status.LeaderID, msAge(m.status.LastContactMS))})
	}
	if m.status != nil && m.status.LeaderID != "" && !m.lost {
		if q := m.quorumProblem(); q != "" {
			out = append(out, banner{levelBad, q})
		}
	}
	if m.notice != "" && m.now.Sub(m.noticeAt) < noticeFor {
		out = append(out, banner{levelWarn, "FAILOVER: " + m.notice})
	}
	if m.members != nil {
		for _, w := range m.members.Warnings {
			out = append(out, banner{levelWarn, "WARNING: " + w})
		}
	}
	for i := range out {
		out[i].text = termsafe.Field(out[i].text)
	}
	return out
}

// quorumProblem reports reads failing for want of a quorum, or a majority of
// voters unreachable as the leader sees them.
func (m *Model) quorumProblem() string {
	for _, e := range []string{m.tasksErr, m.nodesErr} {
		if strings.Contains(e, "quorum") || strings.Contains(e, "majority") {
			return "NO QUORUM: reads fail: " + firstLine(e)
		}
	}
	if m.members == nil || m.membersStale {
		return ""
	}
	voters, down := 0, 0
	for _, s := range m.members.Members {
		if s.Suffrage != "voter" {
			continue
		}
		voters++
		if s.State == "unreachable" {
			down++
		}
	}
	if voters > 0 && voters-down < voters/2+1 {
		return fmt.Sprintf("NO QUORUM: %d of %d voters unreachable from the leader; writes cannot commit", down, voters)
	}
	return ""
}

// Small formatting helpers shared by the views.

func serverName(id, addr string) string {
	switch {
	case id == "":
		return addr
	case addr == "":
		return id
	}
	return id + " (" + addr + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func age(d time.Duration) string { return humanize.Age(d) }

func msAge(ms int64) string { return humanize.AgeMS(ms) }

// healthFigures are the numbers an operator watches first, from the
// leader's Status.Members: the leader's write p99 (proposal to result),
// the slowest server's log fsync p99 and the longest round trip from the
// leader ("" when none is known yet).
func (m *Model) healthFigures() string {
	if m.members == nil || m.membersStale {
		return ""
	}
	var parts []string
	worstSync, worstID, rtt := -1.0, "", -1.0
	for _, s := range m.members.Members {
		if s.Leader && s.CommitP99MS >= 0 {
			parts = append(parts, "write p99 "+humanize.Millis(s.CommitP99MS))
		}
		if s.LogSyncP99MS > worstSync {
			worstSync, worstID = s.LogSyncP99MS, s.ID
		}
		if !s.Leader && s.RTTMS > rtt {
			rtt = s.RTTMS
		}
	}
	if worstSync >= 0 {
		parts = append(parts, fmt.Sprintf("fsync p99 %s (%s)", humanize.Millis(worstSync), termsafe.Field(worstID)))
	}
	if rtt >= 0 {
		parts = append(parts, "rtt ≤ "+humanize.Millis(rtt))
	}
	return strings.Join(parts, "  ")
}

// rttText is the leader's round trip to a server ("-" for the leader
// itself and when unknown).
func rttText(s rpc.Member) string {
	switch {
	case s.State == "leader" || s.RTTMS < 0:
		return "-"
	}
	return humanize.Millis(s.RTTMS)
}

func nsAge(now time.Time, unixNano int64) string {
	if unixNano == 0 {
		return "-"
	}
	return age(now.Sub(time.Unix(0, unixNano)))
}
