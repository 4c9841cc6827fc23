package rpc

import "github.com/rctl-dev/rctl/fsm"

// Method names. docs/rpc.md documents each one.
const (
	MethodStatus          = "Status.Get"
	MethodMembers         = "Status.Members"
	MethodTaskAdd         = "Task.Add"
	MethodTaskAddBatch    = "Task.AddBatch"
	MethodTaskGet         = "Task.Get"
	MethodTaskList        = "Task.List"
	MethodTaskCancel      = "Task.Cancel"
	MethodRaftPeers       = "Operator.RaftPeers"
	MethodRaftJoin        = "Operator.Join"
	MethodRaftRemovePeer  = "Operator.RemovePeer"
	MethodRaftTransfer    = "Operator.TransferLeader"
	MethodServerLabels    = "Operator.ServerLabels"
	MethodSnapshotInspect = "Operator.SnapshotInspect"
	MethodOperatorRTT     = "Operator.RTT"
	MethodNodeRegister    = "Node.Register"
	MethodNodeHeartbeat   = "Node.Heartbeat"
	MethodNodeDeregister  = "Node.Deregister"
	MethodNodeList        = "Node.List"
	MethodNodeGet         = "Node.Get"
	MethodTaskStart       = "Task.Start"
	MethodTaskComplete    = "Task.Complete"
	MethodTaskFail        = "Task.Fail"
	MethodTaskGC          = "Task.GC"
)

// QueryOptions are the read options every read method accepts.
type QueryOptions struct {
	// Stale lets any server answer from its local state without asking the
	// leader; the reply may lag the cluster by up to the replication lag.
	Stale bool `codec:"stale" json:"stale,omitempty"`
	// MinIndex makes the call a blocking query: the server waits until the
	// queried table's index is greater than MinIndex (or MaxWaitMS passes)
	// before answering.
	MinIndex uint64 `codec:"min_index" json:"min_index,omitempty"`
	// MaxWaitMS bounds a blocking query's wait; 0 means 5 minutes, and at
	// most 10 minutes is honoured.
	MaxWaitMS int64 `codec:"max_wait_ms" json:"max_wait_ms,omitempty"`
}

// QueryMeta is returned by every read.
type QueryMeta struct {
	// Index is the index of the queried table at the time of the read; pass
	// it back as MinIndex to wait for the next change.
	Index uint64 `codec:"index" json:"index"`
	// KnownLeader is false when the answering server knew no leader (only
	// possible for stale reads).
	KnownLeader bool `codec:"known_leader" json:"known_leader"`
	// LastContactMS is how long ago the answering server heard from the
	// leader (0 on the leader itself).
	LastContactMS int64 `codec:"last_contact_ms" json:"last_contact_ms"`
}

// TaskAddArgs are the arguments of Task.Add.
type TaskAddArgs struct {
	// ID is optional; the server generates one when empty. Clients that
	// retry should set it: re-adding an identical task is a no-op.
	ID          string            `codec:"id"`
	Type        string            `codec:"type"`
	Payload     map[string]string `codec:"payload"`
	Cloud       string            `codec:"cloud"`
	MaxAttempts int               `codec:"max_attempts"`
}

// TaskAddBatchArgs are the arguments of Task.AddBatch.
type TaskAddBatchArgs struct {
	Tasks []TaskAddArgs `codec:"tasks"`
}

// TaskBatchReply carries the tasks of a batch, in the request's order.
type TaskBatchReply struct {
	Tasks []*fsm.Task `codec:"tasks" json:"tasks"`
	Index uint64      `codec:"index" json:"index"`
}

// TaskReply carries one task.
type TaskReply struct {
	Task  *fsm.Task `codec:"task" json:"task"`
	Index uint64    `codec:"index" json:"index"`
}

// TaskGetArgs are the arguments of Task.Get.
type TaskGetArgs struct {
	ID string `codec:"id"`
	QueryOptions
}

// TaskGetReply is the reply of Task.Get.
type TaskGetReply struct {
	Task *fsm.Task `codec:"task" json:"task"`
	QueryMeta
}

// Task.List page sizes: a call with Limit 0 gets DefaultTaskListLimit
// tasks at most; more than MaxTaskListLimit is refused.
const (
	DefaultTaskListLimit = 1000
	MaxTaskListLimit     = 10_000
)

