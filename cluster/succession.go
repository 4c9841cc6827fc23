package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/rpc"
)

// Succession: rctl chooses who stands for election after losing a
// leader, on evidence, and lets raft do the voting.
//
// hashicorp/raft notices a lost leader only when a follower's heartbeat
// timer fires (HeartbeatTimeout to twice that after the last contact), and
// its voters refuse (pre-)votes while they still know a leader. Across
// clouds an election needs a cross-cloud vote per round, and candidates
// in two clouds kept disrupting each other's elections: bench/peer saw
// eight terms pass in 7.6 s before one won (docs/operations.md,
// "Failover: succession").
//
// Every server computes the same order of successors to a lost leader:
// voters of the preferred leader cloud first (placement.go), then the
// others, each group by id. The first stands; the next one successionGap
// later if no leader has appeared and no election started, and so on. Two kinds of
// evidence start it:
//
//   - the leader's process is gone: its raft connections to us closed and
//     its port refuses (a crash, kill -9, a stopping server); no other
//     confirmation is needed, the first successor stands at once;
//   - the leader is silent (profiles with SuccessionSilence, i.e. wan): we
//     have not heard from it for that long, and neither has a quorum of
//     voters when asked; the first successor then names the silent voter
//     with the longest log. One cut-off follower can never unseat a
//     leader the others still hear.
//
// A successor stands through raft's leadership-transfer path
// (TimeoutNow): no pre-vote, and voters grant the vote although they
// still know the old leader. Voters still refuse a candidate whose log is
// behind theirs and vote once per term, so succession changes who stands
// first, never what raft considers safe. raft's own timeouts remain the
// fallback.

// leaderProbeTimeout bounds the dial that tells a dead leader process (the
// dial is refused) from a live one (it connects) or an unknown state (it
// times out, e.g. the host is gone or cut off; raft's timers decide).
func (s *Server) leaderProbeTimeout() time.Duration { return s.timing.HeartbeatTimeout }

// succession is what an attempt to stand came to.
type succession int

const (
	notTried    succession = iota // nothing asked (not next in line, or things moved on)
	unconfirmed                   // a quorum still hears the leader, or the successor could not be asked
	stood                         // a successor was asked to stand
)

// successionRecheck is how soon a follower asks the voters again after
// they did not confirm that the leader is silent.
const successionRecheck = 250 * time.Millisecond

// successionRetry is how soon watchLeader looks again when an attempt
// tried nothing (another attempt was running, or raft moved on meanwhile)
// and the leader is still silent.
const successionRetry = 20 * time.Millisecond

// watchedConn reports the first read error on an accepted raft connection.
type watchedConn struct {
	net.Conn
	once   sync.Once
	closed func()
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(c.closed)
	}
	return n, err
}

// raftConnClosed runs when a peer's raft connection to this server ends.
// A follower then checks, once at a time, whether its leader's process is
// gone.
func (s *Server) raftConnClosed() {
	select {
	case <-s.shutdownCh:
		return
	default:
	}
	if s.raft == nil || s.raft.State() != raft.Follower {
		return
	}
	addr, id := s.raft.LeaderWithID()
	if addr == "" {
		// A candidate's vote request may have cleared the leader before
		// the leader's connection was seen to close (the first successor
		// stood at once): probe the leader we last knew, if that was
		// recent, so that the next successors still take their turns.
		addr, id = s.recentLeader()
	}
	if addr == "" || !s.probing.CompareAndSwap(false, true) {
		s.log.Debug("raft connection closed; no leader probe", "leader", string(addr), "probing", s.probing.Load())
		return
	}
	s.goFunc(func() { s.succeedIfLeaderGone(addr, id) })
}

// leaderProcessGone dials the leader's port. Refused, or reset, means its
// process is gone. A connection that opens may still belong to a process
// that is exiting (it closes its raft connections before its listener):
// the probe then waits a moment, sending nothing, for the connection to
// be reset or closed; a live server keeps it open (its mux waits for the
// first byte). A dial that times out proves nothing.
func (s *Server) leaderProcessGone(addr raft.ServerAddress) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.leaderProbeTimeout())
	c, err := s.cfg.Dial(ctx, string(addr))
	cancel()
	if err != nil {
		s.log.Debug("leader probe", "leader", string(addr), "err", err)
		return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(leaderProbeHold))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	alive := errors.As(err, &ne) && ne.Timeout()
	s.log.Debug("leader probe connected", "leader", string(addr), "then", err, "alive", alive)
	return !alive
}

