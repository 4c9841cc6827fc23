package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// RetentionConfig says how long finished tasks (complete, failed,
// cancelled) stay in the manifest. The leader retires them through Raft,
// in batches stamped with its own time, so every server removes the same
// tasks (fsm.RetireTasksEntry).
type RetentionConfig struct {
	// MaxAge retires a task this long after it finished. 0: no age rule.
	// Default 24 h.
	MaxAge time.Duration
	// MaxPerStatus keeps at most this many tasks per finished status,
	// retiring the oldest beyond it. 0: no count rule. Default 100,000.
	MaxPerStatus int
	// Interval is how often the leader looks for tasks to retire.
	// Default 30 s.
	Interval time.Duration
	// Disabled keeps every finished task forever.
	Disabled bool
}

// DefaultRetention returns the defaults documented on RetentionConfig.
func DefaultRetention() RetentionConfig {
	return RetentionConfig{MaxAge: 24 * time.Hour, MaxPerStatus: 100_000, Interval: 30 * time.Second}
}

// maxRetireBatchesPerRound bounds one round: a large backlog (after the
// rules were tightened, or a burst of finished tasks) is worked off over
// several rounds, never in one long burst of writes.
const maxRetireBatchesPerRound = 20

// retireBacklogPause is the pause after a round that stopped at
// maxRetireBatchesPerRound with tasks left to retire (Interval when that
// is shorter). Waiting a whole Interval instead paced retirement at
// 20,000 tasks per Interval (667 a second at the default 30 s), less than
// a cluster finishes tasks at: a steady stream faster than that grew the
// manifest without bound. With the pause a backlog goes at 20,000 tasks
// per round plus a second, and writes still get the pauses.
const retireBacklogPause = time.Second

// retireLoop retires finished tasks by the retention rules while this
// server leads: a round every Interval, and, while a round leaves a
// backlog, the next one after retireBacklogPause.
func (s *Server) retireLoop(stop <-chan struct{}) {
	rc := s.cfg.Retention
	if rc.Disabled {
		return
	}
	t := s.clock.NewTimer(rc.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C():
		}
		_, _, more, err := s.retire(s.ctx, rc.MaxAge, rc.MaxPerStatus, "retention", maxRetireBatchesPerRound)
		if err != nil {
			s.log.Warn("retention: retirement round failed; retrying next round", "err", err)
		}
		next := rc.Interval
		if more && err == nil {
			next = min(rc.Interval, retireBacklogPause)
		}
		t.Reset(next)
	}
}

// RetireNow retires, at once, every finished task that finished more than
// olderThan ago, through the leader (this server). It returns how many
// were retired and the index of the last retire entry.
func (s *Server) RetireNow(ctx context.Context, olderThan time.Duration) (int, uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, 0, raftError(raft.ErrNotLeader)
	}
	if olderThan <= 0 {
		return 0, 0, errors.New("older-than must be positive")
	}
	n, index, _, err := s.retire(ctx, olderThan, 0, "manual", 0)
	return n, index, raftError(err)
}

// retire proposes retire entries of at most fsm.MaxRetireBatch tasks
// each, for tasks the rules select at this moment, until none is left or
// maxBatches (0: no bound) entries were proposed; more reports that it
// stopped at maxBatches. Every retired task is logged with its final
// status and result.
func (s *Server) retire(ctx context.Context, maxAge time.Duration, maxPerStatus int, reason string, maxBatches int) (retired int, index uint64, more bool, err error) {
	for batch := 0; ; batch++ {
		if maxBatches > 0 && batch == maxBatches {
			more = true
			break
		}
		if err := ctx.Err(); err != nil {
			return retired, index, false, err
		}
		now := s.clock.Now().UnixNano()
		ids := s.fsm.RetireCandidates(now, maxAge, maxPerStatus, fsm.MaxRetireBatch)
		if len(ids) == 0 {
			break
		}
		data, err := fsm.EncodeEntry(&fsm.RetireTasksEntry{TaskIDs: ids, Time: now, Reason: reason})
		if err != nil {
			return retired, index, false, err
		}
		f := s.raft.Apply(data, proposeTimeout)
		if err := f.Error(); err != nil {
			return retired, index, false, err
		}
		res, _ := f.Response().(*fsm.ApplyResult)
		if res == nil { // fsm.Apply always answers one; never dereference nil
			return retired, index, false, errors.New("retire entry applied without a result")
		}
		if res.Err != nil {
			return retired, index, false, fmt.Errorf("retire entry refused: %w", res.Err)
		}
		index = res.Index
		retired += len(res.Retired)
		for _, t := range res.Retired {
			s.logRetired(t, reason)
		}
		if len(res.Retired) == 0 {
			break // nothing the rules chose was still there: done
		}
	}
	if retired > 0 {
		s.log.Info("finished tasks retired", "event", "tasks_retired", "count", retired, "reason", reason, "index", index)
	}
	return retired, index, more, nil
}

// logRetired writes the one line that keeps a retired task findable: its
// final status and result.
func (s *Server) logRetired(t *fsm.Task, reason string) {
	args := []any{"event", "task_retired", "task", t.ID, "type", t.Type, "status", string(t.Status),
		"node", t.NodeID, "attempts", t.Attempts, "finished_at", time.Unix(0, t.UpdatedAt).UTC().Format(time.RFC3339Nano),
		"reason", reason}
	if t.Result != nil {
		args = append(args, "exit_code", t.Result.ExitCode)
		if t.Result.Error != "" {
			args = append(args, "error", truncate(t.Result.Error, 200))
		}
	}
	s.log.Info("task retired", args...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
