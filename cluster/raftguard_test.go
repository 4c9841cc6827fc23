package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// guardFakeView is a guardView the test steers.
type guardFakeView struct {
	term      atomic.Uint64
	leader    atomic.Value // string
	gone      atomic.Bool
	goneCalls atomic.Int32
	onGone    func() // if set, runs inside LeaderGone
	done      chan struct{}
	repl      atomic.Int32  // Replicated calls
	replMax   atomic.Uint64 // the highest commit index Replicated was told
}

func newGuardFakeView(term uint64, leader string) *guardFakeView {
	v := &guardFakeView{done: make(chan struct{})}
	v.term.Store(term)
	v.leader.Store(leader)
	return v
}

func (v *guardFakeView) CurrentTerm() uint64 { return v.term.Load() }
func (v *guardFakeView) LeaderID() string    { return v.leader.Load().(string) }
func (v *guardFakeView) Done() <-chan struct{} {
	return v.done
}
func (v *guardFakeView) Replicated(commit uint64) {
	v.repl.Add(1)
	if commit > v.replMax.Load() {
		v.replMax.Store(commit)
	}
}
func (v *guardFakeView) LeaderGone() bool {
	v.goneCalls.Add(1)
	if v.onGone != nil {
		v.onGone()
	}
	return v.gone.Load()
}

// guardLogs collects the guard's JSON log lines.
type guardLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *guardLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the logged lines with the given event.
func (l *guardLogs) lines(t *testing.T, event string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", ln, err)
		}
		if m["event"] == event {
			out = append(out, m)
		}
	}
	return out
}

// guardHarness is a guarded server-side NetworkTransport and a plain
// client-side one, both real TCP on 127.0.0.1.
type guardHarness struct {
	t      *testing.T
	view   *guardFakeView
	g      *raftGuard
	client *raft.NetworkTransport
	addr   raft.ServerAddress
	logs   *guardLogs
}

func newGuardTransport(t *testing.T) *raft.NetworkTransport {
	t.Helper()
	tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatalf("transport: %v", err)
	}
	return tr
}

func newGuardHarness(t *testing.T, view *guardFakeView) *guardHarness {
	t.Helper()
	h := &guardHarness{t: t, view: view, logs: &guardLogs{}}
	inner := newGuardTransport(t)
	h.g = newRaftGuard(inner, view, slog.New(slog.NewJSONHandler(h.logs, nil)))
	h.addr = inner.LocalAddr()
	h.client = newGuardTransport(t)
	t.Cleanup(func() {
		// The client's pooled connections first: the server side's
		// connection goroutines end when they close (Close alone leaves
		// them open, and goleak saw them when these tests ran alone).
		h.client.CloseStreams()
		h.client.Close()
		h.g.Close()
	})
	return h
}

// serveRaw answers every RPC from tr's Consumer with fn until the test
// ends.
func serveRaw(t testing.TB, tr raft.Transport, fn func(raft.RPC)) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case rpc := <-tr.Consumer():
				fn(rpc)
			case <-stop:
				return
			}
		}
	}()
}

// guardResult is what a client call came to.
type guardResult struct {
	err    error
	marked bool // the test server's response reached the caller
}

func guardHeader(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:1")}
}