// leaderProbeHold is how long a probe that connected waits to see the
// connection reset by an exiting process.
const leaderProbeHold = 100 * time.Millisecond

// succeedIfLeaderGone probes the leader and, if its process is gone and
// this server is next in the order of successors, stands for election.
func (s *Server) succeedIfLeaderGone(addr raft.ServerAddress, id raft.ServerID) {
	gone := s.leaderProcessGone(addr)
	s.probing.Store(false)
	if !gone {
		return
	}
	s.noteLeaderGone(id)
	s.succeed(id, false)
}

// successionGap is how long each successor waits after the one before it
// in the order stands: longer than a successor's election takes (TimeoutNow
// and one round of votes, across clouds at worst), and well short of raft's
// own election timers (HeartbeatTimeout to twice that after the last
// contact). A whole ElectionTimeout per rank made the second successor
// stand just as raft's random candidates did: with the first successor
// silent (restarted a moment before, it had not seen the leader's
// connection close), votes split and a wan failover took 5.5 s.
func (s *Server) successionGap() time.Duration { return s.timing.ElectionTimeout / 3 }

// electionGrace is how long a later successor gives an election an
// earlier one started before it stands itself: two gaps, well above the
// ≈0.3 s a successor's election takes across clouds (a vote from the other
// cloud) and well below raft's own timers.
func (s *Server) electionGrace() time.Duration { return 2 * s.successionGap() }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// recentLeaderWindow is how long after losing sight of a leader a closed
// raft connection still makes this server probe it.
func (s *Server) recentLeaderWindow() time.Duration { return 2 * s.timing.ElectionTimeout }

// rememberLeader records the last leader this server knew (observe).
func (s *Server) rememberLeader(addr raft.ServerAddress, id raft.ServerID) {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	s.lastLeaderAddr, s.lastLeaderID = addr, id
}

// recentLeader is the last leader this server knew, if it lost sight of
// it within recentLeaderWindow; else "".
func (s *Server) recentLeader() (raft.ServerAddress, raft.ServerID) {
	if time.Since(s.LastLeaderChange()) > s.recentLeaderWindow() {
		return "", ""
	}
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	return s.lastLeaderAddr, s.lastLeaderID
}

// noteLeaderGone records that this server found leader id's process gone,
// so the raft guard accepts the TimeoutNow that succession then sends
// without probing the leader again (guardView.LeaderGone).
func (s *Server) noteLeaderGone(id raft.ServerID) {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	s.goneID, s.goneAt = id, time.Now()
}

// CurrentTerm is raft's current term (0 before raft starts): guardView.
func (s *Server) CurrentTerm() uint64 {
	if r := s.raftReady.Load(); r != nil {
		return r.CurrentTerm()
	}
	return 0
}

// LeaderID is the leader this server knows, "" if none: guardView.
func (s *Server) LeaderID() string {
	if r := s.raftReady.Load(); r != nil {
		_, id := r.LeaderWithID()
		return string(id)
	}
	return ""
}

// LeaderGone reports whether this server, on its own evidence, has lost
// the leader it knows: its succession found the leader's process gone a
// moment ago, it has not heard from the leader for as long as its own
// succession waits, or a probe of the leader's port is refused now.
// Never true while this server leads. guardView.
func (s *Server) LeaderGone() bool {
	r := s.raftReady.Load()
	if r == nil || r.State() == raft.Leader {
		return false
	}
	addr, id := r.LeaderWithID()
	if id == "" {
		return true
	}
	s.goneMu.Lock()
	recent := s.goneID == id && time.Since(s.goneAt) < s.timing.ElectionTimeout
	s.goneMu.Unlock()
	if recent {
		return true
	}
	silence := s.timing.SuccessionSilence
	if silence <= 0 {
		silence = s.timing.HeartbeatTimeout
	}
	if lc := r.LastContact(); lc.IsZero() || time.Since(lc) > silence {
		return true
	}
	return s.leaderProcessGone(addr)
}

