package cluster

import (
	"errors"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Succession: a fast failover when the leader's process dies.
//
// hashicorp/raft notices a dead leader only when a follower's heartbeat
// timer fires (HeartbeatTimeout to twice that after the last contact), and
// its voters refuse (pre-)votes while they still know a leader. On the wan
// profile that made the first candidate wait out a whole election
// timeout, and candidates in two clouds then disrupted each other's
// elections: bench/peer saw eight terms pass in 7.6 s before one won
// (docs/operations.md, "Failover").
//
// When the leader's process dies on a host that stays up, its kernel
// closes the raft connections the leader had open to every follower, and
// a dial to its port is refused. On that evidence exactly one survivor,
// the successor, stands for election at once, through raft's own
// leadership-transfer path (TimeoutNow): no pre-vote, and voters grant
// the vote although they still know the old leader. Every server computes
// the same order of successors: voters of the preferred leader cloud
// first (placement.go), then the others, each group by id. Voters still
// refuse a candidate whose log is behind theirs, so this changes only who
// stands first, never what raft considers safe. If the first successor is
// down too, the next one stands one election timeout later, and so on. A
// host crash, a frozen process or a partition gives no refusal: raft's
// timeouts handle those as before.

// leaderProbeTimeout bounds the dial that tells a dead leader process (the
// dial is refused) from a live one (it connects) or an unknown state (it
// times out, e.g. the host is gone or cut off; raft's timers decide).
func (s *Server) leaderProbeTimeout() time.Duration { return s.timing.HeartbeatTimeout }

// successionPoll is how often a later successor, waiting its turn,
// checks whether an earlier one has been elected.
const successionPoll = 20 * time.Millisecond

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
	if addr == "" || !s.probing.CompareAndSwap(false, true) {
		return
	}
	s.goFunc(func() { s.succeedIfLeaderGone(addr, id) })
}

// succeedIfLeaderGone probes the leader and, if its process is gone and
// this server is next in the order of successors, stands for election.
func (s *Server) succeedIfLeaderGone(addr raft.ServerAddress, id raft.ServerID) {
	c, err := s.mux.faults.dialRaft(string(addr), s.leaderProbeTimeout())
	s.probing.Store(false)
	if err == nil {
		c.Close() // alive: the mux drops a connection that sends nothing
		return
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return
	}
	rank := s.successorRank(id)
	if rank < 0 {
		return
	}
	if last, commit := s.raft.LastIndex(), s.raft.CommitIndex(); last < commit {
		// Behind the commit index we heard of: voters holding those
		// entries would refuse us. The next successor stands instead.
		s.log.Info("leader's process is gone, but this server is behind; leaving the election to the next successor",
			"event", "leader_gone", "leader_id", string(id), "last_index", last, "commit_index", commit)
		return
	}
	wait := time.Duration(rank) * s.timing.ElectionTimeout
	s.log.Info("leader's process is gone (its port refuses connections)", "event", "leader_gone",
		"leader_id", string(id), "successor_rank", rank, "stand_in", wait.String())
	// Stand only if nothing moves on meanwhile: still a follower, and no
	// new leader heard of.
	movedOn := func() bool {
		_, cur := s.raft.LeaderWithID()
		return s.raft.State() != raft.Follower || (cur != "" && cur != id)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-s.shutdownCh:
			return
		case <-time.After(min(successionPoll, time.Until(deadline))):
		}
		if movedOn() {
			return
		}
	}
	if movedOn() {
		return
	}
	self := raft.ServerAddress(s.cfg.Advertise)
	req := raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(s.cfg.NodeID), Addr: s.trans.EncodePeer(raft.ServerID(s.cfg.NodeID), self),
	}}
	var resp raft.TimeoutNowResponse
	if err := s.trans.TimeoutNow(raft.ServerID(s.cfg.NodeID), self, &req, &resp); err != nil {
		s.log.Warn("standing for election after the leader's exit failed", "err", err)
		return
	}
	s.log.Info("standing for election: the leader's process is gone", "event", "succession",
		"leader_id", string(id), "successor_rank", rank)
}

// successorRank is this server's place in the order of successors to the
// gone leader, or -1 if it is not a voter.
func (s *Server) successorRank(gone raft.ServerID) int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return -1
	}
	var voters []raft.Server
	var clouds []string
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters = append(voters, srv)
			clouds = append(clouds, s.cloudOf(srv.ID))
		}
	}
	order := successionOrder(voters, clouds, preferredCloud(s.cfg.Placement.PreferCloud, clouds), gone)
	for i, id := range order {
		if id == raft.ServerID(s.cfg.NodeID) {
			return i
		}
	}
	return -1
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