// guardRequest builds a request of the given kind from "peer".
func guardRequest(kind string, term uint64) any {
	switch kind {
	case "AppendEntries":
		return &raft.AppendEntriesRequest{RPCHeader: guardHeader("peer"), Term: term, PrevLogEntry: 7, PrevLogTerm: min(term, 3),
			Entries: []*raft.Log{{Index: 8, Term: term, Type: raft.LogCommand, Data: []byte("entry")}}, LeaderCommitIndex: 7}
	case "Heartbeat":
		return &raft.AppendEntriesRequest{RPCHeader: guardHeader("peer"), Term: term}
	case "RequestVote":
		return &raft.RequestVoteRequest{RPCHeader: guardHeader("peer"), Term: term, LastLogIndex: 7, LastLogTerm: 3}
	case "RequestVoteTransfer":
		return &raft.RequestVoteRequest{RPCHeader: guardHeader("peer"), Term: term, LastLogIndex: 7, LastLogTerm: 3, LeadershipTransfer: true}
	case "RequestPreVote":
		return &raft.RequestPreVoteRequest{RPCHeader: guardHeader("peer"), Term: term, LastLogIndex: 7, LastLogTerm: 3}
	case "InstallSnapshot":
		return &raft.InstallSnapshotRequest{RPCHeader: guardHeader("peer"), SnapshotVersion: 1, Term: term,
			LastLogIndex: 7, LastLogTerm: min(term, 3), Size: int64(len(guardSnapshot))}
	}
	panic("unknown kind " + kind)
}

var guardSnapshot = bytes.Repeat([]byte("snapshot"), 1024)

// call sends req from the client in the background.
func (h *guardHarness) call(req any, data []byte) <-chan guardResult {
	ch := make(chan guardResult, 1)
	go func() {
		var r guardResult
		switch req := req.(type) {
		case *raft.AppendEntriesRequest:
			var resp raft.AppendEntriesResponse
			r.err = h.client.AppendEntries("srv", h.addr, req, &resp)
			r.marked = resp.LastLog == 4242
		case *raft.RequestVoteRequest:
			var resp raft.RequestVoteResponse
			r.err = h.client.RequestVote("srv", h.addr, req, &resp)
			r.marked = resp.Granted
		case *raft.RequestPreVoteRequest:
			var resp raft.RequestPreVoteResponse
			r.err = h.client.RequestPreVote("srv", h.addr, req, &resp)
			r.marked = resp.Granted
		case *raft.InstallSnapshotRequest:
			var resp raft.InstallSnapshotResponse
			r.err = h.client.InstallSnapshot("srv", h.addr, req, &resp, bytes.NewReader(data))
			r.marked = resp.Success
		case *raft.TimeoutNowRequest:
			var resp raft.TimeoutNowResponse
			r.err = h.client.TimeoutNow("srv", h.addr, req, &resp)
			r.marked = string(resp.ID) == "marker"
		}
		ch <- r
	}()
	return ch
}

// markedResponse is the test server's answer to cmd, recognisable by the
// caller.
func markedResponse(cmd any) any {
	switch cmd.(type) {
	case *raft.AppendEntriesRequest:
		return &raft.AppendEntriesResponse{LastLog: 4242, Success: true}
	case *raft.RequestVoteRequest:
		return &raft.RequestVoteResponse{Granted: true}
	case *raft.RequestPreVoteRequest:
		return &raft.RequestPreVoteResponse{Granted: true}
	case *raft.InstallSnapshotRequest:
		return &raft.InstallSnapshotResponse{Success: true}
	case *raft.TimeoutNowRequest:
		return &raft.TimeoutNowResponse{RPCHeader: raft.RPCHeader{ID: []byte("marker")}}
	}
	return nil
}

// summary is the fields of a request the tests compare after the wire.
func summary(cmd any) string {
	switch c := cmd.(type) {
	case *raft.AppendEntriesRequest:
		var ents []string
		for _, e := range c.Entries {
			ents = append(ents, fmt.Sprintf("%d/%d/%s", e.Index, e.Term, e.Data))
		}
		return fmt.Sprintf("AE id=%s term=%d prev=%d/%d commit=%d entries=%v", c.ID, c.Term, c.PrevLogEntry, c.PrevLogTerm, c.LeaderCommitIndex, ents)
	case *raft.RequestVoteRequest:
		return fmt.Sprintf("RV id=%s term=%d last=%d/%d transfer=%v", c.ID, c.Term, c.LastLogIndex, c.LastLogTerm, c.LeadershipTransfer)
	case *raft.RequestPreVoteRequest:
		return fmt.Sprintf("PV id=%s term=%d last=%d/%d", c.ID, c.Term, c.LastLogIndex, c.LastLogTerm)
	case *raft.InstallSnapshotRequest:
		return fmt.Sprintf("IS id=%s term=%d last=%d/%d size=%d", c.ID, c.Term, c.LastLogIndex, c.LastLogTerm, c.Size)
	case *raft.TimeoutNowRequest:
		return fmt.Sprintf("TN id=%s", c.ID)
	}
	return fmt.Sprintf("%T", cmd)
}