// TaskListArgs are the arguments of Task.List: one page of the tasks in
// (create_index, id) order (newest first with Reverse), after Cursor.
type TaskListArgs struct {
	// Status filters by status; empty lists every status.
	Status string `codec:"status"`
	// NodeID keeps only tasks whose node_id is this (the node holding the
	// task, or the last one that did); empty: any.
	NodeID string `codec:"node_id"`
	// Type keeps only tasks of this type; empty: any.
	Type string `codec:"type"`
	// Limit is the most tasks in the page: 0 means DefaultTaskListLimit;
	// at most MaxTaskListLimit.
	Limit int `codec:"limit"`
	// Cursor continues a listing: the NextCursor of the previous page of
	// the same listing, opaque to clients. Empty starts at the oldest task
	// (the newest with Reverse).
	Cursor string `codec:"cursor"`
	// Reverse lists newest first.
	Reverse bool `codec:"reverse"`
	QueryOptions
}

// TaskListReply is the reply of Task.List.
type TaskListReply struct {
	Tasks []*fsm.Task `codec:"tasks" json:"tasks"`
	// Counts holds the number of tasks in each status, in the whole
	// manifest (not only the page or the filter).
	Counts map[string]int `codec:"counts" json:"counts"`
	// NextCursor continues the listing (TaskListArgs.Cursor); "" when the
	// listing has reached the end of the manifest.
	NextCursor string `codec:"next_cursor" json:"next_cursor"`
	QueryMeta
}

// TaskCancelArgs are the arguments of Task.Cancel.
type TaskCancelArgs struct {
	ID     string `codec:"id"`
	Reason string `codec:"reason"`
}

// TaskGCArgs are the arguments of Task.GC: retire, now, every finished
// task that finished more than OlderThanMS ago.
type TaskGCArgs struct {
	OlderThanMS int64 `codec:"older_than_ms" json:"older_than_ms"`
}

// TaskGCReply is Task.GC's result.
type TaskGCReply struct {
	Retired int    `codec:"retired" json:"retired"`
	Index   uint64 `codec:"index" json:"index"`
}

// StatusArgs are the arguments of Status.Get. Status always describes the
// server that answers; MinIndex blocks until its applied index passes it.
type StatusArgs struct {
	MinIndex  uint64 `codec:"min_index"`
	MaxWaitMS int64  `codec:"max_wait_ms"`
	// KnownLeader, when set, blocks the call until this server knows a
	// leader whose id differs from it (or MaxWaitMS passes): how node
	// agents learn of a new leader without polling.
	KnownLeader string `codec:"known_leader"`
	// AwaitSilenceMS, when > 0, holds the call while this server is a
	// follower that heard from its leader within the last AwaitSilenceMS:
	// until that silence has passed, the leader is heard from again, or
	// the state, leader or term changes. Servers use it to ask each other
	// whether a leader went silent (cluster/succession.go): the answer
	// comes the moment it is yes, not a probe later. At most
	// MaxAwaitSilence; not combined with MinIndex or KnownLeader.
	AwaitSilenceMS int64 `codec:"await_silence_ms"`
}

// StatusReply describes one server as it sees itself.
type StatusReply struct {
	ID            string `codec:"id" json:"id"`
	Address       string `codec:"address" json:"address"`
	Cloud         string `codec:"cloud" json:"cloud,omitempty"`
	Region        string `codec:"region" json:"region,omitempty"`
	State         string `codec:"state" json:"state"`
	LeaderID      string `codec:"leader_id" json:"leader_id"`
	LeaderAddr    string `codec:"leader_addr" json:"leader_addr"`
	Term          uint64 `codec:"term" json:"term"`
	CommitIndex   uint64 `codec:"commit_index" json:"commit_index"`
	AppliedIndex  uint64 `codec:"applied_index" json:"applied_index"`
	LastIndex     uint64 `codec:"last_index" json:"last_index"`
	LastContactMS int64  `codec:"last_contact_ms" json:"last_contact_ms"`
	// LastLeaderChangeMS is the unix time in ms at which this server last
	// saw the leader change (0: never since it started).
	LastLeaderChangeMS int64  `codec:"last_leader_change_ms" json:"last_leader_change_ms"`
	NumPeers           int    `codec:"num_peers" json:"num_peers"`
	Version            string `codec:"version" json:"version"`
	// CommitP99MS is the 99th percentile of the writes this server
	// committed as leader in the last minute, from proposal to the state
	// machine's result; LogSyncP99MS that of the batches of log entries
	// it stored on disk (write and fdatasync). -1: no sample.
	CommitP99MS  float64 `codec:"commit_p99_ms" json:"commit_p99_ms"`
	LogSyncP99MS float64 `codec:"log_sync_p99_ms" json:"log_sync_p99_ms"`
}

// MembersArgs are the arguments of Status.Members.
type MembersArgs struct {
	// Stale answers from the contacted server without forwarding to the
	// leader; replication figures are then omitted.
	Stale bool `codec:"stale"`
}

