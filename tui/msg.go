package tui

import (
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// StatusMsg carries the connected server's Status.Get answer.
type StatusMsg struct {
	Addr   string
	Status rpc.StatusReply
	At     time.Time
}

// MembersMsg carries a Status.Members answer. Stale is set when the leader
// could not be asked (Err says why) and Reply is the connected server's own
// list, without probes. Reply is nil when even that failed.
type MembersMsg struct {
	Addr  string
	Reply *rpc.MembersReply
	Stale bool
	Err   string
	At    time.Time
}

// NodesMsg carries a Node.List answer, or Err with a nil Reply when the read
// failed. Stale marks a reply served from the connected server's local
// state because the leader could not be reached (Err says why).
type NodesMsg struct {
	Addr  string
	Reply *rpc.NodeListReply
	Stale bool
	Err   string
	At    time.Time
}

// TasksMsg carries a Task.List answer: the newest tasks matching Filter
// (one bounded page, see TaskListArgs) and the counts of the whole
// manifest; other fields as NodesMsg.
type TasksMsg struct {
	Addr   string
	Filter string // the view filter the page was asked for
	Reply  *rpc.TaskListReply
	Stale  bool
	Err    string
	At     time.Time
}

// ConnMsg says the watcher is now talking to the server at Addr (id ID).
// PrevAddr is empty for the first connection; otherwise the previous server
// failed for Reason (or knew no leader) and the view moved away from it.
type ConnMsg struct {
	Addr, ID         string
	PrevAddr, PrevID string
	Reason           string
	At               time.Time
}

// ConnLostMsg says no known server answered; the watcher keeps retrying.
type ConnLostMsg struct {
	Tried []string
	Err   string
	At    time.Time
}

// TickMsg advances the model's clock (ages, "leader for", notices).
type TickMsg time.Time
