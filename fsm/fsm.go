package fsm

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// FSM is the Task Manifest state machine. Raft calls Apply, Snapshot and
// Restore from its FSM goroutine; any number of readers may call the read
// methods concurrently. Stored objects are copy-on-write, so the pointers
// the read methods return stay valid and unchanging after the lock is
// released; callers must treat them as read-only.
type FSM struct {
	mu    sync.RWMutex
	st    *state
	watch chan struct{}
	// applied are the AppliedCh callers still waiting.
	applied []appliedWaiter
	// expected is the prepared state of an operator's restore in
	// progress (Expect), nil otherwise.
	expected atomic.Pointer[PreparedRestore]
}

// Log is one committed raft log entry as the manifest sees it. The
// cluster package hands raft's entries in (fsm does not import
// hashicorp/raft).
type Log struct {
	Index uint64
	// Command marks the entries rctl proposes; the others (no-ops,
	// barriers, configuration changes) only advance the applied index.
	Command bool
	Data    []byte
}

// New returns an empty state machine.
func New() *FSM {
	return &FSM{st: newState(), watch: make(chan struct{})}
}

// ApplyResult is what Apply returns: always a *ApplyResult, never nil and
// never a bare error.
type ApplyResult struct {
	// Index is the log index of the entry.
	Index uint64
	// Task is the task after a task entry, also after an idempotent no-op.
	// Nil when Err is set.
	Task *Task
	// Tasks are the tasks after an add_tasks entry, in the entry's order.
	Tasks []*Task
	// Node is the node after a node entry; nil after node_unregister and
	// when Err is set.
	Node *Node
	// Token is the token after acl_bootstrap or acl_token_create (also
	// after an idempotent no-op), and the removed token after
	// acl_token_revoke. Nil when Err is set.
	Token *ACLToken
	// Retired are the tasks a retire_tasks entry removed, as they were
	// when removed, in the entry's order; ids it skipped (missing or not
	// finished) are not in it. Nil when nothing was removed.
	Retired []*Task
	// Err is an *Error when the entry was refused (malformed entries are
	// refused with Kind ErrInvalid). A refused entry changed nothing.
	Err error
}

// Indexes are the last log indexes that changed each table. Blocking
// queries wait for the relevant one to pass the caller's index.
type Indexes struct {
	Tasks   uint64
	Nodes   uint64
	Servers uint64
	// ACL is the last index that changed the token table.
	ACL uint64
	// Applied is the last index given to Apply, or the index of the last
	// restored snapshot. It advances on every entry, refused ones included.
	Applied uint64
}

// Apply applies one committed log entry. Only command entries carry
// ours; the others only advance Indexes().Applied. Apply
// never panics on any input, never reads the clock or randomness, and
// either applies the whole entry or changes nothing but Applied. An entry
// longer than MaxEntrySize is refused (ErrInvalid) without being decoded.
func (f *FSM) Apply(l *Log) (out *ApplyResult) {
	if l == nil {
		return &ApplyResult{Err: invalidf("nil log entry")}
	}
	res := &ApplyResult{Index: l.Index}
	if !l.Command {
		f.mu.Lock()
		f.st.idx.Applied = l.Index
		f.wakeApplied()
		f.mu.Unlock()
		return res
	}
	sizeErr := checkEntrySize(l.Data)
	var typ EntryType
	var body any
	var decErr error
	if sizeErr == nil {
		typ, body, decErr = DecodeEntry(l.Data) // pure; no need for the lock
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		// Last resort: every applyX validates before it mutates, so this
		// is never expected to run.
		if r := recover(); r != nil {
			f.notify()
			out = &ApplyResult{Index: l.Index, Err: &Error{Kind: ErrInvalid,
				Msg: fmt.Sprintf("%s entry at index %d could not be applied: internal error: %v", typ, l.Index, r)}}
		}
	}()
	f.st.idx.Applied = l.Index
	defer f.wakeApplied() // runs before the unlock, after the entry's changes
	if sizeErr != nil {
		res.Err = sizeErr
		return res
	}
	if decErr != nil {
		res.Err = &Error{Kind: ErrInvalid, Msg: fmt.Sprintf("malformed log entry at index %d: %v", l.Index, decErr)}
		return res
	}
	if body == nil { // unknown type flagged IgnoreUnknownFlag
		return res
	}
	if f.st.apply(typ, body, l.Index, res) {
		f.notify()
	}
	return res
}

// notify wakes blocking queries. Callers hold f.mu for writing.
func (f *FSM) notify() {
	close(f.watch)
	f.watch = make(chan struct{})
}

// WatchCh returns a channel that is closed the next time Apply or Restore
// changes any table. Take the channel before reading the state, then wait
// on it: a change between the two closes it.
func (f *FSM) WatchCh() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.watch
}

// Indexes returns the table indexes.
func (f *FSM) Indexes() Indexes {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.idx
}

// Task returns the task with the given id, or nil.
func (f *FSM) Task(id string) *Task {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.tasks.get(id)
}

// Tasks returns the tasks in the given status, or all tasks for status
// "", sorted by (CreateIndex, ID). An unknown status yields nil. The cost
// is proportional to the number of tasks returned, not to all tasks.
func (f *FSM) Tasks(status TaskStatus) []*Task {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if status == "" {
		return f.st.tasks.all()
	}
	return f.st.tasks.withStatus(status)
}

