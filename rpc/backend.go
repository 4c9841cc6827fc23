package rpc

import (
	"context"
	"io"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// Backend is what the cluster provides to the RPC layer.
type Backend interface {
	// FSM is the local manifest state machine (read-only here: every
	// change goes through Propose).
	FSM() *fsm.FSM

	// The replicated log, as intents (cluster/consensus.go implements
	// them on hashicorp/raft; rpc does not import it). Errors are *Error
	// with a documented code.

	// RaftState is a snapshot of this server's raft state.
	RaftState() RaftState
	// Leader is the leader's address and id as this server knows them
	// ("" when it knows none).
	Leader() (addr, id string)
	// IsLeader reports whether this server is the raft leader (not
	// necessarily established: see LeaderReady).
	IsLeader() bool
	// Servers is the latest raft configuration this server knows.
	Servers() ([]RaftServer, error)
	// Propose appends an encoded entry to the log (this server leads) and
	// waits until it is applied, the entry is refused, timeout passes
	// before it is queued, or ctx ends; it returns the state machine's
	// result. After ctx ends the entry may still commit.
	Propose(ctx context.Context, data []byte, timeout time.Duration) (*fsm.ApplyResult, error)
	// ReadBarrier makes a linearizable read safe on the leader: leadership
	// is confirmed with a quorum after the call started, and the state
	// machine has applied everything committed when it started.
	ReadBarrier(ctx context.Context) error
	// AddServer adds a voter or non-voter to the configuration (this
	// server leads) and returns the change's log index.
	AddServer(ctx context.Context, id, addr string, voter bool) (uint64, error)
	// RemoveServer removes a server from the configuration (this server
	// leads) and returns the change's log index.
	RemoveServer(ctx context.Context, id string) (uint64, error)
	// Restore replaces the state with a verified snapshot of size bytes
	// read from r (this server leads) and returns the applied index after.
	Restore(ctx context.Context, r io.Reader, size int64) (uint64, error)

	// Self is this server's id, advertised address and labels.
	Self() fsm.Server
	// LeaderReady reports whether this server is leader and has applied
	// every entry committed before its term (cluster: its manifest holds
	// every entry of earlier terms in its log), so it
	// may serve linearizable reads.
	LeaderReady() bool
	// LastLeaderChange is when this server last saw the leader change.
	LastLeaderChange() time.Time
	// ConfigIndex is the log index of the latest committed raft
	// configuration change this server has applied.
	ConfigIndex() uint64
	// LeaderWatch returns a channel closed at the next leader change
	// this server observes (a new leader, or the leader lost), or when
	// its own leadership becomes established.
	LeaderWatch() <-chan struct{}
	// NodeHeartbeat records a node agent's heartbeat on the leader and
	// returns the interval and TTL to hand back; ok is false when this
	// server is not an established leader.
	NodeHeartbeat(nodeID string, draining bool) (interval, ttl time.Duration, ok bool)
	// NodeHeartbeatAge is how long ago a node heartbeated to this leader.
	NodeHeartbeatAge(nodeID string) (time.Duration, bool)
	// HeartbeatParams is the interval and TTL for the current fleet.
	HeartbeatParams() (interval, ttl time.Duration)
	// TimingProfile is the name of the server's --timing profile and the
	// largest server-to-server round trip it is made for.
	TimingProfile() (name string, maxRTT time.Duration)
	// HealthFigures are this server's commit p99 (as leader: a write from
	// proposal to the state machine's result) and log sync p99 (a batch of
	// log entries stored on disk) over the last minute, in milliseconds;
	// -1 without samples.
	HealthFigures() (commitP99MS, logSyncP99MS float64)
	// FollowSpread is how long node agents spread their first heartbeat
	// to a new leader (docs/rpc.md, "Following elections").
	FollowSpread() time.Duration
	// ForgetNode drops a deregistered node from liveness tracking.
	ForgetNode(nodeID string)
	// RetireNow retires every finished task that finished more than
	// olderThan ago (this server leads) and returns how many and the last
	// entry's index.
	RetireNow(ctx context.Context, olderThan time.Duration) (int, uint64, error)
	// TransferLeadership hands leadership (this server leads) to target,
	// or to the best live, caught-up voter when target is "", and returns
	// the new leader once seen. No suitable voter: conflict.
	TransferLeadership(ctx context.Context, target string) (id, addr string, err error)
}

// RaftState is a snapshot of one server's raft state.
type RaftState struct {
	// State is "leader", "follower", "candidate" or "shutdown".
	State                                      string
	Term, CommitIndex, AppliedIndex, LastIndex uint64
	// LastContact is when a follower last heard from its leader (zero:
	// never; meaningless on the leader).
	LastContact time.Time
}

// RaftServer is one server of the raft configuration.
type RaftServer struct {
	ID, Address string
	Voter       bool
}