// serveOne takes the next RPC off the guard's Consumer, checks it is req
// unchanged, and answers it with the marked response.
func (h *guardHarness) serveOne(req any, data []byte) {
	h.t.Helper()
	select {
	case rpc := <-h.g.Consumer():
		if got, want := summary(rpc.Command), summary(req); got != want {
			h.t.Errorf("raft got %s, want %s", got, want)
		}
		if rpc.Reader != nil {
			got, err := io.ReadAll(rpc.Reader)
			if err != nil || !bytes.Equal(got, data) {
				h.t.Errorf("snapshot data: %d bytes (err %v), want %d bytes unchanged", len(got), err, len(data))
			}
		}
		rpc.Respond(markedResponse(rpc.Command), nil)
	case <-time.After(5 * time.Second):
		h.t.Fatalf("%s: no RPC reached raft", summary(req))
	}
}

func (h *guardHarness) result(ch <-chan guardResult) guardResult {
	h.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("the client call did not return")
		return guardResult{}
	}
}

// expectAccepted: req reaches raft unchanged and raft's answer reaches
// the caller.
func (h *guardHarness) expectAccepted(req any, data []byte) {
	h.t.Helper()
	ch := h.call(req, data)
	h.serveOne(req, data)
	if r := h.result(ch); r.err != nil || !r.marked {
		h.t.Errorf("%s: caller got err=%v marked=%v, want raft's answer", summary(req), r.err, r.marked)
	}
}

// expectRefused: the caller gets the refusal's error and raft sees
// nothing.
func (h *guardHarness) expectRefused(req any, data []byte, want *refusal) {
	h.t.Helper()
	r := h.result(h.call(req, data))
	if r.err == nil || r.err.Error() != want.err.Error() {
		h.t.Errorf("%s: caller got err=%v, want %q", summary(req), r.err, want.err)
	}
	// A refusal is answered before anything is forwarded, so by now a
	// forwarded RPC would be waiting on the unbuffered Consumer.
	select {
	case rpc := <-h.g.Consumer():
		h.t.Errorf("%s: refused, yet raft got %s", summary(req), summary(rpc.Command))
		rpc.Respond(nil, errors.New("test: should not be here"))
	default:
	}
}

func TestRaftGuardTermRules(t *testing.T) {
	const cur = 100
	h := newGuardHarness(t, newGuardFakeView(cur, "leader"))
	kinds := []string{"AppendEntries", "Heartbeat", "RequestVote", "RequestVoteTransfer", "RequestPreVote", "InstallSnapshot"}
	cases := []struct {
		name string
		term uint64
		want *refusal // nil: accepted
	}{
		{"older term (raft's to refuse)", 1, nil},
		{"current term", cur, nil},
		{"next term", cur + 1, nil},
		{"largest jump", cur + maxTermJump, nil},
		{"jump too far", cur + maxTermJump + 1, refusedTermJump},
		{"probe's term 2^64-2", math.MaxUint64 - 1, refusedTermCeiling},
		{"max term", math.MaxUint64, refusedTermCeiling},
		{"ceiling", termCeiling, refusedTermCeiling},
	}
	for _, kind := range kinds {
		for _, tc := range cases {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				h.t = t
				req := guardRequest(kind, tc.term)
				if tc.want == nil {
					h.expectAccepted(req, guardSnapshot)
				} else {
					h.expectRefused(req, guardSnapshot, tc.want)
				}
			})
		}
	}
	t.Run("ceiling also binds a server whose term is near it", func(t *testing.T) {
		h.t = t
		h.view.term.Store(termCeiling - 2)
		defer h.view.term.Store(cur)
		h.expectAccepted(guardRequest("RequestVote", termCeiling-1), nil)
		h.expectRefused(guardRequest("RequestVote", termCeiling), nil, refusedTermCeiling)
	})
}