// succeed makes this server stand for election in place of the leader
// gone, if it is next in the order of successors: at once as the first
// successor, else one election timeout per place ahead of it, as long as
// nothing has moved on meanwhile. gone is "" when no leader is known
// (cold start). With confirm, the leader only went silent: this server
// stands only if a quorum of voters (itself included) has not heard from
// it either, so one cut-off follower cannot unseat a leader the others
// still hear.
func (s *Server) succeed(gone raft.ServerID, confirm bool) succession {
	if !s.succMu.TryLock() {
		return notTried // another attempt is under way
	}
	defer s.succMu.Unlock()
	voters, clouds, ok := s.voters()
	if !ok {
		return notTried
	}
	rank := s.successorRank(voters, clouds, gone)
	if rank < 0 {
		return notTried
	}
	if !confirm {
		if why := s.notReady(voters, gone); why != "" {
			// Voters holding entries this server lacks would refuse it
			// their votes, and the next successor would stand only at its
			// turn, successionGap later; vote requests without a ready
			// connection pay the TCP and TLS handshakes first, two more
			// round trips across clouds. Both happen to a server restarted
			// a moment before (kill -9 rounds of ≈0.8 s instead of ≈0.3 s
			// in TestLeaderKillFailover). The first successor hands its
			// turn on at once instead; a later one leaves it to the
			// others, as before.
			s.log.Info("leader lost, but this server is not ready to win an election at once; leaving it to the next successor",
				"event", "leader_gone", "leader_id", string(gone), "successor_rank", rank, "why", why)
			if rank == 0 {
				return s.passTurn(voters, clouds, gone)
			}
			return notTried
		}
	}
	t := s.newTurn(gone, confirm, rank)
	if !confirm {
		s.log.Info("leader's process is gone (its port refuses connections)", "event", "leader_gone",
			"leader_id", string(gone), "successor_rank", rank, "stand_in", time.Until(t.at).Round(time.Millisecond).String())
	}
	if !t.await() {
		return notTried
	}
	if !t.termRose.IsZero() {
		s.log.Info("an earlier successor's election produced no leader; standing", "event", "leader_gone",
			"leader_id", string(gone), "successor_rank", rank, "term", s.raft.CurrentTerm(),
			"waited", time.Since(t.termRose).Round(time.Millisecond).String(),
			"candidate_behind", s.staleCandidateTerm.Load() >= s.raft.CurrentTerm())
	}
	if !confirm {
		return s.standFor(gone, peerState{id: s.cfg.NodeID, addr: s.cfg.Advertise}, rank, "port refused")
	}
	t0 := time.Now()
	n, need, best, contested := s.quorumSilent(voters, s.successionOrder(voters, clouds, gone), gone, t.startTerm)
	if contested || n < need {
		// contested: a voter is at a newer term already, an election is
		// under way (another successor stood a moment ago, e.g. at a cold
		// start whose servers started apart).
		return unconfirmed
	}
	// The silent voter with the longest log stands: it is the one the
	// others will vote for (this one, unless it is behind).
	s.log.Info("leader silent for a quorum of voters", "event", "leader_gone", "leader_id", string(gone),
		"silent_voters", n, "quorum", need, "successor_rank", rank, "stands", best.id,
		"last_contact", timeOrNone(s.raft.LastContact()), "noticed", timeOrNone(time.Unix(0, s.silenceNoticed.Load())),
		"confirm_took", time.Since(t0).Round(time.Millisecond).String())
	if t.movedOn() {
		return unconfirmed
	}
	if out := s.standFor(gone, best, rank, "quorum silent"); out == stood {
		return stood
	}
	return unconfirmed // the successor could not be asked
}

// notReady says why this server, first in line after a gone leader
// process, should not stand itself, "" if it should: its log may be behind
// (logBehind) or it could not ask enough voters without dialling
// (coldVotes).
func (s *Server) notReady(voters []raft.Server, gone raft.ServerID) string {
	if why := s.logBehind(); why != "" {
		return why
	}
	return s.coldVotes(voters, gone)
}

