package fsm

import (
	"slices"
	"strconv"
	"strings"
)

// This file applies the task entries: add, assign, start, complete, fail
// and cancel. Each entry type has a pure checkX, which validates the entry
// against the state and changes nothing (FSM.Check runs it alone), and an
// applyX, which runs checkX and mutates only after every check passed; it
// reports whether a table changed.

// checkAddTask validates an add_task entry against the state. It returns
// the stored task when the same task was already added (an idempotent
// no-op), nil when the task is new.
func (s *state) checkAddTask(e *AddTaskEntry) (old *Task, err *Error) {
	if err := validAddTask(e); err != nil {
		return nil, err
	}
	old = s.tasks.get(e.ID)
	if old == nil {
		return nil, nil
	}
	if err := addConflict(old, e); err != nil {
		return nil, err
	}
	return old, nil
}

// addConflict compares an add_task entry with the task of the same id
// already stored: nil when they describe the same task.
func addConflict(old *Task, e *AddTaskEntry) *Error {
	field := ""
	switch {
	case old.Type != e.Type:
		field = "type"
	case !old.Payload.Equal(e.Payload):
		field = "payload"
	case old.Cloud != e.Cloud:
		field = "cloud"
	case old.MaxAttempts != maxAttemptsOf(e):
		field = "max_attempts"
	}
	if field != "" {
		return conflictf("task %s already exists with a different %s; use a new id", quote(e.ID), field)
	}
	return nil
}

// maxAttemptsOf is the MaxAttempts a task added by e gets.
func maxAttemptsOf(e *AddTaskEntry) int {
	if e.MaxAttempts == 0 {
		return DefaultMaxAttempts
	}
	return e.MaxAttempts
}

// applyAddTask creates a pending task, or is a no-op when the same task
// was already added.
func (s *state) applyAddTask(e *AddTaskEntry, ix uint64, res *ApplyResult) bool {
	old, err := s.checkAddTask(e)
	if err != nil {
		res.Err = err
		return false
	}
	if old != nil {
		res.Task = old // the same add, resent: idempotent
		return false
	}
	t := newTask(e, ix)
	s.insertTask(t)
	bump(&s.idx.Tasks, ix)
	res.Task = t
	return true
}

// newTask is the task an accepted add_task entry creates at index ix.
func newTask(e *AddTaskEntry, ix uint64) *Task {
	return &Task{
		ID:          e.ID,
		Type:        e.Type,
		Payload:     NewPayload(e.Payload),
		Cloud:       e.Cloud,
		MaxAttempts: maxAttemptsOf(e),
		Status:      TaskPending,
		CreatedAt:   e.Time,
		UpdatedAt:   e.Time,
		CreateIndex: ix,
		ModifyIndex: ix,
		// No history event: CreatedAt and CreateIndex record the creation,
		// and a million pending tasks need not carry one 64-byte event each.
	}
}

// checkAddTasks validates a batch: every element (against the state and
// against the other elements) before any is inserted, so a batch is
// applied whole or not at all.
func (s *state) checkAddTasks(e *AddTasksEntry) *Error {
	if len(e.Tasks) == 0 || len(e.Tasks) > MaxBatch {
		return invalidf("a batch holds 1 to %d tasks, got %d", MaxBatch, len(e.Tasks))
	}
	if err := checkTime(e.Time); err != nil {
		return err
	}
	seen := make(map[string]int, len(e.Tasks))
	for i := range e.Tasks {
		el := batchElement(e, i)
		if err := validAddTask(&el); err != nil {
			return invalidf("batch element %d: %s", i, err.Msg)
		}
		if j, dup := seen[el.ID]; dup {
			if !sameAdd(&e.Tasks[j], &el) {
				return invalidf("batch elements %d and %d both add task %s with different content", j, i, quote(el.ID))
			}
			continue
		}
		seen[el.ID] = i
		if old := s.tasks.get(el.ID); old != nil {
			if err := addConflict(old, &el); err != nil {
				return conflictf("batch element %d: %s", i, err.Msg)
			}
		}
	}
	return nil
}

