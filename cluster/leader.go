package cluster

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// leaderDuties runs while this server leads and its barrier has applied:
// judging node liveness and scheduling pending tasks. Both propose
// ordinary Raft entries; nothing here changes state directly.
func (s *Server) leaderDuties(stop <-chan struct{}) {
	lv := newLiveness(s.cfg.Liveness, s.clock)
	s.liveMu.Lock()
	s.live = lv
	s.liveMu.Unlock()
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

	judge := time.NewTicker(s.cfg.Liveness.MinInterval / 4)
	defer judge.Stop()
	sched := time.NewTicker(time.Second)
	defer sched.Stop()
	for {
		watch := s.fsm.WatchCh()
		s.schedule(lv)
		select {
		case <-stop:
			return
		case <-judge.C:
			s.judge(lv)
		case <-watch:
		case <-sched.C:
		}
	}
}

// judge proposes the liveness changes the tracker asks for.
func (s *Server) judge(lv *liveness) {
	for _, ch := range lv.Judge(s.fsm.Nodes()) {
		e := &fsm.NodeStatusEntry{NodeID: ch.NodeID, Status: ch.To, Time: s.clock.Now().UnixNano()}
		if err := s.propose(e); err != nil {
			s.log.Warn("liveness: status change not committed", "node", ch.NodeID, "to", ch.To, "err", err)
			return
		}
		s.log.Info("node status changed", "event", "node_status", "node", ch.NodeID, "from", ch.From, "to", ch.To)
	}
}

// scheduleWindow is how many of the oldest pending tasks one round looks
// at: more than it can assign, so tasks whose cloud has no room do not
// starve the ones behind them, but never the whole backlog.
const scheduleWindow = 4 * maxAssignPerRound

// schedule runs one scheduling round. It is cheap when there is nothing
// to do: without free capacity on an eligible node it returns before
// looking at pending tasks, however many there are.
func (s *Server) schedule(lv *liveness) {
	var nodes []*fsm.Node
	free := 0
	for _, n := range s.fsm.Nodes() {
		if n.Status == fsm.NodeHealthy && !lv.Draining(n.ID) {
			if room := n.Capacity - s.fsm.HeldCount(n.ID); room > 0 {
				nodes = append(nodes, n)
				free += room
			}
		}
	}
	if free == 0 {
		return
	}
	pending := s.fsm.OldestTasks(fsm.TaskPending, scheduleWindow)
	if len(pending) == 0 {
		return
	}
	as := plan(pending, nodes, s.fsm.HeldCount, func(*fsm.Node) bool { return true }, maxAssignPerRound)
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
	assigned := 0
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
	s.log.Debug("scheduler: round done", "assigned", assigned, "pending", len(pending))
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