// turn is one successor's wait for its place in the order: it stands only
// if nothing moves on meanwhile (still a follower, no new leader heard of,
// and, for silence, still no word from the old one).
//
// A higher term means an earlier successor's election started: standing
// at once would only disrupt it. On silence the attempt ends there
// (watchLeader asks again shortly). On a gone process nothing asks again,
// so this successor gives that election electionGrace to produce a leader
// and stands if none appears: a first successor whose log is behind
// (restarted a moment before) is refused its votes and stays a candidate
// until its own timer, and the others used to wait for raft's timers too
// (kill -9 failovers of 2.1 s instead of 0.8). The grace is not given to
// a candidate whose log is behind this server's (staleCandidateTerm): this
// server refuses it its vote, and so does every voter holding the entries
// it lacks, which are a majority when they are committed; it would stay a
// candidate until raft's own timer.
type turn struct {
	s         *Server
	gone      raft.ServerID
	confirm   bool
	startTerm uint64
	at        time.Time // this successor's place: rank × successionGap from now
	deadline  time.Time // at, or later while an earlier successor's election runs
	termRose  time.Time // when a higher term was first seen (zero: not yet)
}

func (s *Server) newTurn(gone raft.ServerID, confirm bool, rank int) *turn {
	at := time.Now().Add(time.Duration(rank) * s.successionGap())
	return &turn{s: s, gone: gone, confirm: confirm, startTerm: s.raft.CurrentTerm(), at: at, deadline: at}
}

// movedOn reports whether things moved on so that this successor must not
// stand, and pushes the deadline back while an earlier successor's
// election runs.
func (t *turn) movedOn() bool {
	r := t.s.raft
	_, cur := r.LeaderWithID()
	if r.State() != raft.Follower || (cur != "" && cur != t.gone) {
		return true
	}
	if term := r.CurrentTerm(); term > t.startTerm {
		if t.confirm {
			return true
		}
		if t.termRose.IsZero() {
			t.termRose = time.Now()
		}
		t.deadline = later(t.at, t.termRose.Add(t.s.electionGrace()))
		if t.s.staleCandidateTerm.Load() >= term {
			t.deadline = t.at
		}
		return false
	}
	return t.confirm && !t.s.leaderSilent()
}

// await waits for raft to move (a state or leader change, a vote request:
// raftMoved) or the deadline, rechecking every successionRecheck in case
// raft dropped an observation; true when the turn came with nothing moved
// on. Contact resumed with the old leader has no event; it is checked at
// the deadline, before standing.
func (t *turn) await() bool {
	wake := time.NewTimer(0)
	defer wake.Stop()
	for {
		moved := t.s.raftMoved.watch()
		if t.movedOn() {
			return false
		}
		left := time.Until(t.deadline)
		if left <= 0 {
			return true
		}
		wake.Reset(min(left, successionRecheck))
		select {
		case <-t.s.shutdownCh:
			return false
		case <-moved:
		case <-wake.C:
		}
	}
}

// standFor asks p (possibly this server) to stand for election in the
// lost leader gone's place: stood, or unconfirmed if the request failed.
func (s *Server) standFor(gone raft.ServerID, p peerState, rank int, evidence string) succession {
	t0 := time.Now()
	if err := s.timeoutNow(p); err != nil {
		s.log.Warn("asking a successor to stand failed", "successor", p.id, "err", err)
		return unconfirmed
	}
	s.lastSuccessor.Store(p.id)
	s.metrics.succession()
	s.log.Info("successor stands for election in place of the lost leader", "event", "succession",
		"leader_id", string(gone), "successor", p.id, "successor_rank", rank,
		"evidence", evidence, "stand_took", time.Since(t0).Round(time.Millisecond).String())
	return stood
}

// Replicated records an AppendEntries of a leader's replication stream
// (not a bare heartbeat) and the leader's commit index it carried:
// guardView, called by the raft guard for every accepted one.
func (s *Server) Replicated(leaderCommit uint64) {
	s.replicatedAt.Store(time.Now().UnixNano())
	storeMax(&s.replicatedCommit, leaderCommit)
}

