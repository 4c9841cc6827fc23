package rpc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
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

// Task.List bounds per call, besides the page size: a filter the
// manifest's indexes do not answer (node_id, or type) examines at most
// taskListScanBudget tasks per call, and a page stops before its tasks'
// encoding would pass taskListMaxBytes (half the frame limit), so even
// tasks at every field limit fit a reply. Either way next_cursor
// continues.
const (
	taskListScanBudget = 100_000
	taskListMaxBytes   = 8 << 20
)

func (s *Server) taskList(ctx context.Context, req *Request) (any, error) {
	var a TaskListArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	st := fsm.TaskStatus(a.Status)
	if st != "" && !st.Valid() {
		return nil, Errorf(CodeInvalidArgument, "unknown task status %q; use one of pending, assigned, running, complete, failed, cancelled", a.Status)
	}
	switch {
	case a.Limit < 0 || a.Limit > MaxTaskListLimit:
		return nil, Errorf(CodeInvalidArgument, "limit must be 0 (the default, %d) to %d, got %d", DefaultTaskListLimit, MaxTaskListLimit, a.Limit)
	case len(a.NodeID) > fsm.MaxIDLen:
		return nil, Errorf(CodeInvalidArgument, "node_id filter is %d bytes long; node ids are at most %d", len(a.NodeID), fsm.MaxIDLen)
	case len(a.Type) > fsm.MaxTypeLen:
		return nil, Errorf(CodeInvalidArgument, "type filter is %d bytes long; task types are at most %d", len(a.Type), fsm.MaxTypeLen)
	}
	q := fsm.TaskQuery{Status: st, NodeID: a.NodeID, Type: a.Type, Reverse: a.Reverse, Limit: a.Limit,
		MaxBytes: taskListMaxBytes, ScanBudget: taskListScanBudget}
	if q.Limit == 0 {
		q.Limit = DefaultTaskListLimit
	}
	if a.Cursor != "" {
		pos, reverse, err := decodeTaskCursor(a.Cursor)
		if err != nil {
			return nil, Errorf(CodeInvalidArgument, "cursor %s is not one Task.List returned (%v); pass next_cursor unchanged, or start again without a cursor", quoteCut(a.Cursor), err)
		}
		if reverse != a.Reverse {
			return nil, Errorf(CodeInvalidArgument, "cursor belongs to a listing with reverse=%v; keep reverse as it was, or start again without a cursor", reverse)
		}
		q.After = &pos
	}
	var reply TaskListReply
	err := s.blockingRead(ctx, req, a.QueryOptions, &reply, &reply.QueryMeta, func() uint64 {
		page := s.fsm.TaskPage(q)
		reply.Tasks = page.Tasks
		reply.NextCursor = ""
		if page.Next != nil {
			reply.NextCursor = encodeTaskCursor(*page.Next, a.Reverse)
		}
		reply.Counts = map[string]int{}
		for k, v := range s.fsm.TaskCounts() {
			reply.Counts[string(k)] = v
		}
		return page.Index
	})
	if err != nil {
		return nil, err
	}
	if reply.Tasks == nil {
		reply.Tasks = []*fsm.Task{}
	}
	return &reply, nil
}

// Task.List cursors. A cursor is a position in the manifest's task order,
// the (create_index, id) of the last task the page examined, so pages
// never repeat or skip a task that stays in the manifest, whatever is
// added or removed between them. Clients treat it as opaque; its form is
// "c1" and unpadded base64url of: one flags byte (bit 0: reverse), the
// create index as a uvarint, the id, and a CRC-32 (IEEE) of those bytes,
// big-endian, so a damaged cursor is refused rather than taken for
// another position.
const taskCursorPrefix = "c1"

func encodeTaskCursor(p fsm.TaskPos, reverse bool) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(p.ID)+4)
	var flags byte
	if reverse {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, p.CreateIndex)
	b = append(b, p.ID...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return taskCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeTaskCursor(c string) (pos fsm.TaskPos, reverse bool, err error) {
	body, ok := strings.CutPrefix(c, taskCursorPrefix)
	if !ok || len(c) > 2*fsm.MaxIDLen+32 {
		return pos, false, errors.New("unknown form")
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(b) < 1+1+1+4 {
		return pos, false, errors.New("unknown form")
	}
	data, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(data) != sum {
		return pos, false, errors.New("checksum mismatch")
	}
	if data[0] > 1 {
		return pos, false, errors.New("unknown flags")
	}
	ix, n := binary.Uvarint(data[1:])
	if n <= 0 {
		return pos, false, errors.New("bad index")
	}
	id := data[1+n:]
	if len(id) == 0 || len(id) > fsm.MaxIDLen {
		return pos, false, errors.New("bad task id")
	}
	return fsm.TaskPos{CreateIndex: ix, ID: string(id)}, data[0] == 1, nil
}

// quoteCut quotes s for a message, cut to 40 bytes.
func quoteCut(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}
