package rpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// NewTaskID returns a fresh random task id ("t-" and 16 hex digits).
func NewTaskID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "t-" + hex.EncodeToString(b[:])
}

func (s *Server) taskAdd(ctx context.Context, req *Request) (any, error) {
	var a TaskAddArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.Type == "" {
		return nil, Errorf(CodeInvalidArgument, "task type is required (e.g. shell, sleep)")
	}
	if a.ID == "" {
		// Decided once, by the first server that sees the call, so a
		// forwarded call keeps its id.
		a.ID = NewTaskID()
		raw, err := encode(&a)
		if err != nil {
			return nil, err
		}
		req.Args = raw
	}
	var reply TaskReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	res, err := s.apply(ctx, &fsm.AddTaskEntry{
		ID: a.ID, Type: a.Type, Payload: a.Payload, Cloud: a.Cloud,
		MaxAttempts: a.MaxAttempts, Time: time.Now().UnixNano(),
	})
	if err != nil {
		return nil, err
	}
	return &TaskReply{Task: res.Task, Index: res.Index}, nil
}

func (s *Server) taskAddBatch(ctx context.Context, req *Request) (any, error) {
	var a TaskAddBatchArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if len(a.Tasks) == 0 || len(a.Tasks) > fsm.MaxBatch {
		return nil, Errorf(CodeInvalidArgument, "a batch holds 1 to %d tasks, got %d", fsm.MaxBatch, len(a.Tasks))
	}
	generated := false
	for i := range a.Tasks {
		if a.Tasks[i].Type == "" {
			return nil, Errorf(CodeInvalidArgument, "batch element %d: task type is required", i)
		}
		if a.Tasks[i].ID == "" {
			a.Tasks[i].ID = NewTaskID()
			generated = true
		}
	}
	if generated {
		raw, err := encode(&a)
		if err != nil {
			return nil, err
		}
		req.Args = raw
	}
	var reply TaskBatchReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	e := &fsm.AddTasksEntry{Time: time.Now().UnixNano(), Tasks: make([]fsm.AddTaskEntry, len(a.Tasks))}
	for i, t := range a.Tasks {
		e.Tasks[i] = fsm.AddTaskEntry{ID: t.ID, Type: t.Type, Payload: t.Payload, Cloud: t.Cloud, MaxAttempts: t.MaxAttempts}
	}
	res, err := s.apply(ctx, e)
	if err != nil {
		return nil, err
	}
	return &TaskBatchReply{Tasks: res.Tasks, Index: res.Index}, nil
}

func (s *Server) taskCancel(ctx context.Context, req *Request) (any, error) {
	var a TaskCancelArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, Errorf(CodeInvalidArgument, "task id is required")
	}
	var reply TaskReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	res, err := s.apply(ctx, &fsm.CancelTaskEntry{TaskID: a.ID, Reason: a.Reason, Time: time.Now().UnixNano()})
	if err != nil {
		return nil, err
	}
	return &TaskReply{Task: res.Task, Index: res.Index}, nil
}

func (s *Server) taskGet(ctx context.Context, req *Request) (any, error) {
	var a TaskGetArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, Errorf(CodeInvalidArgument, "task id is required")
	}
	var reply TaskGetReply
	err := s.blockingRead(ctx, req, a.QueryOptions, &reply, &reply.QueryMeta, func() uint64 {
		reply.Task = s.fsm.Task(a.ID)
		if reply.Task == nil {
			return s.fsm.Indexes().Tasks
		}
		return reply.Task.ModifyIndex
	})
	if err != nil {
		return nil, err
	}
	if reply.Task == nil {
		if r, ok := s.fsm.Retired(a.ID); ok {
			return nil, Errorf(CodeNotFound, "task %q was retired at %s, %s: finished tasks leave the manifest after the retention period (rctl serve --retain-finished); its final line is in the leader's log (event=task_retired)",
				a.ID, time.Unix(0, r.RetiredAt).UTC().Format(time.RFC3339), r.Status)
		}
		return nil, Errorf(CodeNotFound, "task %q not found", a.ID)
	}
	return &reply, nil
}

// maxGCAge bounds Task.GC's older_than_ms (100 years: any real age).
const maxGCAge = 100 * 365 * 24 * time.Hour

func (s *Server) taskGC(ctx context.Context, req *Request) (any, error) {
	var a TaskGCArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.OlderThanMS <= 0 || a.OlderThanMS > int64(maxGCAge/time.Millisecond) {
		return nil, Errorf(CodeInvalidArgument, "older_than_ms must be positive and at most 100 years, got %d", a.OlderThanMS)
	}
	var reply TaskGCReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	n, idx, err := s.b.RetireNow(ctx, time.Duration(a.OlderThanMS)*time.Millisecond)
	if err != nil {
		return nil, err
	}
	return &TaskGCReply{Retired: n, Index: idx}, nil
}

func (s *Server) taskList(ctx context.Context, req *Request) (any, error) {
	var a TaskListArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	st := fsm.TaskStatus(a.Status)
	if st != "" && !st.Valid() {
		return nil, Errorf(CodeInvalidArgument, "unknown task status %q; use one of pending, assigned, running, complete, failed, cancelled", a.Status)
	}
	var reply TaskListReply
	err := s.blockingRead(ctx, req, a.QueryOptions, &reply, &reply.QueryMeta, func() uint64 {
		idx := s.fsm.Indexes().Tasks
		reply.Tasks = s.fsm.Tasks(st)
		reply.Counts = map[string]int{}
		for k, v := range s.fsm.TaskCounts() {
			reply.Counts[string(k)] = v
		}
		return idx
	})
	if err != nil {
		return nil, err
	}
	if reply.Tasks == nil {
		reply.Tasks = []*fsm.Task{}
	}
	return &reply, nil
}
