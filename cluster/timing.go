package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Timing is a named set of Raft timeouts chosen for one kind of network.
// The values are documented in docs/operations.md with the measurements
// behind them; change both together.
type Timing struct {
	Name string
	// HeartbeatTimeout: a follower that hears nothing from the leader for
	// this long (randomised up to 2x) starts a pre-vote. The leader sends
	// heartbeats at a tenth of it.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: a candidate that wins no election in this long
	// (randomised up to 2x) starts another one.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: a leader that cannot reach a quorum for this long
	// steps down. Must be ≤ HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: the longest a follower waits to learn a new commit
	// index when no entries flow.
	CommitTimeout time.Duration
}

var timings = map[string]Timing{
	// lan: servers within one datacenter or on one machine (RTT < 5 ms).
	// Short enough for sub-2 s failover, long enough that a loaded 2-core
	// machine running five servers under the race detector elects once.
	"lan": {Name: "lan", HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond, CommitTimeout: 20 * time.Millisecond},
	// wan: servers split over AWS and GCP, intra-cloud RTT ≈ 25 ms and
	// cross-cloud RTT ≈ 243 ms. The heartbeat timeout is > 1 cross-cloud
	// RTT with margin; pre-vote (on by default in raft 1.8) keeps a slow
	// follower from disturbing the term. Starting point measured in
	// DESIGN.md: p50 failover 2.0 s, no leader change in 180 s healthy.
	"wan": {Name: "wan", HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 600 * time.Millisecond,
		LeaderLeaseTimeout: 300 * time.Millisecond, CommitTimeout: 50 * time.Millisecond},
}

// TimingProfile returns the named profile.
func TimingProfile(name string) (Timing, error) {
	t, ok := timings[name]
	if !ok {
		return Timing{}, fmt.Errorf("timing: unknown profile %q; use lan or wan", name)
	}
	return t, nil
}

// apply copies the profile into a raft configuration.
func (t Timing) apply(c *raft.Config) {
	c.HeartbeatTimeout = t.HeartbeatTimeout
	c.ElectionTimeout = t.ElectionTimeout
	c.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	c.CommitTimeout = t.CommitTimeout
}