// OldestTasks returns at most limit tasks in the given status, oldest
// first (by CreateIndex, then ID), without listing the rest.
func (f *FSM) OldestTasks(status TaskStatus, limit int) []*Task {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.tasks.firstWithStatus(status, limit)
}

// TaskCounts returns the number of tasks in each status; every status is
// a key, zero counts included.
func (f *FSM) TaskCounts() map[TaskStatus]int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := make(map[TaskStatus]int, len(TaskStatuses))
	for _, s := range TaskStatuses {
		m[s] = f.st.tasks.count(s)
	}
	return m
}

// NodeTasks returns the tasks the node holds (assigned or running),
// sorted by (CreateIndex, ID).
func (f *FSM) NodeTasks(nodeID string) []*Task {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.tasks.heldBy(nodeID)
}

// Node returns the node with the given id, or nil.
func (f *FSM) Node(id string) *Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.nodes[id]
}

// Nodes returns all nodes sorted by ID.
func (f *FSM) Nodes() []*Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.sortedNodes()
}

// NodeCount returns the number of registered nodes, without listing them.
func (f *FSM) NodeCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.nodes)
}

// HeldCount returns how many assigned or running tasks the node holds.
func (f *FSM) HeldCount(nodeID string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.tasks.heldCount(nodeID)
}

// Server returns the labels of the server with the given id, or nil.
func (f *FSM) Server(id string) *Server {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.servers[id]
}

// Servers returns all servers sorted by ID.
func (f *FSM) Servers() []*Server {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.sortedServers()
}

// state is everything Apply changes and Restore replaces. It is guarded
// by FSM.mu.
type state struct {
	tasks   taskTable
	nodes   map[string]*Node
	servers map[string]*Server
	acl     aclTable
	retired retiredTable
	idx     Indexes
}

func newState() *state {
	return &state{
		tasks:   newTaskTable(0),
		nodes:   make(map[string]*Node),
		servers: make(map[string]*Server),
		acl:     newACLTable(),
		retired: newRetiredTable(),
	}
}

func (s *state) sortedNodes() []*Node {
	out := make([]*Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (s *state) sortedServers() []*Server {
	out := make([]*Server, 0, len(s.servers))
	for _, sv := range s.servers {
		out = append(out, sv)
	}
	slices.SortFunc(out, func(a, b *Server) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// apply dispatches a decoded entry to its applyX function and reports
// whether any table changed. Each applyX runs its checkX (the whole entry
// against the state) before it mutates anything; check (check.go) is the
// same dispatch without the mutation.
func (s *state) apply(t EntryType, body any, index uint64, res *ApplyResult) bool {
	switch t {
	case AddTask:
		if e, ok := body.(*AddTaskEntry); ok {
			return s.applyAddTask(e, index, res)
		}
	case AddTasks:
		if e, ok := body.(*AddTasksEntry); ok {
			return s.applyAddTasks(e, index, res)
		}
	case AssignTask:
		if e, ok := body.(*AssignTaskEntry); ok {
			return s.applyAssignTask(e, index, res)
		}
	case StartTask:
		if e, ok := body.(*StartTaskEntry); ok {
			return s.applyStartTask(e, index, res)
		}
	case CompleteTask:
		if e, ok := body.(*CompleteTaskEntry); ok {
			return s.applyFinishTask(e.TaskID, e.NodeID, e.Result, e.Time, TaskComplete, index, res)
		}
	case FailTask:
		if e, ok := body.(*FailTaskEntry); ok {
			return s.applyFinishTask(e.TaskID, e.NodeID, e.Result, e.Time, TaskFailed, index, res)
		}
	case CancelTask:
		if e, ok := body.(*CancelTaskEntry); ok {
			return s.applyCancelTask(e, index, res)
		}
	case NodeRegister:
		if e, ok := body.(*NodeRegisterEntry); ok {
			return s.applyNodeRegister(e, index, res)
		}
	case NodeUnregister:
		if e, ok := body.(*NodeUnregisterEntry); ok {
			return s.applyNodeUnregister(e, index, res)
		}
	case NodeStatusSet:
		if e, ok := body.(*NodeStatusEntry); ok {
			return s.applyNodeStatus(e, index, res)
		}
	case ServerUpsert:
		if e, ok := body.(*ServerUpsertEntry); ok {
			return s.applyServerUpsert(e, index, res)
		}
	case ServerRemove:
		if e, ok := body.(*ServerRemoveEntry); ok {
			return s.applyServerRemove(e, index, res)
		}
	case ACLBootstrap:
		if e, ok := body.(*ACLBootstrapEntry); ok {
			return s.applyACLBootstrap(e, index, res)
		}
	case ACLTokenCreate:
		if e, ok := body.(*ACLTokenCreateEntry); ok {
			return s.applyACLTokenCreate(e, index, res)
		}
	case ACLTokenRevoke:
		if e, ok := body.(*ACLTokenRevokeEntry); ok {
			return s.applyACLTokenRevoke(e, index, res)
		}
	case RetireTasks:
		if e, ok := body.(*RetireTasksEntry); ok {
			return s.applyRetireTasks(e, index, res)
		}
	}
	res.Err = invalidf("%s entry with body %T has no apply function", t, body)
	return false
}

// bump records a change to a table at log index ix. Raft hands out
// increasing indexes; max keeps table indexes monotonic for blocking
// queries even if a caller does not.
func bump(table *uint64, ix uint64) {
	*table = max(*table, ix)
}
