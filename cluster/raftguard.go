package cluster

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The raft guard: a raft.Transport around the NetworkTransport that
// refuses Raft RPCs no correct server sends, before raft sees them.
//
// Mutual TLS decides who may speak Raft at all; the guard limits what a
// server allowed to speak Raft (buggy, or holding a stolen certificate)
// can do with it. It was written after a probe showed that a RequestVote
// with the leadership-transfer flag and term 2^64−2, followed by a
// TimeoutNow, wrapped a server's term to 0 — persisted, so no leader was
// ever elected again, across restarts.
//
// Rules, checked on every inbound request (heartbeats included, on the
// transport's fast path):
//
//  1. Term bounds: a term at or above termCeiling, or more than
//     maxTermJump above this server's current term, is refused
//     (AppendEntries, RequestVote, RequestPreVote, InstallSnapshot). So are
//     log terms above the request's own term (AppendEntries' PrevLogTerm
//     and entries, InstallSnapshot's LastLogTerm): a leader never holds an
//     entry from a later term than its own. A TimeoutNow carries no term;
//     it is refused when the election it starts would take this server's
//     term to the ceiling. The same bounds apply to the term in the
//     responses to this server's own AppendEntries, RequestVote,
//     RequestPreVote and InstallSnapshot calls: raft adopts the term of a
//     vote response, so a peer could otherwise push it through an answer.
//  2. TimeoutNow (start an election at once, skipping pre-vote) is
//     accepted from the leader this server knows, when it knows none, or
//     when its own evidence says that leader is gone (guardView.LeaderGone).
//     succession.go sends TimeoutNow from a follower (often to itself)
//     exactly when the leader's port refuses or a quorum has not heard
//     from it, which is what LeaderGone checks, so succession keeps its
//     speed; raft's own leadership transfer comes from the leader.
//  3. A RequestVote with LeadershipTransfer set gets rule 1 only: it is
//     what the server that received a TimeoutNow sends to every voter, and
//     those voters still know the old leader, so holding it to rule 2
//     would block every legitimate transfer and succession.
//
// What the guard cannot stop. The RPC header's ID is the sender's own
// claim: NetworkTransport does not say which connection (or certificate)
// an RPC came on, so a malicious server that names itself the leader
// passes rule 2. A compromised voter can still vote for itself, refuse
// votes, make a leader step down by answering with a higher (in-bounds)
// term, start elections while the leader is unreachable from its target
// (e.g. make a follower that lost its link to the leader stand), claim
// leadership with an AppendEntries one term ahead and write entries a
// follower will accept, and ratchet terms up by maxTermJump per accepted
// request — 2^44 of them to reach the ceiling. What the guard does stop:
// the term wrap and other permanent damage from a single RPC, and
// TimeoutNow from anyone but the leader while the leader is alive and
// heard. Binding the header ID to the peer's certificate would close the
// first gap; it needs a transport that reports the connection per RPC.
//
// Outbound, the guard also lets termopen.go fill a new leader's first
// AppendEntries to each follower with the term's no-op.
//
// Pipelined AppendEntries responses (AppendEntriesPipeline) are passed
// through unchecked: raft pipelines only after a successful exchange in
// the same term, and a higher term there makes a leader step down
// without adopting it.

// maxTermJump is how far above this server's current term a request's
// term may be. Terms move only when an election starts. With pre-vote
// (hashicorp/raft 1.8's default, which rctl keeps) a server that cannot
// win — cut off, partitioned, out of date — does not raise its term, so
// terms grow by about one per real election (a few with split votes); the
// gap a request can legitimately show is the number of elections the
// receiver missed while it was down or cut off. 2^20 (~1M) is two years of
// one election a minute; a server that missed more is refused by its
// peers and is restored from them (move its data dir away and join). The
// bound also makes the attack above slow: pushing a term to the ceiling
// takes 2^44 accepted requests.
const maxTermJump uint64 = 1 << 20

// termCeiling: terms at or above it are refused. It leaves maxTermJump
// terms of room below the wrap at 2^64.
const termCeiling = math.MaxUint64 - maxTermJump

// maxPendingTimeoutNow bounds the TimeoutNow checks that wait on
// guardView.LeaderGone (which may probe the leader's port) at once; more
// are refused as busy. Legitimate TimeoutNows come one at a time.
const maxPendingTimeoutNow = 4

// Refusal logging is rate-limited so a flood of bad RPCs cannot flood the
// log: at most refusalLogBurst lines per refusalLogWindow; the next line
// after a window with suppressed lines says how many were left out.
const (
	refusalLogBurst  = 20
	refusalLogWindow = time.Second
)