// batchElement is element i of a batch as add_task sees it: with the
// batch's Time.
func batchElement(e *AddTasksEntry, i int) AddTaskEntry {
	el := e.Tasks[i]
	el.Time = e.Time
	return el
}

// applyAddTasks adds a batch checked by checkAddTasks.
func (s *state) applyAddTasks(e *AddTasksEntry, ix uint64, res *ApplyResult) bool {
	if err := s.checkAddTasks(e); err != nil {
		res.Err = err
		return false
	}
	// Insert in ID order: tasks of one entry share a CreateIndex, and the
	// table keeps (CreateIndex, ID) order by appending. Existing tasks
	// (identical, as checked) and repeated elements are not inserted again.
	order := make([]int, len(e.Tasks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(e.Tasks[a].ID, e.Tasks[b].ID) })
	changed := false
	for _, i := range order {
		if s.tasks.get(e.Tasks[i].ID) != nil {
			continue
		}
		el := batchElement(e, i)
		s.insertTask(newTask(&el, ix))
		changed = true
	}
	if changed {
		bump(&s.idx.Tasks, ix)
	}
	res.Tasks = make([]*Task, 0, len(e.Tasks))
	for i := range e.Tasks {
		res.Tasks = append(res.Tasks, s.tasks.get(e.Tasks[i].ID))
	}
	return changed
}

// sameAdd reports whether two add_task elements describe the same task.
func sameAdd(a, b *AddTaskEntry) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Cloud == b.Cloud && maxAttemptsOf(a) == maxAttemptsOf(b) && sameMap(a.Payload, b.Payload)
}

// validAddTask validates an add_task entry on its own, without the state.
func validAddTask(e *AddTaskEntry) *Error {
	if err := checkID("task id", e.ID); err != nil {
		return err
	}
	if err := checkLabel("task type", e.Type, MaxTypeLen, true); err != nil {
		return err
	}
	if err := checkMap("task payload", e.Payload); err != nil {
		return err
	}
	if err := checkLabel("task cloud", e.Cloud, maxLabelLen, false); err != nil {
		return err
	}
	if e.MaxAttempts < 0 || e.MaxAttempts > MaxAttemptsLimit {
		return invalidf("max_attempts is %d; use 0 (the default, %d) to %d", e.MaxAttempts, DefaultMaxAttempts, MaxAttemptsLimit)
	}
	return checkTime(e.Time)
}

// checkAssignTask validates an assign_task entry and returns the task and
// the node it goes to.
func (s *state) checkAssignTask(e *AssignTaskEntry) (*Task, *Node, *Error) {
	if err := firstErr(checkRef("task id", e.TaskID), checkRef("node id", e.NodeID), checkTime(e.Time)); err != nil {
		return nil, nil, err
	}
	t := s.tasks.get(e.TaskID)
	if t == nil {
		return nil, nil, notFoundf("task %s does not exist", quote(e.TaskID))
	}
	n := s.nodes[e.NodeID]
	switch {
	case n == nil:
		return nil, nil, invalidf("unknown node %s; a node must register before it is given tasks", quote(e.NodeID))
	case t.Status != TaskPending:
		return nil, nil, conflictf("task %s is %s%s; only pending tasks can be assigned", quote(t.ID), t.Status, heldSuffix(t))
	case n.Status == NodeUnreachable:
		return nil, nil, conflictf("node %s is unreachable; assign the task to a live node", quote(n.ID))
	case t.Cloud != "" && t.Cloud != n.Cloud:
		where := "has no cloud label"
		if n.Cloud != "" {
			where = "is in cloud " + quote(n.Cloud)
		}
		return nil, nil, conflictf("task %s must run in cloud %s but node %s %s", quote(t.ID), quote(t.Cloud), quote(n.ID), where)
	case s.tasks.heldCount(n.ID) >= n.Capacity:
		return nil, nil, conflictf("node %s is full: it holds %d tasks and its capacity is %d", quote(n.ID), s.tasks.heldCount(n.ID), n.Capacity)
	}
	return t, n, nil
}