// replicationLag is how much older than the leader's last word (a
// heartbeat, raft.Raft.LastContact) its last replication request may be
// while this server is in step. A leader's replication stream sends an
// AppendEntries at least every 2×CommitTimeout, entries or not; heartbeats
// come every HeartbeatTimeout/10. A leader catching a follower up, or
// backing off after failures to reach it (a restart: raft waits up to
// seconds between attempts), keeps sending heartbeats only.
func (s *Server) replicationLag() time.Duration {
	return max(4*s.timing.CommitTimeout, s.timing.HeartbeatTimeout/5)
}

// logBehind says why this server's log may lack entries the lost leader
// committed, "" if nothing suggests it. raft's own CommitIndex cannot
// tell: a follower caps it at its own log, and a restarted server starts
// at 0.
func (s *Server) logBehind() string {
	at := s.replicatedAt.Load()
	if at == 0 {
		return "no replication from a leader since this server started"
	}
	if last, commit := s.raft.LastIndex(), s.replicatedCommit.Load(); last < commit {
		return fmt.Sprintf("log ends at %d, the leader's commit index was %d", last, commit)
	}
	if gap := s.raft.LastContact().Sub(time.Unix(0, at)); gap > s.replicationLag() {
		return fmt.Sprintf("the leader's last replication request came %s before its last heartbeat", gap.Round(time.Millisecond))
	}
	return ""
}

// coldVotes says why this server could not ask enough voters for their
// votes without dialling first, "" if it can: it holds a ready raft
// connection (warm.go) to fewer of the other live voters than a majority
// needs besides its own vote. Only a server that started moments ago
// (before its first ready connections were handshaken) or whose peers
// just restarted is without them.
func (s *Server) coldVotes(voters []raft.Server, gone raft.ServerID) string {
	if s.mux.warm == nil {
		return ""
	}
	need := len(voters) / 2 // votes needed besides this server's own
	ready := 0
	for _, v := range voters {
		if v.ID == gone || v.ID == raft.ServerID(s.cfg.NodeID) {
			continue
		}
		if s.mux.warm.has(string(v.Address)) {
			ready++
		}
	}
	if ready >= need {
		return ""
	}
	return fmt.Sprintf("ready connections to %d voters, a vote needs %d", ready, need)
}

// passTurn asks the second successor in the order to stand now, in this
// first successor's place (its log may be behind: logBehind). The second
// successor's guard accepts the TimeoutNow once it, too, finds the leader
// gone; if it refuses, or the request fails, the successors' turns go on
// as before.
func (s *Server) passTurn(voters []raft.Server, clouds []string, gone raft.ServerID) succession {
	order := s.successionOrder(voters, clouds, gone)
	if len(order) < 2 {
		return notTried
	}
	next := peerState{id: string(order[1])}
	for _, v := range voters {
		if v.ID == order[1] {
			next.addr = string(v.Address)
		}
	}
	return s.standFor(gone, next, 1, "port refused; handed over by the first successor")
}

// timeoutNow sends raft's TimeoutNow to p (possibly this server): it
// starts an election at once, as a leader handing over would make it.
func (s *Server) timeoutNow(p peerState) error {
	id, addr := raft.ServerID(p.id), raft.ServerAddress(p.addr)
	self := raft.ServerAddress(s.cfg.Advertise)
	req := raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(s.cfg.NodeID), Addr: s.trans.EncodePeer(raft.ServerID(s.cfg.NodeID), self),
	}}
	var resp raft.TimeoutNowResponse
	err := s.trans.TimeoutNow(id, addr, &req, &resp)
	if err != nil && !guardRefused(err) {
		// A pooled connection may have gone stale (the transport drops
		// it on error): once more on a fresh one. Not after a refusal:
		// that is the successor's answer (it still hears its leader), and
		// sent again a round trip later the request could find that
		// leader gone and start an election for the one this server
		// judged lost, already replaced (a kill -9 failover of 6 s, with
		// succMu held meanwhile, so this server missed the real loss).
		err = s.trans.TimeoutNow(id, addr, &req, &resp)
	}
	return err
}