// guardView is what the guard needs to know about this server (*Server
// implements it). All methods must be safe for concurrent use.
// CurrentTerm and LeaderID run for every inbound RPC, heartbeats included
// (on the transport's connection goroutines), and must be cheap and never
// block.
type guardView interface {
	// CurrentTerm is raft's current term (raft.Raft.CurrentTerm).
	CurrentTerm() uint64
	// LeaderID is the id of the leader this server currently knows
	// (raft.Raft.LeaderWithID), "" if none; its own id while it leads.
	LeaderID() string
	// LeaderGone reports whether this server, on its own evidence, has
	// lost the leader LeaderID names: it has not heard from it for longer
	// than the silence after which its own succession acts
	// (Timing.SuccessionSilence when the profile sets one, else
	// HeartbeatTimeout; compare raft.Raft.LastContact), or a quick probe
	// of the leader's port is refused or reset (leaderProcessGone). A
	// verdict succession reached moments ago for the same leader should be
	// reused rather than probed again: the kill -9 path then pays nothing.
	// False while this server leads. It may block for up to a probe
	// timeout; the guard calls it off its dispatch goroutine, at most
	// maxPendingTimeoutNow calls at a time.
	LeaderGone() bool
	// Done is closed when the server shuts down; the guard then stops.
	Done() <-chan struct{}
	// Replicated is told of every accepted AppendEntries that comes from
	// a leader's replication stream (it carries entries, a previous entry
	// or a commit index; a bare heartbeat carries none), with the
	// leader's commit index. It runs on the dispatch goroutine for every
	// such request and must be cheap and never block.
	Replicated(leaderCommit uint64)
}

// raftGuard is a raft.Transport (with raft's optional WithPreVote and
// WithClose) around a NetworkTransport. Outbound calls and everything
// else delegate to the inner transport; inbound RPCs pass the rules above
// on their way to raft. A refused RPC is answered with an error (as raft
// answers RPCs it cannot process), never reaches raft, and is logged as
// event=raft_rpc_refused.
type raftGuard struct {
	inner *raft.NetworkTransport
	view  guardView
	log   *slog.Logger
	// opener fills a new leader's first AppendEntries to a follower with
	// the term's no-op (termopen.go); nil sends requests as raft built
	// them. Set before raft starts.
	opener func(*raft.AppendEntriesRequest)

	out     chan raft.RPC // Consumer: what raft reads
	done    <-chan struct{}
	closed  chan struct{}
	once    sync.Once
	stopped chan struct{} // closed when run returns
	pending atomic.Int32  // TimeoutNow checks waiting on LeaderGone

	logMu      sync.Mutex
	logWindow  time.Time
	logged     int
	suppressed int
}

var (
	_ raft.Transport   = (*raftGuard)(nil)
	_ raft.WithPreVote = (*raftGuard)(nil)
	_ raft.WithClose   = (*raftGuard)(nil)
)

// newRaftGuard wraps inner and starts reading its Consumer. The guard
// stops when it is closed (raft closes its transport on Shutdown) or when
// v.Done() closes; Close also closes inner. A nil log discards.
func newRaftGuard(inner *raft.NetworkTransport, v guardView, log *slog.Logger) *raftGuard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &raftGuard{
		inner: inner, view: v, log: log,
		out:     make(chan raft.RPC), // unbuffered, like NetworkTransport's
		done:    v.Done(),
		closed:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go g.run()
	return g
}

// refusal is why an RPC was refused: a stable reason for the log and the
// error the peer gets. The error text must never contain raft's
// "unexpected command": a pre-voter would count that as a granted vote.
type refusal struct {
	reason string
	err    error
}

// refusalPrefix starts the error text of every refusal, as the peer gets
// it (NetworkTransport carries an RPC error as its text).
const refusalPrefix = "rctl: raft rpc refused: "

var (
	refusedTermCeiling = &refusal{"term_ceiling",
		errors.New(refusalPrefix + "term too close to the end of the term space")}
	refusedTermJump = &refusal{"term_jump",
		errors.New(refusalPrefix + "term too far ahead of this server's")}
	refusedLogTerm = &refusal{"log_term_ahead",
		errors.New(refusalPrefix + "log term ahead of the request's term")}
	refusedLeaderAlive = &refusal{"leader_alive",
		errors.New(refusalPrefix + "TimeoutNow not from the leader, which this server still hears")}
	refusedBusy = &refusal{"busy",
		errors.New(refusalPrefix + "too many TimeoutNow requests under check")}
)

// guardRefused reports whether err, returned by a raft RPC to a peer, is
// that peer's guard refusing it: an answer, not a failed connection.
func guardRefused(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), refusalPrefix)
}

// errGuardClosed answers RPCs still in the guard when it stops.
var errGuardClosed = raft.ErrTransportShutdown