// applyAssignTask gives a pending task to a node with room for it.
func (s *state) applyAssignTask(e *AssignTaskEntry, ix uint64, res *ApplyResult) bool {
	t, n, err := s.checkAssignTask(e)
	if err != nil {
		res.Err = err
		return false
	}
	nt := transition(t, TaskAssigned, n.ID, n.ID, "", e.Time, ix)
	nt.Attempts++
	s.putTask(nt, res)
	return true
}

// checkStartTask validates a start_task entry and returns the task;
// noop is set when the task already runs on that node (start resent).
func (s *state) checkStartTask(e *StartTaskEntry) (t *Task, noop bool, err *Error) {
	if err := firstErr(checkRef("task id", e.TaskID), checkRef("node id", e.NodeID), checkTime(e.Time)); err != nil {
		return nil, false, err
	}
	t = s.tasks.get(e.TaskID)
	switch {
	case t == nil:
		return nil, false, notFoundf("task %s does not exist", quote(e.TaskID))
	case t.Status == TaskRunning && t.NodeID == e.NodeID:
		return t, true, nil // start resent: idempotent
	case isHeld(t) && t.NodeID != e.NodeID:
		return nil, false, conflictf("task %s is held by node %s, not %s", quote(t.ID), quote(t.NodeID), quote(e.NodeID))
	case t.Status != TaskAssigned:
		return nil, false, conflictf("task %s is %s%s; only an assigned task can start", quote(t.ID), t.Status, heldSuffix(t))
	}
	return t, false, nil
}

// applyStartTask moves an assigned task to running on its node.
func (s *state) applyStartTask(e *StartTaskEntry, ix uint64, res *ApplyResult) bool {
	t, noop, err := s.checkStartTask(e)
	switch {
	case err != nil:
		res.Err = err
		return false
	case noop:
		res.Task = t
		return false
	}
	s.putTask(transition(t, TaskRunning, t.NodeID, t.NodeID, "", e.Time, ix), res)
	return true
}

// checkFinishTask validates a complete_task (to = complete) or fail_task
// (to = failed) report from nodeID and returns the task; noop is set when
// the same report was already applied.
func (s *state) checkFinishTask(taskID, nodeID string, now int64, to TaskStatus) (t *Task, noop bool, err *Error) {
	if err := firstErr(checkRef("task id", taskID), checkRef("node id", nodeID), checkTime(now)); err != nil {
		return nil, false, err
	}
	verb := "complete"
	if to == TaskFailed {
		verb = "fail"
	}
	t = s.tasks.get(taskID)
	switch {
	case t == nil:
		return nil, false, notFoundf("task %s does not exist", quote(taskID))
	case t.Status == to && t.NodeID == nodeID:
		return t, true, nil // result resent after a leader change: idempotent
	case isHeld(t) && t.NodeID != nodeID:
		return nil, false, conflictf("task %s is held by node %s, not %s; the report is stale", quote(t.ID), quote(t.NodeID), quote(nodeID))
	case !isHeld(t):
		return nil, false, conflictf("task %s is %s%s; only assigned or running tasks can %s", quote(t.ID), t.Status, heldSuffix(t), verb)
	}
	return t, false, nil
}

// applyFinishTask ends a task held by nodeID as complete or failed (to).
// The same report resent is a no-op; a report from a node that no longer
// holds the task is refused.
func (s *state) applyFinishTask(taskID, nodeID string, r Result, now int64, to TaskStatus, ix uint64, res *ApplyResult) bool {
	t, noop, err := s.checkFinishTask(taskID, nodeID, now, to)
	switch {
	case err != nil:
		res.Err = err
		return false
	case noop:
		res.Task = t
		return false
	}
	nt := transition(t, to, t.NodeID, t.NodeID, "", now, ix)
	nt.Result = &Result{
		ExitCode: r.ExitCode,
		Output:   truncateTail(r.Output, MaxOutputLen),
		Error:    truncateTail(r.Error, MaxOutputLen),
	}
	s.putTask(nt, res)
	return true
}