func TestRaftGuardLogTermAhead(t *testing.T) {
	h := newGuardHarness(t, newGuardFakeView(100, "leader"))
	ae := guardRequest("AppendEntries", 101).(*raft.AppendEntriesRequest)
	ae.Entries[0].Term = math.MaxUint64
	h.expectRefused(ae, nil, refusedLogTerm)

	ae = guardRequest("AppendEntries", 101).(*raft.AppendEntriesRequest)
	ae.PrevLogTerm = 102
	h.expectRefused(ae, nil, refusedLogTerm)

	is := guardRequest("InstallSnapshot", 101).(*raft.InstallSnapshotRequest)
	is.LastLogTerm = math.MaxUint64 - 1
	h.expectRefused(is, guardSnapshot, refusedLogTerm)
}

// The probe that wrapped a term: RequestVote with LeadershipTransfer and
// term 2^64-2, then TimeoutNow. Both are refused now, and logged.
func TestRaftGuardRefusesTermWrapProbe(t *testing.T) {
	h := newGuardHarness(t, newGuardFakeView(5, "leader"))
	rv := guardRequest("RequestVoteTransfer", math.MaxUint64-1).(*raft.RequestVoteRequest)
	rv.ID = []byte("mallory")
	h.expectRefused(rv, nil, refusedTermCeiling)
	h.expectRefused(&raft.TimeoutNowRequest{RPCHeader: guardHeader("mallory")}, nil, refusedLeaderAlive)

	lines := h.logs.lines(t, "raft_rpc_refused")
	if len(lines) != 2 {
		t.Fatalf("logged %d refusals, want 2: %v", len(lines), lines)
	}
	want := []map[string]any{
		{"rpc": "RequestVote", "from": "mallory", "term": float64(math.MaxUint64 - 1), "reason": "term_ceiling", "current_term": float64(5)},
		{"rpc": "TimeoutNow", "from": "mallory", "term": float64(5), "reason": "leader_alive"},
	}
	for i, w := range want {
		if lines[i]["level"] != "WARN" {
			t.Errorf("line %d level %v, want WARN", i, lines[i]["level"])
		}
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s=%v, want %v (line %v)", i, k, lines[i][k], v, lines[i])
			}
		}
	}
}

func TestRaftGuardHeartbeatFastPath(t *testing.T) {
	h := newGuardHarness(t, newGuardFakeView(100, "leader"))
	var handled atomic.Int32
	h.g.SetHeartbeatHandler(func(rpc raft.RPC) {
		handled.Add(1)
		rpc.Respond(markedResponse(rpc.Command), nil)
	})

	r := h.result(h.call(guardRequest("Heartbeat", 100), nil))
	if r.err != nil || !r.marked || handled.Load() != 1 {
		t.Fatalf("good heartbeat: err=%v marked=%v handled=%d, want the handler's answer", r.err, r.marked, handled.Load())
	}
	h.expectRefused(guardRequest("Heartbeat", math.MaxUint64-1), nil, refusedTermCeiling)
	h.expectRefused(guardRequest("Heartbeat", 100+maxTermJump+1), nil, refusedTermJump)
	if n := handled.Load(); n != 1 {
		t.Errorf("heartbeat handler ran %d times, want 1 (refused heartbeats must not reach it)", n)
	}
	lines := h.logs.lines(t, "raft_rpc_refused")
	if len(lines) != 2 || lines[0]["rpc"] != "Heartbeat" || lines[0]["reason"] != "term_ceiling" {
		t.Errorf("refusal log: %v, want two lines with rpc=Heartbeat", lines)
	}

	// Without a handler heartbeats go through Consumer, still guarded.
	h.g.SetHeartbeatHandler(nil)
	h.expectAccepted(guardRequest("Heartbeat", 100), nil)
	h.expectRefused(guardRequest("Heartbeat", math.MaxUint64-1), nil, refusedTermCeiling)
}