func (g *raftGuard) run() {
	defer close(g.stopped)
	in := g.inner.Consumer()
	for {
		select {
		case rpc := <-in:
			g.dispatch(rpc)
		case <-g.closed:
			return
		case <-g.done:
			return
		}
	}
}

// dispatch checks one RPC from the inner transport and forwards or
// refuses it.
func (g *raftGuard) dispatch(rpc raft.RPC) {
	if req, ok := rpc.Command.(*raft.TimeoutNowRequest); ok {
		g.timeoutNow(rpc, req)
		return
	}
	r, term := g.checkRequest(rpc.Command)
	if r == nil {
		if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok &&
			(len(req.Entries) > 0 || req.PrevLogEntry > 0 || req.LeaderCommitIndex > 0) {
			g.view.Replicated(req.LeaderCommitIndex)
		}
		g.forward(rpc)
		return
	}
	if rpc.Reader != nil {
		// InstallSnapshot: the snapshot follows the request on the
		// connection, and the transport reads the next request right
		// after our answer. Consume it first, as raft's installSnapshot
		// does, or the connection would read snapshot bytes as a
		// request. Off the dispatch goroutine: it can be large.
		go func() {
			_, _ = io.Copy(io.Discard, rpc.Reader)
			g.refuse(rpc, "", r, term)
		}()
		return
	}
	g.refuse(rpc, "", r, term)
}

// forward hands an accepted RPC to raft.
func (g *raftGuard) forward(rpc raft.RPC) {
	select {
	case g.out <- rpc:
	case <-g.closed:
		rpc.Respond(nil, errGuardClosed)
	case <-g.done:
		rpc.Respond(nil, errGuardClosed)
	}
}

// timeoutNow applies rule 2. Only the LeaderGone check leaves the
// dispatch goroutine, since it may probe the network.
func (g *raftGuard) timeoutNow(rpc raft.RPC, req *raft.TimeoutNowRequest) {
	if cur := g.view.CurrentTerm(); cur >= termCeiling-1 {
		g.refuse(rpc, "", refusedTermCeiling, cur)
		return
	}
	leader := g.view.LeaderID()
	if leader == "" || string(req.ID) == leader {
		g.forward(rpc)
		return
	}
	if g.pending.Add(1) > maxPendingTimeoutNow {
		g.pending.Add(-1)
		g.refuse(rpc, "", refusedBusy, g.view.CurrentTerm())
		return
	}
	go func() {
		defer g.pending.Add(-1)
		gone := g.view.LeaderGone()
		// A different leader elected meanwhile makes the request stale.
		if now := g.view.LeaderID(); gone && (now == "" || now == leader || now == string(req.ID)) {
			g.forward(rpc)
			return
		}
		g.refuse(rpc, "", refusedLeaderAlive, g.view.CurrentTerm())
	}()
}

// checkRequest applies rule 1 (and rule 3, which is rule 1) to a request
// other than TimeoutNow; nil means accept. It allocates nothing.
func (g *raftGuard) checkRequest(cmd any) (*refusal, uint64) {
	switch req := cmd.(type) {
	case *raft.AppendEntriesRequest:
		if r := g.checkTerm(req.Term); r != nil {
			return r, req.Term
		}
		if req.PrevLogTerm > req.Term {
			return refusedLogTerm, req.Term
		}
		for _, e := range req.Entries {
			if e != nil && e.Term > req.Term {
				return refusedLogTerm, req.Term
			}
		}
		return nil, 0
	case *raft.RequestVoteRequest:
		// LeadershipTransfer or not: rule 1 only (rule 3).
		return g.checkTerm(req.Term), req.Term
	case *raft.RequestPreVoteRequest:
		return g.checkTerm(req.Term), req.Term
	case *raft.InstallSnapshotRequest:
		if r := g.checkTerm(req.Term); r != nil {
			return r, req.Term
		}
		if req.LastLogTerm > req.Term {
			return refusedLogTerm, req.Term
		}
		return nil, 0
	}
	// Anything else is raft's to refuse (processRPC answers unknown
	// commands itself).
	return nil, 0
}

// checkTerm is rule 1 for a term seen in a request or a response.
func (g *raftGuard) checkTerm(term uint64) *refusal {
	if term >= termCeiling {
		return refusedTermCeiling
	}
	if cur := g.view.CurrentTerm(); term > cur && term-cur > maxTermJump {
		return refusedTermJump
	}
	return nil
}

// refuse answers rpc with r's error and logs it. name overrides the RPC
// type in the log (the heartbeat fast path).
func (g *raftGuard) refuse(rpc raft.RPC, name string, r *refusal, term uint64) {
	if name == "" {
		name = rpcName(rpc.Command)
	}
	var from string
	if h, ok := rpc.Command.(raft.WithRPCHeader); ok {
		from = string(h.GetRPCHeader().ID)
	}
	// Log first: whoever sees the refusal can then find its line.
	g.logRefusal("raft_rpc_refused", name, from, term, r)
	rpc.Respond(nil, r.err)
}

