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
	// SuccessionSilence: a follower that has heard nothing from a leader
	// for this long asks the other voters whether they have; if a quorum
	// has not, the first successor stands at once (succession.go). 0
	// leaves silent leaders to raft's own timeouts.
	SuccessionSilence time.Duration
	// MaxRPCsInFlight bounds the AppendEntries the leader has in flight to
	// one follower (raft's pipelining; 0 is the library's default, 2).
	// With 2, a write that arrives while two batches are on a 25 ms link
	// waits for one to come back: on wan, 16 clients saw 66 ms instead of
	// 55 ms per write (bench/peer throughput: 235 writes/s at 2, 289 at 16,
	// 284 at 64; 64 clients 871, 1113, 1070).
	MaxRPCsInFlight int
	// MaxRTT is the largest round trip between two servers the profile is
	// made for. Status.Members and Operator.RTT warn above it: the
	// timeouts leave no margin (docs/operations.md, "Timing profiles").
	MaxRTT time.Duration
}

var timings = map[string]Timing{
	// lan: servers within one datacenter or on one machine (RTT < 5 ms).
	// Short enough for sub-2 s failover, long enough that a loaded 2-core
	// machine running five servers under the race detector elects once.
	"lan": {Name: "lan", HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond, CommitTimeout: 20 * time.Millisecond,
		MaxRTT: 20 * time.Millisecond},
	// wan: servers split over AWS and GCP, intra-cloud RTT ≈ 25 ms and
	// cross-cloud RTT ≈ 243 ms. Failover here is succession's job
	// (succession.go): the first successor stands when the leader's port
	// refuses (a crash) or when a quorum has not heard from the leader for
	// SuccessionSilence (a hang or a partition), ~0.3 s and ~0.65 s after
	// the leader's last word. SuccessionSilence is several times the gap
	// between two words from a healthy leader (its replication stream
	// sends an AppendEntries every CommitTimeout, 50–100 ms, entries or
	// not) and above a lost packet's retransmission stall within a cloud
	// (≈ 0.23 s); a quorum of voters must be silent at once
	// (docs/operations.md, "Timing profiles"). raft's own timeouts are the fallback and
	// must not fire before a successor's election is through (about
	// SuccessionSilence + two cross-cloud round trips), or candidates in
	// both clouds disrupt each other's elections: with 300/600 ms they
	// let terms pass for up to 10 s (docs/operations.md, "Failover").
	// The lease must outlast the gap between two heartbeats across clouds
	// (RTT + up to HeartbeatTimeout/5 ≈ 550 ms) or a leader in the
	// two-server cloud would step down on an idle cluster.
	"wan": {Name: "wan", HeartbeatTimeout: 1500 * time.Millisecond, ElectionTimeout: 1500 * time.Millisecond,
		LeaderLeaseTimeout: 800 * time.Millisecond, CommitTimeout: 50 * time.Millisecond,
		SuccessionSilence: 400 * time.Millisecond, MaxRPCsInFlight: 16,
		MaxRTT: 500 * time.Millisecond},
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
