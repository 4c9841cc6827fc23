package tui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// fakeCluster is a Caller over in-memory servers. Blocking reads behave as
// the real endpoints do: they hold until the index passes min_index, the
// wait ends, or (Status.Get) the leader or term changes; a server going
// down fails its calls in flight, like a closed connection.
type fakeCluster struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	servers map[string]*fakeServer
	nodes   rpc.NodeListReply
	tasks   rpc.TaskListReply
	calls   []fakeCall
	failOn  map[string]int // method → how many next calls fail
}

type fakeServer struct {
	id, addr string
	down     bool
	leader   string // the leader it knows ("" none)
	term     uint64
	applied  uint64
}

type fakeCall struct {
	addr, method string
	stale        bool
	minIndex     uint64
	maxWaitMS    int64
	list         rpc.TaskListArgs // Task.List's arguments
}

func newFakeCluster(n int) *fakeCluster {
	f := &fakeCluster{changed: make(chan struct{}), servers: map[string]*fakeServer{}, failOn: map[string]int{}}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("s%d", i)
		f.servers[fakeAddr(id)] = &fakeServer{id: id, addr: fakeAddr(id), leader: "s1", term: 2, applied: 10}
	}
	f.nodes = rpc.NodeListReply{Nodes: []rpc.NodeInfo{node("n1", "aws", "r", fsm.NodeHealthy, 5, 0, 2)}, QueryMeta: rpc.QueryMeta{Index: 5}}
	f.tasks = rpc.TaskListReply{Tasks: []*fsm.Task{}, Counts: map[string]int{}, QueryMeta: rpc.QueryMeta{Index: 7}}
	return f
}

func fakeAddr(id string) string { return "fake-" + id + ":1" }

// change runs fn under the lock and wakes every blocked call.
func (f *fakeCluster) change(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCluster) setLeader(leader string, term uint64) {
	f.change(func() {
		for _, s := range f.servers {
			s.leader, s.term = leader, term
			s.applied++
		}
	})
}