// checkCancelTask validates a cancel_task entry and returns the task;
// noop is set when it is already cancelled.
func (s *state) checkCancelTask(e *CancelTaskEntry) (t *Task, noop bool, err *Error) {
	if err := firstErr(checkRef("task id", e.TaskID), checkTime(e.Time)); err != nil {
		return nil, false, err
	}
	t = s.tasks.get(e.TaskID)
	switch {
	case t == nil:
		return nil, false, notFoundf("task %s does not exist", quote(e.TaskID))
	case t.Status == TaskCancelled:
		return t, true, nil // cancel resent: idempotent
	case t.Status.Terminal():
		return nil, false, conflictf("task %s is already %s; a finished task cannot be cancelled", quote(t.ID), t.Status)
	}
	return t, false, nil
}

// applyCancelTask cancels a task that has not finished, freeing its node.
func (s *state) applyCancelTask(e *CancelTaskEntry, ix uint64, res *ApplyResult) bool {
	t, noop, err := s.checkCancelTask(e)
	switch {
	case err != nil:
		res.Err = err
		return false
	case noop:
		res.Task = t
		return false
	}
	msg := truncateHead(e.Reason, maxMessageLen)
	if msg == "" {
		msg = "cancelled"
	}
	s.putTask(transition(t, TaskCancelled, "", t.NodeID, msg, e.Time, ix), res)
	return true
}

// requeueHeld takes every task away from a node that left or became
// unreachable (why is "left" or "unreachable"). A task with attempts left
// goes back to pending; one that used them all fails with ExitCode -1
// and keeps NodeID, so the operator sees where it last ran. It reports
// whether any task changed.
func (s *state) requeueHeld(nodeID, why string, now int64, ix uint64) bool {
	held := s.tasks.heldBy(nodeID) // in (CreateIndex, ID) order
	for _, t := range held {
		var nt *Task
		if t.Attempts >= t.MaxAttempts {
			msg := "node " + nodeID + " " + why + "; gave up after " + strconv.Itoa(t.Attempts) + " attempts"
			nt = transition(t, TaskFailed, t.NodeID, nodeID, msg, now, ix)
			nt.Result = &Result{ExitCode: -1, Error: msg}
		} else {
			nt = transition(t, TaskPending, "", nodeID, "requeued: node "+nodeID+" "+why, now, ix)
		}
		s.tasks.replace(nt)
	}
	if len(held) > 0 {
		bump(&s.idx.Tasks, ix)
	}
	return len(held) > 0
}

// putTask stores a changed task and records the change.
func (s *state) putTask(t *Task, res *ApplyResult) {
	s.tasks.replace(t)
	bump(&s.idx.Tasks, t.ModifyIndex)
	res.Task = t
}

// transition returns a modified copy of t in status to, held by nodeID,
// with an event naming eventNode. t itself is never changed.
func transition(t *Task, to TaskStatus, nodeID, eventNode, msg string, now int64, ix uint64) *Task {
	nt := *t
	nt.Status = to
	nt.NodeID = nodeID
	nt.UpdatedAt = now
	nt.ModifyIndex = ix
	nt.History = appendEvent(t.History, Event{Time: now, Index: ix, Status: to, NodeID: eventNode, Message: msg})
	return &nt
}

// appendEvent returns a new slice with ev after the newest MaxHistory-1
// events of h. It never writes into h's backing array, which older copies
// of the task still share.
func appendEvent(h []Event, ev Event) []Event {
	if len(h) >= MaxHistory {
		h = h[len(h)-MaxHistory+1:]
	}
	out := make([]Event, len(h)+1)
	copy(out, h)
	out[len(h)] = ev
	return out
}

// heldSuffix names the node in a refusal message when there is one.
func heldSuffix(t *Task) string {
	if t.NodeID == "" {
		return ""
	}
	return " on node " + quote(t.NodeID)
}

func firstErr(errs ...*Error) *Error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
