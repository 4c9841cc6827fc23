package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

func TestPreferredCloud(t *testing.T) {
	cases := []struct {
		name   string
		pin    string
		clouds []string
		want   string
	}{
		{"3+2 prefers the quorum cloud", "", []string{"aws", "aws", "aws", "gcp", "gcp"}, "aws"},
		{"2+3 the other way", "", []string{"aws", "aws", "gcp", "gcp", "gcp"}, "gcp"},
		{"3+3 has no quorum cloud", "", []string{"aws", "aws", "aws", "gcp", "gcp", "gcp"}, ""},
		{"one cloud: nothing to gain", "", []string{"aws", "aws", "aws"}, ""},
		{"unlabelled majority is no preference", "", []string{"", "", "", "gcp", "gcp"}, ""},
		{"pinned wins", "gcp", []string{"aws", "aws", "aws", "gcp", "gcp"}, "gcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := preferredCloud(tc.pin, tc.clouds); got != tc.want {
				t.Fatalf("preferredCloud(%q, %v) = %q, want %q", tc.pin, tc.clouds, got, tc.want)
			}
		})
	}
}

func placementCluster(t *testing.T, pin string, clouds ...string) *testCluster {
	t.Helper()
	c := newTestClusterWith(t, len(clouds), func(i int, cfg *Config) {
		cfg.Cloud = clouds[i]
		cfg.Placement = PlacementConfig{PreferCloud: pin, Interval: 100 * time.Millisecond, Settle: 500 * time.Millisecond,
			Backoff: time.Second, MaxLag: 64}
	})
	// Wait until every server's labels are in the manifest.
	l := c.waitLeader(10 * time.Second)
	succeedsWithin(t, 10*time.Second, func() error {
		if n := len(c.servers[l].FSM().Servers()); n != len(clouds) {
			return fmt.Errorf("%d of %d servers labelled", n, len(clouds))
		}
		return nil
	})
	return c
}

func (c *testCluster) leaderCloud() string {
	for i, s := range c.servers {
		if s != nil && s.LeaderReady() {
			return c.cfgs[i].Cloud
		}
	}
	return ""
}

func TestLeaderMovesToTheQuorumCloudAndStays(t *testing.T) {
	c := placementCluster(t, "", "aws", "aws", "gcp")
	l := c.waitLeader(10 * time.Second)
	// Put the leader in gcp by hand.
	var tr rpc.TransferReply
	if err := c.client(l).Call(ctxT(t, 10*time.Second), rpc.MethodRaftTransfer, &rpc.TransferArgs{ID: "s3"}, &tr); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	succeedsWithin(t, 10*time.Second, func() error {
		if cl := c.leaderCloud(); cl != "aws" {
			return fmt.Errorf("leader in %q", cl)
		}
		return nil
	})
	t.Logf("leadership back in aws %s after it was moved to gcp (settle 500ms)", time.Since(moved).Round(time.Millisecond))
	// No flapping: an aws leader never moves on its own.
	first := c.waitLeader(5 * time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if i := c.waitLeader(5 * time.Second); i != first {
			t.Fatalf("leadership moved again, from s%d to s%d", first+1, i+1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPlacementWaitsForAHealthyTarget(t *testing.T) {
	c := placementCluster(t, "aws", "aws", "gcp", "gcp")
	l := c.waitLeader(10 * time.Second)
	if c.cfgs[l].Cloud == "aws" { // start from a gcp leader
		var tr rpc.TransferReply
		if err := c.client(l).Call(ctxT(t, 10*time.Second), rpc.MethodRaftTransfer, &rpc.TransferArgs{ID: "s2"}, &tr); err != nil {
			t.Fatal(err)
		}
		succeedsWithin(t, 5*time.Second, func() error {
			if c.leaderCloud() != "gcp" {
				return fmt.Errorf("leader not in gcp yet")
			}
			return nil
		})
	}
	c.isolate(0, true) // the only aws server is cut off
	// Watch well past settle and many placement checks: it must not move.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cl := c.leaderCloud(); cl == "aws" {
			t.Fatal("leadership moved to aws while the aws server was unreachable")
		}
	}
	c.isolate(0, false)
	succeedsWithin(t, 15*time.Second, func() error {
		if cl := c.leaderCloud(); cl != "aws" {
			return fmt.Errorf("leader in %q", cl)
		}
		return nil
	})
}