func (f *fakeCluster) callsOf(method string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeCluster) Call(ctx context.Context, addr, method string, args, reply any) error {
	fc := fakeCall{addr: addr, method: method}
	switch a := args.(type) {
	case *rpc.StatusArgs:
		fc.minIndex, fc.maxWaitMS = a.MinIndex, a.MaxWaitMS
	case *rpc.MembersArgs:
		fc.stale = a.Stale
	case *rpc.NodeListArgs:
		fc.stale, fc.minIndex, fc.maxWaitMS = a.Stale, a.MinIndex, a.MaxWaitMS
	case *rpc.TaskListArgs:
		fc.stale, fc.minIndex, fc.maxWaitMS = a.Stale, a.MinIndex, a.MaxWaitMS
		fc.list = *a
	}
	f.mu.Lock()
	f.calls = append(f.calls, fc)
	s := f.servers[addr]
	if s == nil || s.down {
		f.mu.Unlock()
		return rpc.Errorf(rpc.CodeUnavailable, "cannot connect to %s: connect: connection refused", addr)
	}
	if f.failOn[method] > 0 {
		f.failOn[method]--
		f.mu.Unlock()
		return rpc.Errorf(rpc.CodeUnavailable, "%s failed on purpose", method)
	}
	startLeader, startTerm := s.leader, s.term
	f.mu.Unlock()

	var timer <-chan time.Time
	if fc.minIndex > 0 {
		wait := time.Duration(fc.maxWaitMS) * time.Millisecond
		if wait <= 0 {
			wait = time.Minute
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	for {
		f.mu.Lock()
		if s.down {
			f.mu.Unlock()
			return rpc.Errorf(rpc.CodeUnavailable, "lost connection to %s: server closed the connection", addr)
		}
		needLeader := !fc.stale && (method == rpc.MethodMembers || method == rpc.MethodNodeList || method == rpc.MethodTaskList)
		if needLeader && s.leader == "" {
			f.mu.Unlock()
			return rpc.Errorf(rpc.CodeUnavailable, "server %s knows no leader: the cluster is electing one; retry", s.id)
		}
		var idx uint64
		switch method {
		case rpc.MethodStatus:
			idx = s.applied
		case rpc.MethodNodeList:
			idx = f.nodes.Index
		case rpc.MethodTaskList:
			idx = f.tasks.Index
		}
		woken := method == rpc.MethodStatus && (s.leader != startLeader || s.term != startTerm)
		if fc.minIndex == 0 || idx > fc.minIndex || woken || timer == nil {
			f.fill(s, method, fc.stale, reply)
			f.mu.Unlock()
			return nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-timer:
			timer = nil // answer with what there is
		case <-ctx.Done():
			return rpc.Errorf(rpc.CodeDeadlineExceeded, "%s on %s: no answer before the deadline", method, addr)
		}
	}
}

// fill writes the reply; f.mu is held.
func (f *fakeCluster) fill(s *fakeServer, method string, stale bool, reply any) {
	switch r := reply.(type) {
	case *rpc.StatusReply:
		state := "follower"
		if s.leader == s.id {
			state = "leader"
		} else if s.leader == "" {
			state = "candidate"
		}
		*r = rpc.StatusReply{ID: s.id, Address: s.addr, State: state, LeaderID: s.leader, Term: s.term,
			CommitIndex: s.applied, AppliedIndex: s.applied, LastIndex: s.applied}
		if s.leader != "" {
			r.LeaderAddr = fakeAddr(s.leader)
		}
	case *rpc.MembersReply:
		*r = rpc.MembersReply{From: s.id, Warnings: []string{}}
		for i := 1; i <= len(f.servers); i++ {
			o := f.servers[fakeAddr(fmt.Sprintf("s%d", i))]
			m := rpc.Member{ID: o.id, Address: o.addr, Suffrage: "voter", State: "follower", Leader: o.id == s.leader, Term: o.term}
			switch {
			case stale && o != s:
				m.State, m.LastContactMS, m.Lag = "unknown", -1, -1
			case o.down:
				m.State, m.LastContactMS, m.Lag = "unreachable", -1, -1
			case o.id == s.leader:
				m.State = "leader"
			}
			r.Members = append(r.Members, m)
		}
	case *rpc.NodeListReply:
		*r = f.nodes
		r.Nodes = append([]rpc.NodeInfo(nil), f.nodes.Nodes...)
	case *rpc.TaskListReply:
		*r = f.tasks
		r.Tasks = append([]*fsm.Task(nil), f.tasks.Tasks...)
	}
}

// sink collects the watcher's messages.
type sink struct {
	mu   sync.Mutex
	msgs []tea.Msg
}

func (s *sink) send(m tea.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
}

func (s *sink) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// waitFor returns the first message from index from on that satisfies ok.
func (s *sink) waitFor(t *testing.T, from int, within time.Duration, what string, ok func(tea.Msg) bool) tea.Msg {
	t.Helper()
	m, _ := s.waitForAt(t, from, within, what, ok)
	return m
}

// waitForAt is waitFor that also returns the message's index.
func (s *sink) waitForAt(t *testing.T, from int, within time.Duration, what string, ok func(tea.Msg) bool) (tea.Msg, int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		for i, m := range s.msgs[from:] {
			if ok(m) {
				s.mu.Unlock()
				return m, from + i
			}
		}
		n := len(s.msgs)
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s (%d messages)", what, within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testWatchConfig() WatchConfig {
	return WatchConfig{StatusWait: 300 * time.Millisecond, NodesWait: 300 * time.Millisecond, TasksWait: 300 * time.Millisecond,
		MembersEvery: 50 * time.Millisecond, Slack: 500 * time.Millisecond, MinGap: 5 * time.Millisecond,
		ProbeTimeout: 200 * time.Millisecond, NoLeaderMove: 150 * time.Millisecond}
}

// startWatcher runs a watcher until the test ends and checks that Run
// returns promptly once cancelled.
func startWatcher(t *testing.T, f *fakeCluster, seeds []string, cfg WatchConfig) (*Watcher, *sink) {
	t.Helper()
	s := &sink{}
	w := NewWatcher(f, seeds, cfg, s.send)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Error("Watcher.Run did not return within 2s of cancel")
		}
	})
	return w, s
}

