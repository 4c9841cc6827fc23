package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// A new leader's first AppendEntries to each follower carries its no-op.
//
// hashicorp/raft starts a new leader's replication to each follower just
// before it appends the term's no-op (runLeader: startStopReplication,
// then dispatchLogs), and each replication goroutine builds its first
// AppendEntries at once, while the no-op is still on its way to disk: the
// request carries no entries. The no-op follows only after that round
// trip, on the pipeline. So a leader that holds entries of an earlier
// term it cannot count as committed (after a crash: the old leader's last
// writes) commits them, and the first write of its own term, two round
// trips after its election instead of one; across clouds that is 243 ms
// more on every failover.
//
// openTerm fills that first request. The guard (raftguard.go) hands it
// every outbound AppendEntries without entries whose previous entry is of
// an earlier term than the request's: only a leader that has replicated
// nothing of its term to the follower yet sends one (heartbeats name no
// previous entry; later requests, a previous entry of the current term).
// openTerm waits up to termOpenWait for the log to hold the entry after
// the previous one (the no-op, being stored) and puts the entries after
// the previous one into the request, at most maxAppendEntries, as raft's
// next round would. Raft allows a leader to send any entries of its log
// that follow the request's previous entry. hashicorp/raft takes what the
// follower accepted from the request it sent (updateLastAppended reads
// req.Entries), so the follower's next index moves past them and the
// no-op counts as replicated: the no-op commits one round trip after the
// election. If the log does not grow in time, the request goes as raft
// built it.
func (s *Server) openTerm(req *raft.AppendEntriesRequest) {
	logs := s.logs
	if logs == nil {
		return
	}
	next := req.PrevLogEntry + 1
	timeout := time.NewTimer(termOpenWait)
	defer timeout.Stop()
	var last uint64
	for {
		grew := s.logGrew.watch()
		var err error
		if last, err = logs.LastIndex(); err != nil {
			return
		}
		if last >= next {
			break
		}
		select {
		case <-grew:
		case <-timeout.C:
			return
		case <-s.shutdownCh:
			return
		}
	}
	last = min(last, next+maxAppendEntries-1)
	entries := make([]*raft.Log, 0, last-next+1)
	for i := next; i <= last; i++ {
		l := new(raft.Log)
		if err := logs.GetLog(i, l); err != nil || l.Term > req.Term {
			break // compacted, or (never in a leader's log) a later term: send what precedes it
		}
		entries = append(entries, l)
	}
	if len(entries) > 0 {
		req.Entries = entries
	}
}

// termOpenWait bounds openTerm's wait for the no-op to reach the log: one
// log write (an fsync), far below the round trip it saves.
const termOpenWait = 50 * time.Millisecond

// opensTerm reports whether an outbound AppendEntries is a new leader's
// first to a follower, which openTerm fills: no entries, and a previous
// entry of an earlier term than the request's.
func opensTerm(req *raft.AppendEntriesRequest) bool {
	return len(req.Entries) == 0 && req.PrevLogEntry > 0 && req.PrevLogTerm < req.Term
}