// Member is one Raft server as listed by Status.Members.
type Member struct {
	ID       string `codec:"id" json:"id"`
	Address  string `codec:"address" json:"address"`
	Cloud    string `codec:"cloud" json:"cloud"`
	Region   string `codec:"region" json:"region"`
	Suffrage string `codec:"suffrage" json:"suffrage"`
	// State is the server's own raft state (leader, follower, candidate),
	// or "unreachable" when it did not answer the leader's probe.
	State  string `codec:"state" json:"state"`
	Leader bool   `codec:"leader" json:"leader"`
	// LastContactMS is how long ago the server heard from the leader, as it
	// reports it (-1 unknown).
	LastContactMS int64 `codec:"last_contact_ms" json:"last_contact_ms"`
	// Lag is the number of log entries the server's log trails the
	// leader's (-1 unknown).
	Lag  int64  `codec:"lag" json:"lag"`
	Term uint64 `codec:"term" json:"term"`
	// RTTMS is the round trip from the leader to the server, in
	// milliseconds: the least of the leader's last few probes (0 on the
	// leader itself, -1 unknown).
	RTTMS float64 `codec:"rtt_ms" json:"rtt_ms"`
	// CommitP99MS and LogSyncP99MS are the server's own figures (Status.Get)
	// as the leader's probe found them (-1 unknown).
	CommitP99MS  float64 `codec:"commit_p99_ms" json:"commit_p99_ms"`
	LogSyncP99MS float64 `codec:"log_sync_p99_ms" json:"log_sync_p99_ms"`
}

// MembersReply is the reply of Status.Members.
type MembersReply struct {
	Members []Member `codec:"members" json:"members"`
	// Warnings are sentences about the cluster's shape, e.g. a voter
	// geometry that cannot survive the loss of one cloud.
	Warnings []string `codec:"warnings" json:"warnings"`
	// From is the id of the server that produced the list.
	From string `codec:"from" json:"from"`
}

// RTTArgs are the arguments of Operator.RTT.
type RTTArgs struct {
	// Samples is how many round trips are timed per pair of servers
	// (1–20; 0 means 5).
	Samples int `codec:"samples" json:"samples"`
	// Local measures only from the answering server to the others; without
	// it the answering server also asks every other server for its own.
	Local bool `codec:"local" json:"local"`
}

// RTTPair is the round trip from one server to another, measured by the
// first on a warm connection with Status.Get calls.
type RTTPair struct {
	From      string `codec:"from" json:"from"`
	To        string `codec:"to" json:"to"`
	FromCloud string `codec:"from_cloud" json:"from_cloud"`
	ToCloud   string `codec:"to_cloud" json:"to_cloud"`
	// Samples is how many round trips were timed (0: see Error).
	Samples  int     `codec:"samples" json:"samples"`
	MinMS    float64 `codec:"min_ms" json:"min_ms"`
	MedianMS float64 `codec:"median_ms" json:"median_ms"`
	MaxMS    float64 `codec:"max_ms" json:"max_ms"`
	// Error says why From could not measure To ("" when it did).
	Error string `codec:"error" json:"error"`
}

// RTTReply is the reply of Operator.RTT.
type RTTReply struct {
	// From is the id of the server that answered.
	From string `codec:"from" json:"from"`
	// Timing is the answering server's --timing profile and MaxRTTMS the
	// largest round trip the profile is made for.
	Timing   string  `codec:"timing" json:"timing"`
	MaxRTTMS float64 `codec:"max_rtt_ms" json:"max_rtt_ms"`
	// Pairs are sorted by From, then To.
	Pairs []RTTPair `codec:"pairs" json:"pairs"`
	// Warnings name the pairs whose median is above MaxRTTMS, and the
	// servers that could not be asked.
	Warnings []string `codec:"warnings" json:"warnings"`
}

// RaftPeer is one entry of the Raft configuration.
type RaftPeer struct {
	ID       string `codec:"id" json:"id"`
	Address  string `codec:"address" json:"address"`
	Suffrage string `codec:"suffrage" json:"suffrage"`
	Leader   bool   `codec:"leader" json:"leader"`
}

// RaftPeersReply is the reply of Operator.RaftPeers.
type RaftPeersReply struct {
	Peers []RaftPeer `codec:"peers" json:"peers"`
	Index uint64     `codec:"index" json:"index"`
}

// JoinArgs asks the leader to add a server to the Raft configuration.
type JoinArgs struct {
	ID      string `codec:"id"`
	Address string `codec:"address"`
	Voter   bool   `codec:"voter"`
	Cloud   string `codec:"cloud"`
	Region  string `codec:"region"`
}

