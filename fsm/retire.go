package fsm

import (
	"math"
	"slices"
	"time"
)

// This file retires finished tasks: the retire_tasks entry (checkX and
// applyX, as for the other entries), the record of recently retired ids,
// and RetireCandidates, which chooses what the leader proposes to retire.

// Retirement limits. Both are part of the state machine's rules: every
// server must use the same values, so changing one needs the care of a
// new entry version.
const (
	// MaxRetireBatch bounds the ids of one retire_tasks entry. It matches
	// MaxBatch: an entry of 1000 ids of MaxIDLen bytes is about 131 KiB
	// (far under MaxEntrySize), and its Apply, which holds the FSM lock,
	// costs about 2 ms on a 1M-task manifest (1000 oldest tasks; 4 ms for
	// 1000 scattered ones; BenchmarkRetire1MTasks), so one entry never
	// stalls the FSM noticeably. One entry a second retires 3.6M tasks an
	// hour, thousands of times the intake of the cluster that motivated
	// retirement (1000 tasks an hour): the leader never falls behind.
	MaxRetireBatch = 1000
	// RetiredMemory is how many retired ids the state remembers (FIFO),
	// so that a client asking for a retired task is told it was retired
	// rather than that it never existed. A record costs about 110 bytes
	// of heap with a 14-byte id (BenchmarkRetiredMemory: the record, its
	// map entry and FIFO slot, and the id, which outlives its task), so a
	// full record is about 10 MiB, under 2% of a 1M-task manifest (~600
	// MiB), and covers 100 hours, four days, of a 1000-tasks-an-hour
	// cluster. Snapshots carry it at about 71 bytes a record (7 MiB full).
	RetiredMemory = 100_000
	// MaxRetireReasonLen bounds RetireTasksEntry.Reason.
	MaxRetireReasonLen = 256
)

// RetiredTask is what the state remembers of a retired task. Like every
// stored object it is never modified once stored.
type RetiredTask struct {
	ID string `codec:"id" json:"id"`
	// Status is the task's final status: complete, failed or cancelled.
	Status TaskStatus `codec:"status" json:"status"`
	// RetiredAt is the retire entry's Time (unix nanoseconds, the
	// proposer's); RetireIndex its log index.
	RetiredAt   int64  `codec:"retired_at" json:"retired_at"`
	RetireIndex uint64 `codec:"retire_index" json:"retire_index"`
}

// retiredRec is a RetiredTask and its position in the FIFO.
type retiredRec struct {
	RetiredTask
	seq uint64 // position in retiredTable.fifo, counted from base
}

// retiredTable is the record of recently retired ids: at most limit of
// them (RetiredMemory), the oldest forgotten first. An id added again as
// a task is forgotten at once (its slot becomes a tombstone), so an id
// is never both a task and retired.
type retiredTable struct {
	byID  map[string]*retiredRec
	fifo  []*retiredRec // oldest first; nil: forgotten
	base  uint64        // seq of fifo[0]
	dead  int           // nil slots in fifo
	limit int
}

func newRetiredTable() retiredTable {
	return retiredTable{byID: make(map[string]*retiredRec), limit: RetiredMemory}
}

func (r *retiredTable) len() int { return len(r.byID) }

// push appends a record, forgetting an older record of the same id
// first (never expected: a retired id is not a task until added again,
// which forgets it).
func (r *retiredTable) push(rt RetiredTask) {
	r.forget(rt.ID)
	rec := &retiredRec{RetiredTask: rt, seq: r.base + uint64(len(r.fifo))}
	r.byID[rt.ID] = rec
	r.fifo = append(r.fifo, rec)
}

// add records a retirement and forgets the oldest records beyond limit.
func (r *retiredTable) add(rt RetiredTask) {
	r.push(rt)
	for len(r.byID) > r.limit {
		rec := r.fifo[0]
		r.fifo[0] = nil
		r.fifo = r.fifo[1:]
		r.base++
		if rec == nil {
			r.dead--
			continue
		}
		delete(r.byID, rec.ID)
	}
	r.trim()
}

// forget drops the record of id, if any.
func (r *retiredTable) forget(id string) {
	rec, ok := r.byID[id]
	if !ok {
		return
	}
	delete(r.byID, id)
	r.fifo[rec.seq-r.base] = nil
	r.dead++
	r.trim()
}

// trim drops leading and trailing tombstones, and compacts the FIFO when
// tombstones outnumber the records (amortized O(1) per forget).
func (r *retiredTable) trim() {
	n := 0
	for n < len(r.fifo) && r.fifo[n] == nil {
		n++
	}
	r.fifo = r.fifo[n:]
	r.base += uint64(n)
	r.dead -= n
	m := len(r.fifo)
	for m > 0 && r.fifo[m-1] == nil {
		m--
		r.dead--
	}
	r.fifo = r.fifo[:m]
	if r.dead > 64 && r.dead > len(r.byID) {
		live := make([]*retiredRec, 0, len(r.byID))
		for _, rec := range r.fifo {
			if rec != nil {
				rec.seq = r.base + uint64(len(live)) // only the table reads seq
				live = append(live, rec)
			}
		}
		r.fifo = live
		r.dead = 0
	}
}