// TestRaftGuardTellsReplication: an accepted AppendEntries of a leader's
// replication stream reaches Replicated with the leader's commit index
// (succession's test whether this server's log may be behind, logBehind);
// a bare heartbeat and a refused request do not.
func TestRaftGuardTellsReplication(t *testing.T) {
	h := newGuardHarness(t, newGuardFakeView(100, "leader"))
	h.expectAccepted(guardRequest("Heartbeat", 100), nil)
	if n := h.view.repl.Load(); n != 0 {
		t.Fatalf("a heartbeat was counted as replication (%d calls)", n)
	}
	ae := guardRequest("AppendEntries", 100).(*raft.AppendEntriesRequest)
	ae.LeaderCommitIndex = 42
	h.expectAccepted(ae, nil)
	if n, c := h.view.repl.Load(), h.view.replMax.Load(); n != 1 || c != 42 {
		t.Fatalf("after one replication request: %d calls, commit %d; want 1 call with 42", n, c)
	}
	// An empty AppendEntries of the replication stream (no new entries,
	// sent every CommitTimeout) still carries its previous entry.
	empty := &raft.AppendEntriesRequest{RPCHeader: guardHeader("peer"), Term: 100, PrevLogEntry: 8, PrevLogTerm: 3, LeaderCommitIndex: 43}
	h.expectAccepted(empty, nil)
	if n, c := h.view.repl.Load(), h.view.replMax.Load(); n != 2 || c != 43 {
		t.Fatalf("after an empty replication request: %d calls, commit %d; want 2 calls, 43", n, c)
	}
	h.expectRefused(guardRequest("AppendEntries", math.MaxUint64), nil, refusedTermCeiling)
	if n := h.view.repl.Load(); n != 2 {
		t.Fatalf("a refused AppendEntries was counted as replication (%d calls)", n)
	}
}

func TestRaftGuardTimeoutNow(t *testing.T) {
	cases := []struct {
		name      string
		leader    string
		from      string
		gone      bool
		term      uint64
		onGone    func(v *guardFakeView)
		want      *refusal
		wantProbe bool // LeaderGone consulted
	}{
		{name: "from the leader (graceful transfer)", leader: "L", from: "L", want: nil},
		{name: "no leader known", leader: "", from: "X", want: nil},
		{name: "other server, leader heard", leader: "L", from: "X", want: refusedLeaderAlive, wantProbe: true},
		{name: "other server, leader gone", leader: "L", from: "X", gone: true, want: nil, wantProbe: true},
		{name: "successor to itself, leader gone", leader: "L", from: "me", gone: true, want: nil, wantProbe: true},
		{name: "a new leader appeared during the check", leader: "L", from: "X", gone: true, wantProbe: true,
			onGone: func(v *guardFakeView) { v.leader.Store("M") }, want: refusedLeaderAlive},
		{name: "leader lost during the check", leader: "L", from: "X", gone: true, wantProbe: true,
			onGone: func(v *guardFakeView) { v.leader.Store("") }, want: nil},
		{name: "election would reach the ceiling", leader: "L", from: "L", term: termCeiling - 1, want: refusedTermCeiling},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			term := tc.term
			if term == 0 {
				term = 100
			}
			v := newGuardFakeView(term, tc.leader)
			v.gone.Store(tc.gone)
			if tc.onGone != nil {
				v.onGone = func() { tc.onGone(v) }
			}
			h := newGuardHarness(t, v)
			req := &raft.TimeoutNowRequest{RPCHeader: guardHeader(tc.from)}
			if tc.want == nil {
				h.expectAccepted(req, nil)
			} else {
				h.expectRefused(req, nil, tc.want)
			}
			if probed := v.goneCalls.Load() > 0; probed != tc.wantProbe {
				t.Errorf("LeaderGone consulted: %v, want %v", probed, tc.wantProbe)
			}
		})
	}
}