// RemovePeerArgs asks the leader to remove a server.
type RemovePeerArgs struct {
	ID string `codec:"id"`
}

// TransferArgs asks the leader to hand leadership over. ID empty: the
// library picks the most up-to-date voter.
type TransferArgs struct {
	ID string `codec:"id"`
}

// TransferReply names the new leader.
type TransferReply struct {
	LeaderID   string `codec:"leader_id" json:"leader_id"`
	LeaderAddr string `codec:"leader_addr" json:"leader_addr"`
}

// ServerLabelsArgs records a server's labels in the manifest.
type ServerLabelsArgs struct {
	Server fsm.Server `codec:"server"`
}

// Empty is the reply of methods that return nothing but success.
type Empty struct {
	Index uint64 `codec:"index" json:"index"`
}

// ServerAddr is one entry of the server list handed to agents.
type ServerAddr struct {
	ID      string `codec:"id" json:"id"`
	Address string `codec:"address" json:"address"`
}

// NodeRegisterArgs are the arguments of Node.Register.
type NodeRegisterArgs struct {
	ID       string            `codec:"id"`
	Address  string            `codec:"address"`
	Cloud    string            `codec:"cloud"`
	Region   string            `codec:"region"`
	Capacity int               `codec:"capacity"`
	Meta     map[string]string `codec:"meta"`
}

// NodeRegisterReply is the reply of Node.Register.
type NodeRegisterReply struct {
	Node                *fsm.Node    `codec:"node" json:"node"`
	Index               uint64       `codec:"index" json:"index"`
	HeartbeatIntervalMS int64        `codec:"heartbeat_interval_ms" json:"heartbeat_interval_ms"`
	TTLMS               int64        `codec:"ttl_ms" json:"ttl_ms"`
	FollowSpreadMS      int64        `codec:"follow_spread_ms" json:"follow_spread_ms"`
	LeaderID            string       `codec:"leader_id" json:"leader_id"`
	LeaderAddr          string       `codec:"leader_addr" json:"leader_addr"`
	Servers             []ServerAddr `codec:"servers" json:"servers"`
}

// HeartbeatArgs are the arguments of Node.Heartbeat.
type HeartbeatArgs struct {
	NodeID   string   `codec:"node_id"`
	Draining bool     `codec:"draining"`
	Running  []string `codec:"running"`
}

// HeartbeatReply is the reply of Node.Heartbeat.
type HeartbeatReply struct {
	Status              string       `codec:"status" json:"status"`
	HeartbeatIntervalMS int64        `codec:"heartbeat_interval_ms" json:"heartbeat_interval_ms"`
	TTLMS               int64        `codec:"ttl_ms" json:"ttl_ms"`
	FollowSpreadMS      int64        `codec:"follow_spread_ms" json:"follow_spread_ms"`
	Tasks               []*fsm.Task  `codec:"tasks" json:"tasks"`
	LeaderID            string       `codec:"leader_id" json:"leader_id"`
	LeaderAddr          string       `codec:"leader_addr" json:"leader_addr"`
	Servers             []ServerAddr `codec:"servers" json:"servers"`
	Index               uint64       `codec:"index" json:"index"`
}

// NodeIDArgs name one node.
type NodeIDArgs struct {
	NodeID string `codec:"node_id"`
}

// NodeInfo is a node plus what the leader knows of its liveness.
type NodeInfo struct {
	fsm.Node
	// HeartbeatAgeMS is how long ago the node heartbeated to the leader
	// (-1: unknown on this server).
	HeartbeatAgeMS int64 `codec:"heartbeat_age_ms" json:"heartbeat_age_ms"`
	ActiveTasks    int   `codec:"active_tasks" json:"active_tasks"`
}

// NodeListArgs are the arguments of Node.List.
type NodeListArgs struct {
	QueryOptions
}

// NodeListReply is the reply of Node.List.
type NodeListReply struct {
	Nodes []NodeInfo `codec:"nodes" json:"nodes"`
	QueryMeta
}

// NodeGetArgs are the arguments of Node.Get.
type NodeGetArgs struct {
	ID string `codec:"id"`
	QueryOptions
}

// NodeGetReply is the reply of Node.Get.
type NodeGetReply struct {
	Node  *NodeInfo   `codec:"node" json:"node"`
	Tasks []*fsm.Task `codec:"tasks" json:"tasks"`
	QueryMeta
}

// TaskReportArgs are the arguments of Task.Start, Task.Complete and Task.Fail.
type TaskReportArgs struct {
	TaskID string     `codec:"task_id"`
	NodeID string     `codec:"node_id"`
	Result fsm.Result `codec:"result"`
}
