package cluster

import (
	"context"
	"errors"
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
// rules were tightened) is worked off over several rounds, never in one
// long burst of writes.
const maxRetireBatchesPerRound = 20

// retireLoop retires finished tasks by the retention rules while this
// server leads.
func (s *Server) retireLoop(stop <-chan struct{}) {
	rc := s.cfg.Retention
	if rc.Disabled {
		return
	}
	t := time.NewTicker(rc.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, _, err := s.retire(s.ctx, rc.MaxAge, rc.MaxPerStatus, "retention", maxRetireBatchesPerRound); err != nil {
			s.log.Warn("retention: retirement round failed; retrying next round", "err", err)
		}
	}
}

// RetireNow retires, at once, every finished task that finished more than
// olderThan ago, through the leader (this server). It returns how many
// were retired and the index of the last retire entry.
func (s *Server) RetireNow(ctx context.Context, olderThan time.Duration) (int, uint64, error) {
	if s.raft.State() != raft.Leader {
		return 0, 0, raft.ErrNotLeader
	}
	if olderThan <= 0 {
		return 0, 0, errors.New("older-than must be positive")
	}
	return s.retire(ctx, olderThan, 0, "manual", 0)
}

// retire proposes retire entries of at most fsm.MaxRetireBatch tasks
// each, for tasks the rules select at this moment, until none is left or
// maxBatches (0: no bound) entries were proposed. Every retired task is
// logged with its final status and result.
func (s *Server) retire(ctx context.Context, maxAge time.Duration, maxPerStatus int, reason string, maxBatches int) (int, uint64, error) {
	retired, index := 0, uint64(0)
	for batch := 0; maxBatches == 0 || batch < maxBatches; batch++ {
		if err := ctx.Err(); err != nil {
			return retired, index, err
		}
		now := s.clock.Now().UnixNano()
		ids := s.fsm.RetireCandidates(now, maxAge, maxPerStatus, fsm.MaxRetireBatch)
		if len(ids) == 0 {
			break
		}
		data, err := fsm.EncodeEntry(&fsm.RetireTasksEntry{TaskIDs: ids, Time: now, Reason: reason})
		if err != nil {
			return retired, index, err
		}
		f := s.raft.Apply(data, proposeTimeout)
		if err := f.Error(); err != nil {
			return retired, index, err
		}
		res, _ := f.Response().(*fsm.ApplyResult)
		if res == nil || res.Err != nil {
			return retired, index, errors.Join(errors.New("retire entry refused"), res.Err)
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
	return retired, index, nil
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