// LeaderGone may block (it can probe the leader's port): it never holds
// up other RPCs, and at most maxPendingTimeoutNow wait on it.
func TestRaftGuardTimeoutNowCheckIsOffThePath(t *testing.T) {
	v := newGuardFakeView(100, "L")
	release := make(chan struct{})
	started := make(chan struct{}, maxPendingTimeoutNow+1)
	v.onGone = func() {
		started <- struct{}{}
		<-release
	}
	v.gone.Store(true)
	h := newGuardHarness(t, v)

	var waiting []<-chan guardResult
	for range maxPendingTimeoutNow {
		waiting = append(waiting, h.call(&raft.TimeoutNowRequest{RPCHeader: guardHeader("X")}, nil))
	}
	timeout := time.After(5 * time.Second)
	for n := range maxPendingTimeoutNow {
		select {
		case <-started:
		case <-timeout:
			t.Fatalf("%d LeaderGone checks started, want %d", n, maxPendingTimeoutNow)
		}
	}
	// Other RPCs still flow, and one more TimeoutNow is refused as busy.
	h.expectAccepted(guardRequest("AppendEntries", 100), nil)
	h.expectRefused(&raft.TimeoutNowRequest{RPCHeader: guardHeader("Y")}, nil, refusedBusy)

	close(release)
	for range waiting {
		h.serveOne(&raft.TimeoutNowRequest{RPCHeader: guardHeader("X")}, nil)
	}
	for _, ch := range waiting {
		if r := h.result(ch); r.err != nil || !r.marked {
			t.Errorf("TimeoutNow after LeaderGone: err=%v marked=%v, want raft's answer", r.err, r.marked)
		}
	}
}

// A refused InstallSnapshot is drained before it is answered, as raft's
// installSnapshot does: the sender, still streaming a snapshot larger
// than the socket buffers, gets the refusal rather than a reset
// connection, and the next snapshot arrives intact.
func TestRaftGuardInstallSnapshotRefusedIsDrained(t *testing.T) {
	h := newGuardHarness(t, newGuardFakeView(100, "leader"))
	big := bytes.Repeat([]byte{0xa5}, 32<<20)
	req := guardRequest("InstallSnapshot", math.MaxUint64-1).(*raft.InstallSnapshotRequest)
	req.Size = int64(len(big))
	h.expectRefused(req, big, refusedTermCeiling)

	req = guardRequest("InstallSnapshot", 101).(*raft.InstallSnapshotRequest)
	req.Size = int64(len(big))
	h.expectAccepted(req, big)
}