func TestWatcherFailsOverToLearnedServer(t *testing.T) {
	f := newFakeCluster(3)
	w, s := startWatcher(t, f, []string{fakeAddr("s1")}, testWatchConfig())

	first := s.waitFor(t, 0, 2*time.Second, "first ConnMsg", func(m tea.Msg) bool { _, ok := m.(ConnMsg); return ok }).(ConnMsg)
	if first.Addr != fakeAddr("s1") || first.ID != "s1" || first.PrevAddr != "" {
		t.Fatalf("first connection %+v, want s1 with no previous server", first)
	}
	// The member list teaches the watcher the other two addresses.
	deadline := time.Now().Add(2 * time.Second)
	for len(w.Addrs()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("addresses learned: %v, want all 3", w.Addrs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.waitFor(t, 0, 2*time.Second, "tasks", func(m tea.Msg) bool { tm, ok := m.(TasksMsg); return ok && tm.Reply != nil })
	s.waitFor(t, 0, 2*time.Second, "nodes", func(m tea.Msg) bool { nm, ok := m.(NodesMsg); return ok && nm.Reply != nil })

	// Kill the connected server (the leader); s2 takes over.
	mark := s.mark()
	killed := time.Now()
	f.change(func() {
		f.servers[fakeAddr("s1")].down = true
		for _, sv := range f.servers {
			sv.leader, sv.term = "s2", 3
		}
	})
	cm := s.waitFor(t, mark, 2*time.Second, "failover ConnMsg", func(m tea.Msg) bool { _, ok := m.(ConnMsg); return ok }).(ConnMsg)
	if cm.Addr != fakeAddr("s2") || cm.PrevAddr != fakeAddr("s1") || cm.PrevID != "s1" || !strings.Contains(cm.Reason, "lost connection") {
		t.Fatalf("failover %+v, want s1 → s2 for the lost connection", cm)
	}
	st := s.waitFor(t, mark, 2*time.Second, "status from s2", func(m tea.Msg) bool {
		sm, ok := m.(StatusMsg)
		return ok && sm.Addr == fakeAddr("s2") && sm.Status.LeaderID == "s2"
	}).(StatusMsg)
	t.Logf("failover seen %s after the kill (status term %d)", time.Since(killed), st.Status.Term)
	// Reads follow to the new server.
	s.waitFor(t, mark, 2*time.Second, "tasks from s2", func(m tea.Msg) bool {
		tm, ok := m.(TasksMsg)
		return ok && tm.Addr == fakeAddr("s2") && tm.Reply != nil
	})
}

func TestWatcherReportsAllDownAndReconnects(t *testing.T) {
	f := newFakeCluster(2)
	_, s := startWatcher(t, f, []string{fakeAddr("s1"), fakeAddr("s2")}, testWatchConfig())
	s.waitFor(t, 0, 2*time.Second, "ConnMsg", func(m tea.Msg) bool { _, ok := m.(ConnMsg); return ok })

	mark := s.mark()
	f.change(func() {
		for _, sv := range f.servers {
			sv.down = true
		}
	})
	lost := s.waitFor(t, mark, 2*time.Second, "ConnLostMsg", func(m tea.Msg) bool { _, ok := m.(ConnLostMsg); return ok }).(ConnLostMsg)
	if len(lost.Tried) != 2 || !strings.Contains(lost.Err, "connection refused") {
		t.Fatalf("lost %+v, want both servers tried and the refusal", lost)
	}

	mark = s.mark()
	f.change(func() { f.servers[fakeAddr("s2")].down = false })
	cm := s.waitFor(t, mark, 3*time.Second, "reconnect", func(m tea.Msg) bool { _, ok := m.(ConnMsg); return ok }).(ConnMsg)
	if cm.Addr != fakeAddr("s2") {
		t.Fatalf("reconnected to %s, want s2", cm.Addr)
	}

	// The model turns this sequence into a banner and back.
	m := newTestModel(t, 80, 24)
	s.mu.Lock()
	feed(m, s.msgs...)
	s.mu.Unlock()
	if m.lost || m.connAddr != fakeAddr("s2") {
		t.Fatalf("model after reconnect: lost=%v conn=%s", m.lost, m.connAddr)
	}
}

// It runs in a synctest bubble: time is fake and moves only when every
// goroutine of the test is blocked, so "no call in 300 ms" is exact.
func TestWatcherBlockingQueries(t *testing.T) { synctest.Test(t, testWatcherBlockingQueries) }

func testWatcherBlockingQueries(t *testing.T) {
	f := newFakeCluster(1)
	cfg := testWatchConfig()
	cfg.TasksWait = 5 * time.Second // only a change should wake the query
	_, s := startWatcher(t, f, []string{fakeAddr("s1")}, cfg)
	s.waitFor(t, 0, 2*time.Second, "tasks", func(m tea.Msg) bool { tm, ok := m.(TasksMsg); return ok && tm.Reply != nil })

	// The second call blocks on the first answer's index.
	deadline := time.Now().Add(2 * time.Second)
	for len(f.callsOf(rpc.MethodTaskList)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no second Task.List call")
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls := f.callsOf(rpc.MethodTaskList)
	if calls[0].minIndex != 0 || calls[1].minIndex != 7 || calls[1].maxWaitMS != 5000 {
		t.Fatalf("Task.List calls %+v, want min_index 0 then 7 with max_wait 5000", calls[:2])
	}

	// A new task wakes it at once.
	mark := s.mark()
	woke := time.Now()
	f.change(func() {
		f.tasks.Tasks = append(f.tasks.Tasks, task("t1", "shell", fsm.TaskPending, "", 0, 8, 0))
		f.tasks.Index = 8
	})
	s.waitFor(t, mark, time.Second, "new task", func(m tea.Msg) bool {
		tm, ok := m.(TasksMsg)
		return ok && tm.Reply != nil && len(tm.Reply.Tasks) == 1
	})
	if d := time.Since(woke); d > 900*time.Millisecond {
		t.Fatalf("the change took %s to arrive; the blocking query did not wake", d)
	}

	// Without changes no call returns before max_wait: no busy polling.
	synctest.Wait() // the watcher's next Task.List call is made and blocks
	n := len(f.callsOf(rpc.MethodTaskList))
	time.Sleep(4 * time.Second) // fake time, within max_wait (5 s)
	if got := len(f.callsOf(rpc.MethodTaskList)); got != n {
		t.Fatalf("%d Task.List calls in 4 s on an idle cluster: polling", got-n)
	}

	// After an error the next call does not block.
	f.change(func() { f.failOn[rpc.MethodNodeList] = 1 })
	mark = s.mark()
	_, i := s.waitForAt(t, mark, 3*time.Second, "nodes error", func(m tea.Msg) bool { nm, ok := m.(NodesMsg); return ok && nm.Err != "" })
	s.waitFor(t, i, 3*time.Second, "nodes again", func(m tea.Msg) bool { nm, ok := m.(NodesMsg); return ok && nm.Reply != nil })
	calls = f.callsOf(rpc.MethodNodeList)
	for i := 1; i < len(calls); i++ {
		if calls[i-1].minIndex != 0 && calls[i].minIndex == 0 {
			return // found the non-blocking retry
		}
	}
	t.Fatalf("no non-blocking Node.List after the error: %+v", calls)
}

func TestWatcherMovesAwayFromLeaderlessServer(t *testing.T) {
	f := newFakeCluster(3)
	f.servers[fakeAddr("s1")].leader = "" // s1 is cut off; s2 and s3 follow s3
	f.servers[fakeAddr("s2")].leader = "s3"
	f.servers[fakeAddr("s3")].leader = "s3"
	_, s := startWatcher(t, f, []string{fakeAddr("s1"), fakeAddr("s2")}, testWatchConfig())
	cm := s.waitFor(t, 0, 3*time.Second, "move", func(m tea.Msg) bool { c, ok := m.(ConnMsg); return ok && c.PrevAddr != "" }).(ConnMsg)
	if cm.PrevAddr != fakeAddr("s1") || cm.Addr == fakeAddr("s1") || !strings.Contains(cm.Reason, "known no leader") {
		t.Fatalf("move %+v, want away from s1 because it knows no leader", cm)
	}
}

func TestWatcherRefreshesMembersOnLeaderChange(t *testing.T) {
	synctest.Test(t, testWatcherRefreshesMembersOnLeaderChange)
}

func testWatcherRefreshesMembersOnLeaderChange(t *testing.T) {
	f := newFakeCluster(3)
	cfg := testWatchConfig()
	cfg.MembersEvery = time.Hour
	_, s := startWatcher(t, f, []string{fakeAddr("s1")}, cfg)
	s.waitFor(t, 0, 2*time.Second, "members", func(m tea.Msg) bool { mm, ok := m.(MembersMsg); return ok && mm.Reply != nil })
	synctest.Wait() // the first kick drained: every goroutine waits
	mark := s.mark()
	f.setLeader("s3", 3)
	mm := s.waitFor(t, mark, 2*time.Second, "members after the change", func(m tea.Msg) bool { mm, ok := m.(MembersMsg); return ok && mm.Reply != nil }).(MembersMsg)
	for _, m := range mm.Reply.Members {
		if m.Leader && m.ID != "s3" {
			t.Fatalf("members after the change still name %s leader", m.ID)
		}
	}
}

func TestWatcherStaleMembersWithoutLeader(t *testing.T) {
	f := newFakeCluster(1)
	f.servers[fakeAddr("s1")].leader = ""
	_, s := startWatcher(t, f, []string{fakeAddr("s1")}, testWatchConfig())
	mm := s.waitFor(t, 0, 2*time.Second, "members", func(m tea.Msg) bool { _, ok := m.(MembersMsg); return ok }).(MembersMsg)
	if !mm.Stale || mm.Reply == nil || mm.Err == "" {
		t.Fatalf("members without a leader: %+v, want the server's stale list and the error", mm)
	}
}

func TestFetchOnce(t *testing.T) {
	f := newFakeCluster(3)
	f.servers[fakeAddr("s1")].down = true
	msgs, snap, err := FetchOnce(context.Background(), f, []string{fakeAddr("s1"), fakeAddr("s2")}, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	if snap.Connected != fakeAddr("s2") || snap.Status.LeaderID != "s1" || len(snap.Members.Members) != 3 || len(snap.Stale) != 0 {
		t.Fatalf("snapshot %+v", snap)
	}
	m := newTestModel(t, 80, 24)
	feed(m, msgs...)
	out := m.Plain()
	for _, want := range []string{"connected to s2", "leader s1", "s1 ", "s2*", "s3 ", "NODES 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("plain snapshot lacks %q:\n%s", want, out)
		}
	}

	// No leader: the reads fall back to the server's own state.
	f.setLeader("", 3)
	_, snap, err = FetchOnce(context.Background(), f, []string{fakeAddr("s2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(snap.Stale, ",") != "members,nodes,tasks" || snap.Errors["tasks"] == "" {
		t.Fatalf("leaderless snapshot: stale %v errors %v", snap.Stale, snap.Errors)
	}

	// Nobody answers: one error naming the addresses.
	_, _, err = FetchOnce(context.Background(), f, []string{fakeAddr("s1"), "nowhere:1"}, nil)
	if err == nil || rpc.CodeOf(err) != rpc.CodeUnavailable || !strings.Contains(err.Error(), "nowhere:1") {
		t.Fatalf("FetchOnce with no server: %v", err)
	}
	if _, _, err := FetchOnce(context.Background(), f, nil, nil); rpc.CodeOf(err) != rpc.CodeInvalidArgument {
		t.Fatalf("FetchOnce without addresses: %v", err)
	}
}
