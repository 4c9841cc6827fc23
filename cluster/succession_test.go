package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestSuccessionOrder(t *testing.T) {
	voters := []raft.Server{{ID: "gcp2"}, {ID: "aws3"}, {ID: "gcp1"}, {ID: "aws1"}, {ID: "aws2"}}
	clouds := []string{"gcp", "aws", "gcp", "aws", "aws"}
	for _, tc := range []struct {
		preferred string
		gone      raft.ServerID
		want      []raft.ServerID
	}{
		{"aws", "aws1", []raft.ServerID{"aws2", "aws3", "gcp1", "gcp2"}},
		{"aws", "gcp1", []raft.ServerID{"aws1", "aws2", "aws3", "gcp2"}},
		{"gcp", "aws2", []raft.ServerID{"gcp1", "gcp2", "aws1", "aws3"}},
		{"", "aws3", []raft.ServerID{"aws1", "aws2", "gcp1", "gcp2"}},
	} {
		got := successionOrder(voters, clouds, tc.preferred, tc.gone)
		if !slices.Equal(got, tc.want) {
			t.Errorf("preferred %q, gone %s: order %v, want %v", tc.preferred, tc.gone, got, tc.want)
		}
	}
}

// TestSuccessorStandsWhenLeaderExits: when the leader's process goes away
// (its port refuses connections), the first server in the order of
// successors is elected, ahead of raft's heartbeat timeout. Without
// succession the new leader is whichever follower's timer fires first, so
// three kills naming the expected successor each time would be chance
// with probability (1/4)³.
func TestSuccessorStandsWhenLeaderExits(t *testing.T) {
	c := newTestCluster(t, 5)
	for range 3 {
		l := c.waitLeader(10 * time.Second)
		gone := raft.ServerID(c.cfgs[l].NodeID)
		var voters []raft.Server
		for _, cfg := range c.cfgs {
			voters = append(voters, raft.Server{ID: raft.ServerID(cfg.NodeID)})
		}
		want := successionOrder(voters, make([]string, len(voters)), "", gone)[0]

		stopped := time.Now()
		c.stop(l)
		nl := c.waitLeader(10 * time.Second)
		took := time.Since(stopped)
		t.Logf("%s stopped; %s leads after %s (heartbeat timeout %s)", gone, c.cfgs[nl].NodeID, took, c.servers[nl].timing.HeartbeatTimeout)
		if got := raft.ServerID(c.cfgs[nl].NodeID); got != want {
			t.Fatalf("after %s left, %s was elected; want the first successor %s", gone, got, want)
		}
		c.start(l)
		// The next round's successor may be the restarted server: let it
		// catch up first, as a behind successor leaves the election to
		// the next one.
		last := c.servers[nl].raft.LastIndex()
		succeedsWithin(t, 10*time.Second, func() error {
			if got := c.servers[l].raft.AppliedIndex(); got < last {
				return fmt.Errorf("%s applied %d of %d", c.cfgs[l].NodeID, got, last)
			}
			return nil
		})
	}
}