// Responses to this server's own calls pass rule 1 too: raft adopts the
// term of a vote response.
func TestRaftGuardRefusesResponseTerm(t *testing.T) {
	peer := newGuardTransport(t)
	t.Cleanup(func() { peer.Close() })
	var answerTerm atomic.Uint64
	serveRaw(t, peer, func(rpc raft.RPC) {
		{
			term := answerTerm.Load()
			switch rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				rpc.Respond(&raft.AppendEntriesResponse{RPCHeader: guardHeader("peer"), Term: term}, nil)
			case *raft.RequestVoteRequest:
				rpc.Respond(&raft.RequestVoteResponse{RPCHeader: guardHeader("peer"), Term: term, Granted: true}, nil)
			case *raft.RequestPreVoteRequest:
				rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: guardHeader("peer"), Term: term, Granted: true}, nil)
			case *raft.InstallSnapshotRequest:
				_, _ = io.Copy(io.Discard, rpc.Reader)
				rpc.Respond(&raft.InstallSnapshotResponse{Term: term}, nil)
			default:
				rpc.Respond(&raft.TimeoutNowResponse{}, nil)
			}
		}
	})
	logs := &guardLogs{}
	inner := newGuardTransport(t)
	g := newRaftGuard(inner, newGuardFakeView(100, ""), slog.New(slog.NewJSONHandler(logs, nil)))
	t.Cleanup(func() {
		inner.CloseStreams() // its pooled connections to peer (see newGuardHarness)
		g.Close()
	})
	to := peer.LocalAddr()
	calls := map[string]func() error{
		"AppendEntries": func() error {
			return g.AppendEntries("peer", to, guardRequest("AppendEntries", 100).(*raft.AppendEntriesRequest), &raft.AppendEntriesResponse{})
		},
		"RequestVote": func() error {
			return g.RequestVote("peer", to, guardRequest("RequestVote", 101).(*raft.RequestVoteRequest), &raft.RequestVoteResponse{})
		},
		"RequestPreVote": func() error {
			return g.RequestPreVote("peer", to, guardRequest("RequestPreVote", 101).(*raft.RequestPreVoteRequest), &raft.RequestPreVoteResponse{})
		},
		"InstallSnapshot": func() error {
			return g.InstallSnapshot("peer", to, guardRequest("InstallSnapshot", 100).(*raft.InstallSnapshotRequest),
				&raft.InstallSnapshotResponse{}, bytes.NewReader(guardSnapshot))
		},
		"TimeoutNow": func() error {
			return g.TimeoutNow("peer", to, &raft.TimeoutNowRequest{RPCHeader: guardHeader("me")}, &raft.TimeoutNowResponse{})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			answerTerm.Store(100 + maxTermJump)
			if err := call(); err != nil {
				t.Errorf("answer in bounds: %v, want nil", err)
			}
			answerTerm.Store(math.MaxUint64 - 1)
			err := call()
			if name == "TimeoutNow" { // carries no term
				if err != nil {
					t.Errorf("TimeoutNow: %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != refusedTermCeiling.err.Error() {
				t.Errorf("answer with term 2^64-2: err=%v, want %q", err, refusedTermCeiling.err)
			}
		})
	}
	if n := len(logs.lines(t, "raft_response_refused")); n != 4 {
		t.Errorf("logged %d refused responses, want 4", n)
	}
}

// raft counts a pre-vote answered with an error containing "unexpected
// command" as granted; no refusal may say that.
func TestRaftGuardRefusalErrorsAreNotGrantedPreVotes(t *testing.T) {
	for _, r := range []*refusal{refusedTermCeiling, refusedTermJump, refusedLogTerm, refusedLeaderAlive, refusedBusy} {
		if strings.Contains(r.err.Error(), "unexpected command") {
			t.Errorf("refusal %s says %q", r.reason, r.err)
		}
	}
}

func TestRaftGuardImplementsRaftsOptionalInterfaces(t *testing.T) {
	h := newGuardHarness(t, newGuardFakeView(1, ""))
	var tr raft.Transport = h.g
	if _, ok := tr.(raft.WithPreVote); !ok {
		t.Error("the guard hides WithPreVote: raft would run without pre-vote")
	}
	if _, ok := tr.(raft.WithClose); !ok {
		t.Error("the guard hides WithClose: raft could not close its transport")
	}
	if h.g.LocalAddr() != h.addr || string(h.g.EncodePeer("x", "a:1")) != "a:1" || h.g.DecodePeer([]byte("a:1")) != "a:1" {
		t.Error("address methods do not delegate")
	}
}

func TestRaftGuardStops(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		g := newRaftGuard(newGuardTransport(t), newGuardFakeView(1, ""), nil)
		if err := g.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !g.inner.IsShutdown() {
			t.Error("Close left the inner transport open")
		}
		if err := g.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("view done", func(t *testing.T) {
		v := newGuardFakeView(1, "")
		inner := newGuardTransport(t)
		t.Cleanup(func() { inner.Close() })
		g := newRaftGuard(inner, v, nil)
		close(v.done)
		select {
		case <-g.stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the guard did not stop when the view's Done closed")
		}
	})
}

