package fsm

// TaskStatus is the lifecycle state of a task.
//
//	pending ──assign──▶ assigned ──start──▶ running ──complete──▶ complete
//	   ▲                   │                  │   └────fail─────▶ failed
//	   └──── requeue ──────┴──────────────────┘
//	any non-terminal status ──cancel──▶ cancelled
type TaskStatus string

// Task statuses. complete, failed and cancelled are terminal.
const (
	TaskPending   TaskStatus = "pending"
	TaskAssigned  TaskStatus = "assigned"
	TaskRunning   TaskStatus = "running"
	TaskComplete  TaskStatus = "complete"
	TaskFailed    TaskStatus = "failed"
	TaskCancelled TaskStatus = "cancelled"
)

// TaskStatuses lists every status in lifecycle order.
var TaskStatuses = []TaskStatus{TaskPending, TaskAssigned, TaskRunning, TaskComplete, TaskFailed, TaskCancelled}

// Valid reports whether s is one of the known statuses.
func (s TaskStatus) Valid() bool {
	for _, v := range TaskStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Terminal reports whether no further transition is possible from s.
func (s TaskStatus) Terminal() bool {
	return s == TaskComplete || s == TaskFailed || s == TaskCancelled
}

// NodeStatus is the liveness of a node agent as judged by the leader.
type NodeStatus string

// Node statuses.
const (
	NodeHealthy     NodeStatus = "healthy"
	NodeDegraded    NodeStatus = "degraded"
	NodeUnreachable NodeStatus = "unreachable"
)

// Valid reports whether s is one of the known node statuses.
func (s NodeStatus) Valid() bool {
	return s == NodeHealthy || s == NodeDegraded || s == NodeUnreachable
}

// Task is one unit of work in the manifest. Tasks are immutable once stored:
// Apply replaces the stored pointer with a modified copy, so readers may keep
// and share the pointers they get without locking.
type Task struct {
	ID      string  `codec:"id" json:"id"`
	Type    string  `codec:"type" json:"type"`
	Payload Payload `codec:"payload" json:"payload"`
	// Cloud, when set, restricts placement to nodes in that cloud.
	Cloud string `codec:"cloud" json:"cloud,omitempty"`
	// MaxAttempts bounds how many times the task is assigned; 0 means the
	// cluster default (DefaultMaxAttempts).
	MaxAttempts int `codec:"max_attempts" json:"max_attempts"`

	Status   TaskStatus `codec:"status" json:"status"`
	NodeID   string     `codec:"node_id" json:"node_id,omitempty"`
	Attempts int        `codec:"attempts" json:"attempts"`
	Result   *Result    `codec:"result" json:"result,omitempty"`

	// Times are unix nanoseconds stamped by the proposer.
	CreatedAt int64 `codec:"created_at" json:"created_at"`
	UpdatedAt int64 `codec:"updated_at" json:"updated_at"`
	// Raft indexes of the entry that created and last modified the task.
	CreateIndex uint64 `codec:"create_index" json:"create_index"`
	ModifyIndex uint64 `codec:"modify_index" json:"modify_index"`

	// History holds the most recent transitions, oldest first, at most
	// MaxHistory of them.
	History []Event `codec:"history" json:"history"`
}

// Result is what a node reported when a task ended.
type Result struct {
	ExitCode int    `codec:"exit_code" json:"exit_code"`
	Output   string `codec:"output" json:"output,omitempty"`
	Error    string `codec:"error" json:"error,omitempty"`
}

// Event is one transition in a task's history.
type Event struct {
	Time    int64      `codec:"time" json:"time"`
	Index   uint64     `codec:"index" json:"index"`
	Status  TaskStatus `codec:"status" json:"status"`
	NodeID  string     `codec:"node_id" json:"node_id,omitempty"`
	Message string     `codec:"message" json:"message,omitempty"`
}

// Node is a worker VM running the node agent.
type Node struct {
	ID       string            `codec:"id" json:"id"`
	Address  string            `codec:"address" json:"address,omitempty"`
	Cloud    string            `codec:"cloud" json:"cloud,omitempty"`
	Region   string            `codec:"region" json:"region,omitempty"`
	Capacity int               `codec:"capacity" json:"capacity"`
	Meta     map[string]string `codec:"meta" json:"meta,omitempty"`
	Status   NodeStatus        `codec:"status" json:"status"`

	RegisteredAt int64  `codec:"registered_at" json:"registered_at"`
	UpdatedAt    int64  `codec:"updated_at" json:"updated_at"`
	CreateIndex  uint64 `codec:"create_index" json:"create_index"`
	ModifyIndex  uint64 `codec:"modify_index" json:"modify_index"`
}

// Server holds the labels of one Raft server. Raft's own configuration
// knows only id, address and suffrage; the labels are replicated here so
// every server can list them, even for servers that are down.
type Server struct {
	ID      string `codec:"id" json:"id"`
	Address string `codec:"address" json:"address"`
	Cloud   string `codec:"cloud" json:"cloud,omitempty"`
	Region  string `codec:"region" json:"region,omitempty"`
}

// Limits on what an entry may carry. Entries beyond them are refused with
// ErrInvalid so that one bad client cannot bloat every server's memory.
const (
	MaxIDLen           = 128
	MaxTypeLen         = 64
	MaxPayloadKeys     = 64
	MaxPayloadKeyLen   = 128
	MaxPayloadValueLen = 64 << 10
	MaxOutputLen       = 64 << 10
	MaxHistory         = 32
	MaxCapacity        = 1 << 16
	MaxAttemptsLimit   = 100
	DefaultMaxAttempts = 3
)