func (g *raftGuard) logRefusal(event, name, from string, term uint64, r *refusal) {
	ok, suppressed := g.allowLog(time.Now())
	if !ok {
		return
	}
	args := []any{"event", event, "rpc", name, "from", from, "term", term, "reason", r.reason,
		"current_term", g.view.CurrentTerm()}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	g.log.Warn("raft: "+name+" refused", args...)
}

// allowLog is the refusal log's rate limit. It returns whether to log
// now and how many lines were suppressed since the last one logged.
func (g *raftGuard) allowLog(now time.Time) (bool, int) {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	if now.Sub(g.logWindow) >= refusalLogWindow {
		g.logWindow, g.logged = now, 0
	}
	if g.logged >= refusalLogBurst {
		g.suppressed++
		return false, 0
	}
	g.logged++
	n := g.suppressed
	g.suppressed = 0
	return true, n
}

func rpcName(cmd any) string {
	switch cmd.(type) {
	case *raft.AppendEntriesRequest:
		return "AppendEntries"
	case *raft.RequestVoteRequest:
		return "RequestVote"
	case *raft.RequestPreVoteRequest:
		return "RequestPreVote"
	case *raft.InstallSnapshotRequest:
		return "InstallSnapshot"
	case *raft.TimeoutNowRequest:
		return "TimeoutNow"
	}
	return "unknown"
}

// checkResponse applies rule 1 to the term of a response to one of our
// own calls; a refused one becomes the call's error (raft then treats the
// peer as unreachable for this call, and adopts nothing).
func (g *raftGuard) checkResponse(name string, h raft.RPCHeader, term uint64) error {
	r := g.checkTerm(term)
	if r == nil {
		return nil
	}
	g.logRefusal("raft_response_refused", name, string(h.ID), term, r)
	return r.err
}

// Consumer is the accepted RPCs.
func (g *raftGuard) Consumer() <-chan raft.RPC { return g.out }

// SetHeartbeatHandler installs cb behind the guard on the transport's
// heartbeat fast path, which bypasses Consumer.
func (g *raftGuard) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.inner.SetHeartbeatHandler(nil)
		return
	}
	g.inner.SetHeartbeatHandler(func(rpc raft.RPC) {
		if r, term := g.checkRequest(rpc.Command); r != nil {
			g.refuse(rpc, "Heartbeat", r, term)
			return
		}
		cb(rpc)
	})
}

// AppendEntries implements raft.Transport.
func (g *raftGuard) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if g.opener != nil && opensTerm(args) {
		g.opener(args)
	}
	if err := g.inner.AppendEntries(id, target, args, resp); err != nil {
		return err
	}
	return g.checkResponse("AppendEntries", resp.RPCHeader, resp.Term)
}

// RequestVote implements raft.Transport.
func (g *raftGuard) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if err := g.inner.RequestVote(id, target, args, resp); err != nil {
		return err
	}
	return g.checkResponse("RequestVote", resp.RPCHeader, resp.Term)
}

// RequestPreVote implements raft.WithPreVote.
func (g *raftGuard) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if err := g.inner.RequestPreVote(id, target, args, resp); err != nil {
		return err
	}
	return g.checkResponse("RequestPreVote", resp.RPCHeader, resp.Term)
}

// InstallSnapshot implements raft.Transport.
func (g *raftGuard) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if err := g.inner.InstallSnapshot(id, target, args, resp, data); err != nil {
		return err
	}
	return g.checkResponse("InstallSnapshot", resp.RPCHeader, resp.Term)
}

// TimeoutNow implements raft.Transport.
func (g *raftGuard) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return g.inner.TimeoutNow(id, target, args, resp)
}

// AppendEntriesPipeline implements raft.Transport.
func (g *raftGuard) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	return g.inner.AppendEntriesPipeline(id, target)
}

// LocalAddr implements raft.Transport.
func (g *raftGuard) LocalAddr() raft.ServerAddress { return g.inner.LocalAddr() }

// EncodePeer implements raft.Transport.
func (g *raftGuard) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return g.inner.EncodePeer(id, addr)
}

// DecodePeer implements raft.Transport.
func (g *raftGuard) DecodePeer(b []byte) raft.ServerAddress { return g.inner.DecodePeer(b) }

// Close implements raft.WithClose: it stops the guard and closes the
// inner transport. Safe to call more than once.
func (g *raftGuard) Close() error {
	g.once.Do(func() { close(g.closed) })
	err := g.inner.Close()
	<-g.stopped
	return err
}