// The per-RPC check allocates nothing.
func TestRaftGuardCheckDoesNotAllocate(t *testing.T) {
	g := &raftGuard{view: newGuardFakeView(100, "L")}
	reqs := []any{
		guardRequest("AppendEntries", 100), guardRequest("Heartbeat", 100), guardRequest("RequestVote", 101),
		guardRequest("RequestPreVote", 101), guardRequest("InstallSnapshot", 100),
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, r := range reqs {
			if ref, _ := g.checkRequest(r); ref != nil {
				t.Fatalf("%s refused: %s", summary(r), ref.reason)
			}
		}
	}); n != 0 {
		t.Errorf("checkRequest allocates %.0f times per round, want 0", n)
	}
}

func TestRaftGuardRefusalLogIsRateLimited(t *testing.T) {
	g := &raftGuard{}
	t0 := time.Unix(1_800_000_000, 0)
	for i := range refusalLogBurst {
		if ok, _ := g.allowLog(t0.Add(time.Duration(i) * time.Millisecond)); !ok {
			t.Fatalf("line %d suppressed, want the first %d logged", i, refusalLogBurst)
		}
	}
	for i := range 5 {
		if ok, _ := g.allowLog(t0.Add(500 * time.Millisecond)); ok {
			t.Fatalf("line %d past the burst logged", refusalLogBurst+i)
		}
	}
	ok, suppressed := g.allowLog(t0.Add(refusalLogWindow + time.Millisecond))
	if !ok || suppressed != 5 {
		t.Errorf("first line of the next window: ok=%v suppressed=%d, want true, 5", ok, suppressed)
	}
}

// BenchmarkRaftGuardAppendEntries compares a round trip through the
// guard with one straight to raft's transport consumer.
func BenchmarkRaftGuardAppendEntries(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		b.Run(fmt.Sprintf("guarded=%v", guarded), func(b *testing.B) {
			inner, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 5*time.Second, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			var tr raft.Transport = inner
			if guarded {
				tr = newRaftGuard(inner, newGuardFakeView(100, "L"), nil)
			}
			defer tr.(raft.WithClose).Close()
			client, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, 5*time.Second, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			serveRaw(b, tr, func(rpc raft.RPC) { rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil) })
			req := guardRequest("AppendEntries", 100).(*raft.AppendEntriesRequest)
			b.ResetTimer()
			for b.Loop() {
				var resp raft.AppendEntriesResponse
				if err := client.AppendEntries("s", inner.LocalAddr(), req, &resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A successor's TimeoutNow that the receiver's guard refuses (its leader
// is alive) is not sent again: the refusal is the answer. Sent again a
// round trip later, it could find that leader gone and start an election
// for the leader the sender had judged lost, long replaced
// (TestLeaderKillFailover saw a 6 s failover from that). A failed
// connection is still tried once more.
func TestTimeoutNowRefusalIsNotResent(t *testing.T) {
	v := newGuardFakeView(100, "L") // a leader this server still hears
	h := newGuardHarness(t, v)
	s := &Server{trans: h.client, cfg: Config{NodeID: "X", Advertise: string(h.client.LocalAddr())}}
	err := s.timeoutNow(peerState{id: "srv", addr: string(h.addr)})
	if !guardRefused(err) {
		t.Fatalf("TimeoutNow to a server that hears its leader: %v, want its guard's refusal", err)
	}
	if n := v.goneCalls.Load(); n != 1 {
		t.Errorf("the receiver checked %d TimeoutNow requests, want 1 (no resend after a refusal)", n)
	}
	if guardRefused(errors.New("dial tcp 10.0.0.1:50051: connect: connection refused")) {
		t.Error("a refused connection counts as a guard's refusal; it must be retried")
	}
}
