package cluster

import (
	"sort"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// LivenessConfig sets how node agents are judged.
type LivenessConfig struct {
	// MinInterval is the heartbeat interval handed to agents while the
	// fleet is small. Default 1 s.
	MinInterval time.Duration
	// MaxRate bounds heartbeats per second across the fleet: the interval
	// grows to nodes/MaxRate seconds when that is longer than MinInterval.
	// Default 10,000/s.
	MaxRate float64
	// TTLFactor and TTLSlack give the TTL: TTLFactor × interval + TTLSlack.
	// A node is degraded after 2 × interval without a heartbeat and
	// unreachable after the TTL. Defaults 3 and 1 s (TTL 4 s at 1 s), which
	// tolerates two lost heartbeats plus a cross-cloud round trip.
	TTLFactor int
	TTLSlack  time.Duration
}

// DefaultLiveness returns the defaults documented on LivenessConfig.
func DefaultLiveness() LivenessConfig {
	return LivenessConfig{MinInterval: time.Second, MaxRate: 10000, TTLFactor: 3, TTLSlack: time.Second}
}

// liveness is the leader's in-memory view of node heartbeats. Heartbeats
// are not Raft writes: only status changes are proposed. It lives only
// while this server leads; a new leader starts a fresh one whose start
// time acts as every node's last heartbeat, which grants each node a grace
// period of one TTL before it can be judged.
type liveness struct {
	cfg   LivenessConfig
	clock Clock
	start time.Time

	mu       sync.Mutex
	lastSeen map[string]time.Time
	draining map[string]bool
}

func newLiveness(cfg LivenessConfig, clock Clock) *liveness {
	return &liveness{cfg: cfg, clock: clock, start: clock.Now(),
		lastSeen: map[string]time.Time{}, draining: map[string]bool{}}
}

// Interval is the heartbeat interval for a fleet of n nodes.
func (l *liveness) Interval(n int) time.Duration {
	iv := l.cfg.MinInterval
	if l.cfg.MaxRate > 0 {
		if scaled := time.Duration(float64(n) / l.cfg.MaxRate * float64(time.Second)); scaled > iv {
			iv = scaled.Round(time.Millisecond)
		}
	}
	return iv
}

// followBurst is how many times the steady heartbeat rate (MaxRate) a new
// leader takes while a fleet follows an election (docs/rpc.md, "Following
// elections"): agents spread their first heartbeat to it over
// FollowSpread, so that burst stays within followBurst × MaxRate.
const followBurst = 4

// FollowSpread is how long a fleet of n nodes spreads its first heartbeats
// to a new leader: n / (followBurst × MaxRate), at most a quarter interval
// (10,000 nodes: 250 ms; a handful: about nothing).
func (l *liveness) FollowSpread(n int) time.Duration {
	if l.cfg.MaxRate <= 0 {
		return l.Interval(n) / 4
	}
	d := time.Duration(float64(n) / (followBurst * l.cfg.MaxRate) * float64(time.Second))
	return min(d, l.Interval(n)/4).Round(time.Millisecond)
}

// TTL is how long a node may stay silent before it is unreachable.
func (l *liveness) TTL(n int) time.Duration {
	return time.Duration(l.cfg.TTLFactor)*l.Interval(n) + l.cfg.TTLSlack
}

// Heartbeat records a heartbeat from id.
func (l *liveness) Heartbeat(id string, draining bool) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastSeen[id] = now
	if draining {
		l.draining[id] = true
	} else {
		delete(l.draining, id)
	}
}

// Forget drops a node (after it deregistered).
func (l *liveness) Forget(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.lastSeen, id)
	delete(l.draining, id)
}

// Age is how long ago id last heartbeated to this leader (false if never).
func (l *liveness) Age(id string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.lastSeen[id]
	if !ok {
		return 0, false
	}
	return l.clock.Now().Sub(t), true
}

// Draining reports whether id asked for no new work.
func (l *liveness) Draining(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining[id]
}

// Assignable reports whether the scheduler may give id new work: it has
// heartbeated to this leader (or registered with it) and did not ask to
// drain. A new leader knows nothing of drains asked of its predecessor
// (they live in memory, not in the manifest), so it assigns nothing to a
// node until that node's first heartbeat tells it — at most one interval
// after the leader change.
func (l *liveness) Assignable(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, seen := l.lastSeen[id]
	return seen && !l.draining[id]
}

// statusChange is a decision to propose.
type statusChange struct {
	NodeID string
	From   fsm.NodeStatus
	To     fsm.NodeStatus
}

// Judge compares every node's recorded status with what its heartbeat age
// says and returns the changes to commit, sorted by node id. A node never
// heard from since this leader started is judged from the leader's start.
func (l *liveness) Judge(nodes []*fsm.Node) []statusChange {
	now := l.clock.Now()
	iv := l.Interval(len(nodes))
	ttl := l.TTL(len(nodes))
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []statusChange
	for _, n := range nodes {
		seen, ok := l.lastSeen[n.ID]
		if !ok {
			seen = l.start
		}
		age := now.Sub(seen)
		want := fsm.NodeHealthy
		switch {
		case age > ttl:
			want = fsm.NodeUnreachable
		case age > 2*iv:
			want = fsm.NodeDegraded
		}
		// Only a heartbeat brings a node back: a node the leader has not
		// heard from stays as it is until its age says worse.
		if !ok && want == fsm.NodeHealthy {
			continue
		}
		if n.Status == fsm.NodeUnreachable && want != fsm.NodeHealthy {
			continue
		}
		if want != n.Status {
			out = append(out, statusChange{NodeID: n.ID, From: n.Status, To: want})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// FollowSpread is how long the current fleet spreads its first heartbeats
// to a new leader (liveness.FollowSpread).
func (s *Server) FollowSpread() time.Duration {
	lv := s.liveTracker()
	if lv == nil {
		lv = newLiveness(s.cfg.Liveness, s.clock)
	}
	return lv.FollowSpread(s.fsm.NodeCount())
}