// records returns the records oldest first, for a snapshot.
func (r *retiredTable) records() []*RetiredTask {
	out := make([]*RetiredTask, 0, len(r.byID))
	for _, rec := range r.fifo {
		if rec != nil {
			out = append(out, &rec.RetiredTask)
		}
	}
	return out
}

// checkRetireTasks validates a retire_tasks entry. It reads no state:
// ids that are missing or not finished are skipped by Apply, not refused.
func (s *state) checkRetireTasks(e *RetireTasksEntry) *Error {
	if len(e.TaskIDs) == 0 || len(e.TaskIDs) > MaxRetireBatch {
		return invalidf("a retire_tasks entry lists 1 to %d task ids, got %d", MaxRetireBatch, len(e.TaskIDs))
	}
	if err := firstErr(checkTime(e.Time), checkText("retire reason", e.Reason, 0, MaxRetireReasonLen)); err != nil {
		return err
	}
	seen := make(map[string]int, len(e.TaskIDs))
	for i, id := range e.TaskIDs {
		if err := checkID("task id", id); err != nil {
			return invalidf("retire element %d: %s", i, err.Msg)
		}
		if j, dup := seen[id]; dup {
			return invalidf("retire elements %d and %d both name task %s; list each task once", j, i, quote(id))
		}
		seen[id] = i
	}
	return nil
}

// applyRetireTasks removes the listed finished tasks, in the entry's
// order, and remembers them as retired.
func (s *state) applyRetireTasks(e *RetireTasksEntry, ix uint64, res *ApplyResult) bool {
	if err := s.checkRetireTasks(e); err != nil {
		res.Err = err
		return false
	}
	for _, id := range e.TaskIDs {
		t := s.tasks.removeIf(id, finished)
		if t == nil {
			continue // gone already, or not finished: skipped
		}
		s.retired.add(RetiredTask{ID: t.ID, Status: t.Status, RetiredAt: e.Time, RetireIndex: ix})
		res.Retired = append(res.Retired, t)
	}
	if len(res.Retired) == 0 {
		return false // nothing to retire: an idempotent no-op
	}
	bump(&s.idx.Tasks, ix)
	return true
}

func finished(t *Task) bool { return t.Status.Terminal() }

// insertTask stores a new task; an id reused after its retirement is no
// longer retired.
func (s *state) insertTask(t *Task) {
	s.tasks.insert(t)
	s.retired.forget(t.ID)
}

// Retired returns the record of a retired task: whether the id belonged
// to a task that was retired, among the last RetiredMemory retirements,
// and has not been added again since. It is a map lookup.
func (f *FSM) Retired(id string) (RetiredTask, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rec, ok := f.st.retired.byID[id]
	if !ok {
		return RetiredTask{}, false
	}
	return rec.RetiredTask, true
}

// RetireCandidates chooses finished tasks to retire, oldest first by the
// time they finished (UpdatedAt, then ModifyIndex, CreateIndex, ID), at
// most limit ids (nil for limit <= 0). A finished task is a candidate
//
//   - by age, when maxAge > 0 and it finished before now-maxAge, and
//   - by count, when maxPerStatus > 0 and it is among the oldest tasks of
//     its status beyond the newest maxPerStatus.
//
// It is a pure read: now is the caller's clock (unix nanoseconds). Both
// rules select the oldest tasks of each finished status, which the table
// keeps in finish order, so the cost is about the ids returned, not the
// size of the manifest. The ids fit one RetireTasksEntry when limit <=
// MaxRetireBatch.
func (f *FSM) RetireCandidates(now int64, maxAge time.Duration, maxPerStatus int, limit int) []string {
	if limit <= 0 {
		return nil
	}
	ageRule := maxAge > 0 && now > math.MinInt64+int64(maxAge)
	var cutoff int64
	if ageRule {
		cutoff = now - int64(maxAge)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	tt := &f.st.tasks
	var heads []*Task
	for slot := range tt.finished {
		excess := 0
		if maxPerStatus > 0 {
			excess = tt.count(finishedStatuses[slot]) - maxPerStatus
		}
		heads = append(heads, tt.finished[slot].oldest(limit, func(i int, e *finishEntry) bool {
			return i < excess || (ageRule && e.at < cutoff)
		})...)
	}
	slices.SortFunc(heads, cmpFinish) // at most 3×limit tasks
	if len(heads) > limit {
		heads = heads[:limit]
	}
	if len(heads) == 0 {
		return nil
	}
	ids := make([]string, len(heads))
	for i, t := range heads {
		ids[i] = t.ID
	}
	return ids
}