// timeOrNone formats a time for the log, "" for none (the zero time or
// the Unix epoch).
func timeOrNone(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// leaderSilent: this follower has heard nothing from a leader for the
// profile's SuccessionSilence (or never has).
func (s *Server) leaderSilent() bool {
	lc := s.raft.LastContact()
	return lc.IsZero() || time.Since(lc) > s.timing.SuccessionSilence
}

// watchLeader runs succession on silence: a follower that has heard
// nothing from its leader (or, at a cold start, from any leader) for
// SuccessionSilence offers to stand. Off when the profile sets no
// SuccessionSilence.
func (s *Server) watchLeader() {
	if s.timing.SuccessionSilence <= 0 {
		return
	}
	t := time.NewTimer(s.timing.SuccessionSilence)
	defer t.Stop()
	var retry time.Time
	moved := s.raftMoved.watch()
	for {
		select {
		case <-s.shutdownCh:
			return
		case <-t.C:
		case <-moved:
		}
		moved = s.raftMoved.watch()
		t.Reset(s.checkSilence(&retry))
	}
}

// checkSilence is one look of watchLeader: it starts an attempt to stand
// when the leader has been silent for SuccessionSilence, and returns when
// to look next (raft moving wakes it earlier): the moment the silence
// would pass the threshold if nothing is heard meanwhile, the end of the
// retry period after an attempt, or SuccessionSilence while this server
// is not a follower (a state change wakes it).
func (s *Server) checkSilence(retry *time.Time) time.Duration {
	silence := s.timing.SuccessionSilence
	if s.raft.State() != raft.Follower {
		s.silenceNoticed.Store(0)
		return silence
	}
	if lc := s.raft.LastContact(); !lc.IsZero() {
		if left := time.Until(lc.Add(silence)); left >= 0 {
			s.silenceNoticed.Store(0)
			return left + time.Millisecond // leaderSilent wants more than silence
		}
	}
	now := time.Now()
	s.silenceNoticed.CompareAndSwap(0, now.UnixNano())
	if now.Before(*retry) {
		return retry.Sub(now)
	}
	_, id := s.raft.LeaderWithID()
	switch s.succeed(id, true) {
	case stood:
		// An election is under way: give it an election timeout.
		*retry = time.Now().Add(s.timing.ElectionTimeout)
	case unconfirmed:
		// Some voters still heard the leader lately; they may not for
		// long (a frozen leader's last heartbeats reach the far cloud
		// later), so ask again soon.
		*retry = time.Now().Add(successionRecheck)
	default:
		return successionRetry
	}
	return time.Until(*retry)
}

// peerState is one voter's answer to quorumSilent.
type peerState struct {
	id, addr  string
	silent    bool
	lastIndex uint64
	electing  bool // at a term above the asker's: an election started
}

// quorumSilent asks the other voters (not gone) whether they have heard
// from a leader within SuccessionSilence. It returns how many voters,
// this one included, have not, how many make a quorum, and the silent
// voter with the longest log among those that answered (this one on a
// tie: the one first in the order of successors), the one most likely to
// win an election. Every server that asks in the same moment so names the
// same successor: at a cold start whose servers started apart, the first
// and second successors' turns can meet, and two candidates would split
// the votes (the one that lost stays a candidate until its election timer
// fires). contested: a voter answered at a term above startTerm, so an
// election is already under way (a candidate only pre-voting keeps its
// term and does not count). It returns as
// soon as a quorum is reached.
func (s *Server) quorumSilent(voters []raft.Server, order []raft.ServerID, gone raft.ServerID, startTerm uint64) (n, need int, best peerState, contested bool) {
	rank := make(map[string]int, len(order))
	for i, id := range order {
		rank[string(id)] = i
	}
	best = peerState{id: s.cfg.NodeID, addr: s.cfg.Advertise, silent: true, lastIndex: s.raft.LastIndex()}
	var others []raft.Server
	for _, srv := range voters {
		if srv.ID != gone && string(srv.ID) != s.cfg.NodeID {
			others = append(others, srv)
		}
	}
	need = len(voters)/2 + 1
	n = 1
	ctx, cancel := context.WithTimeout(s.ctx, s.timing.ElectionTimeout)
	defer cancel()
	answers := make(chan peerState, len(others))
	for _, v := range others {
		go func() {
			var st rpc.StatusReply
			// Held until that voter's own silence passes (or it hears
			// the leader again): the far cloud heard the leader's last
			// word later, so asking once and then again after
			// successionRecheck cost a quarter second more.
			args := rpc.StatusArgs{AwaitSilenceMS: s.timing.SuccessionSilence.Milliseconds()}
			err := s.rpc.Pool().Call(ctx, string(v.Address), rpc.MethodStatus, &args, &st)
			silent := err == nil && st.State == "follower" &&
				(st.LeaderID == "" || (st.LeaderID == string(gone) &&
					(st.LastContactMS < 0 || time.Duration(st.LastContactMS)*time.Millisecond > s.timing.SuccessionSilence)))
			answers <- peerState{id: string(v.ID), addr: string(v.Address), silent: silent, lastIndex: st.LastIndex,
				electing: err == nil && st.Term > startTerm}
		}()
	}
	for range others {
		a := <-answers
		if a.electing {
			return n, need, best, true
		}
		if a.silent {
			n++
			if standsBefore(a, best, rank) {
				best = a
			}
		}
		if n >= need {
			break
		}
	}
	return n, need, best, false
}

// standsBefore reports whether silent voter a rather than b should stand:
// the longer log wins (the others would refuse a shorter one their
// votes), then the earlier place in the order of successors (rank).
func standsBefore(a, b peerState, rank map[string]int) bool {
	if a.lastIndex != b.lastIndex {
		return a.lastIndex > b.lastIndex
	}
	ra, oka := rank[a.id]
	rb, okb := rank[b.id]
	return oka && (!okb || ra < rb)
}

// successorRank is this server's place in the order of successors to the
// gone leader, or -1 if it is not a voter.
func (s *Server) successorRank(voters []raft.Server, clouds []string, gone raft.ServerID) int {
	for i, id := range s.successionOrder(voters, clouds, gone) {
		if id == raft.ServerID(s.cfg.NodeID) {
			return i
		}
	}
	return -1
}

// successionOrder is the order of successors to the gone leader, as every
// server computes it.
func (s *Server) successionOrder(voters []raft.Server, clouds []string, gone raft.ServerID) []raft.ServerID {
	return successionOrder(voters, clouds, preferredCloud(s.cfg.Placement.PreferCloud, clouds), gone)
}

// cloudOf is a server's cloud label: our own from the config, the others'
// from the manifest.
func (s *Server) cloudOf(id raft.ServerID) string {
	if string(id) == s.cfg.NodeID {
		return s.cfg.Cloud
	}
	if lbl := s.fsm.Server(string(id)); lbl != nil {
		return lbl.Cloud
	}
	return ""
}

// successionOrder orders the voters other than gone: those in the
// preferred cloud first, then the rest, each group by id.
func successionOrder(voters []raft.Server, clouds []string, preferred string, gone raft.ServerID) []raft.ServerID {
	type v struct {
		id        raft.ServerID
		preferred bool
	}
	var vs []v
	for i, srv := range voters {
		if srv.ID != gone {
			vs = append(vs, v{srv.ID, preferred != "" && clouds[i] == preferred})
		}
	}
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].preferred != vs[j].preferred {
			return vs[i].preferred
		}
		return vs[i].id < vs[j].id
	})
	out := make([]raft.ServerID, len(vs))
	for i, x := range vs {
		out[i] = x.id
	}
	return out
}

// noteVoteRequest records, from raft's observation of a vote request, a
// candidate whose log is behind this server's by raft's own rule (last
// log term, then index): this server refuses it its vote.
func (s *Server) noteVoteRequest(req raft.RequestVoteRequest) {
	last := s.raft.LastIndex()
	if last == 0 {
		return
	}
	var l raft.Log
	if err := s.logs.GetLog(last, &l); err != nil {
		return // compacted or truncated meanwhile: no verdict
	}
	if req.LastLogTerm < l.Term || (req.LastLogTerm == l.Term && req.LastLogIndex < last) {
		storeMax(&s.staleCandidateTerm, req.Term)
	}
}
