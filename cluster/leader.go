package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// scheduleEvery is how often the leader runs a scheduling round when
// nothing in the manifest changed meanwhile (a change starts one at once).
const scheduleEvery = time.Second

// leaderDuties runs while this server leads and its leadership is established:
// judging node liveness and scheduling pending tasks. Both propose
// ordinary Raft entries; nothing here changes state directly.
func (s *Server) leaderDuties(stop <-chan struct{}) {
	lv := newLiveness(s.cfg.Liveness, s.clock)
	s.liveMu.Lock()
	s.live = lv
	s.liveMu.Unlock()
	s.leaderChanged() // established: wake heartbeats waiting for it
	defer func() {
		s.liveMu.Lock()
		s.live = nil
		s.liveMu.Unlock()
	}()

	placed := make(chan struct{})
	go func() {
		defer close(placed)
		s.placementLoop(stop)
	}()
	defer func() { <-placed }()
	retired := make(chan struct{})
	go func() {
		defer close(retired)
		s.retireLoop(stop)
	}()
	defer func() { <-retired }()

	judge := s.clock.NewTicker(s.cfg.Liveness.MinInterval / 4)
	defer judge.Stop()
	sched := s.clock.NewTicker(scheduleEvery)
	defer sched.Stop()
	for {
		watch := s.fsm.WatchCh()
		s.schedule(lv)
		select {
		case <-stop:
			return
		case <-judge.C():
			s.judge(lv)
		case <-watch:
		case <-sched.C():
		}
	}
}

// judge proposes the liveness changes the tracker asks for.
func (s *Server) judge(lv *liveness) {
	for _, ch := range lv.Judge(s.fsm.Nodes()) {
		e := &fsm.NodeStatusEntry{NodeID: ch.NodeID, Status: ch.To, Time: s.clock.Now().UnixNano()}
		held := s.metrics.heldBefore(s, ch.NodeID, ch.To) // what an unreachable verdict requeues
		if err := s.propose(e); err != nil {
			s.log.Warn("liveness: status change not committed", "node", ch.NodeID, "to", ch.To, "err", err)
			return
		}
		s.log.Info("node status changed", "event", "node_status", "node", ch.NodeID, "from", ch.From, "to", ch.To)
		s.metrics.nodeJudged(lv, ch.NodeID, ch.To, held)
	}
}

// schedule runs one scheduling round. It is cheap when there is nothing
// to do: without free capacity on an eligible node it returns before
// looking at pending tasks, however many there are; otherwise it reads
// only the oldest pending tasks that the nodes with room can take (see
// candidateQuotas), never a backlog constrained to a cloud without room.
//
// Each round that finds free capacity ends with one debug line,
// "scheduler: round", whose tasks_index is the task table's index read
// before anything else: the round saw at least that state.
func (s *Server) schedule(lv *liveness) {
	seen := s.fsm.Indexes().Tasks
	var nodes []*fsm.Node
	free := map[string]int{}
	for _, n := range s.fsm.Nodes() {
		if n.Status == fsm.NodeHealthy && lv.Assignable(n.ID) {
			if room := n.Capacity - s.fsm.HeldCount(n.ID); room > 0 {
				nodes = append(nodes, n)
				free[n.Cloud] += room
			}
		}
	}
	quotas := candidateQuotas(free, maxAssignPerRound)
	if len(quotas) == 0 {
		return
	}
	pending := s.fsm.OldestPending(quotas, candidateCap(maxAssignPerRound))
	as := plan(pending, nodes, s.fsm.HeldCount, func(*fsm.Node) bool { return true }, maxAssignPerRound)
	assigned := 0
	defer func() {
		s.log.Debug("scheduler: round", "tasks_index", seen, "candidates", len(pending), "planned", len(as), "assigned", assigned)
	}()
	if len(as) == 0 {
		return
	}
	// Pipeline the entries: issue them all, then wait.
	futs := make([]raft.ApplyFuture, 0, len(as))
	now := s.clock.Now().UnixNano()
	for _, a := range as {
		data, err := fsm.EncodeEntry(&fsm.AssignTaskEntry{TaskID: a.TaskID, NodeID: a.NodeID, Time: now})
		if err != nil {
			s.log.Error("scheduler: encode", "err", err)
			return
		}
		futs = append(futs, s.raft.Apply(data, proposeTimeout))
	}
	for i, f := range futs {
		if err := f.Error(); err != nil {
			s.log.Warn("scheduler: assignment not committed", "task", as[i].TaskID, "err", err)
			return
		}
		if r, ok := f.Response().(*fsm.ApplyResult); ok && r.Err != nil {
			s.log.Debug("scheduler: assignment refused", "task", as[i].TaskID, "node", as[i].NodeID, "err", r.Err)
			continue
		}
		assigned++
	}
}

// proposeTimeout bounds how long a leader duty's write waits to enter
// raft's queue (raft.Apply's enqueue timeout).
const proposeTimeout = 5 * time.Second

// propose applies one entry and returns the fsm's refusal, if any.
func (s *Server) propose(body any) error {
	data, err := fsm.EncodeEntry(body)
	if err != nil {
		return err
	}
	f := s.raft.Apply(data, proposeTimeout)
	if err := f.Error(); err != nil {
		return err
	}
	if r, ok := f.Response().(*fsm.ApplyResult); ok && r.Err != nil {
		return r.Err
	}
	return nil
}
