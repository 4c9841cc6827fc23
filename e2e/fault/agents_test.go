//go:build linux

package fault_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

// agentHeartbeatAge bounds heartbeat_age_ms on the leader for an agent
// that follows it: the agents heartbeat every second (the interval the
// leader hands out to a small fleet), plus a cross-cloud round trip and
// scheduling slack on a loaded machine.
const agentHeartbeatAge = 2500 * time.Millisecond

// agentSpecs returns perCloud agent namespaces per cloud, or none (with a
// log line saying why) when no node agent is installed: the scenario then
// runs without agents.
func agentSpecs(t *testing.T, perCloud int) []fault.NodeSpec {
	t.Helper()
	if agentErr != nil {
		t.Logf("NOTE: running without node agents: %v", agentErr)
		return nil
	}
	return fault.AgentsPerCloud(perCloud)
}

// agentRig is the agents of a cluster running jobs: shell tasks that
// sleep 0.5 s and record their runs in a ledger.
type agentRig struct {
	c      *fault.Cluster
	jobs   *fault.Jobs
	ledger string
	prefix string
}

// startAgents starts the cluster's agents, waits until the leader hears
// from all of them, and starts submitting jobs from both clouds. It
// returns nil when the cluster has no agents.
func startAgents(t *testing.T, c *fault.Cluster, prefix string, every time.Duration) *agentRig {
	t.Helper()
	if len(c.Agents) == 0 {
		return nil
	}
	c.StartAgents()
	res, err := c.WaitAgentsFollowLeader(ctxFor(t, 60*time.Second), agentHeartbeatAge)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agents %v registered; %s", fault.AgentNames(c.Agents), res)
	r := &agentRig{c: c, ledger: filepath.Join(c.Dir, prefix+".ledger"), prefix: prefix}
	var clients []*fault.Client
	for _, node := range []string{"c-aws", "c-gcp"} {
		cl := c.Client(node)
		cl.AttemptTimeout = 2 * time.Second
		clients = append(clients, cl)
	}
	r.jobs = fault.StartJobs(clients, fault.JobsConfig{Prefix: prefix, Every: every, Ledger: r.ledger})
	return r
}

// stop ends job submission and returns the acknowledged and uncertain
// jobs.
func (r *agentRig) stop() (acked, uncertain []string) {
	if r == nil {
		return nil, nil
	}
	return r.jobs.Stop()
}

// check waits until every acknowledged job has completed, checks the runs
// in the ledger against the manifest (no task ever ran on two nodes at
// once, every run was of an assignment, every completion has its run),
// and that every running agent heartbeats to the current leader. Call it
// after stop, once the network is healed.
func (r *agentRig) check(t *testing.T, acked, uncertain []string) {
	t.Helper()
	if r == nil {
		return
	}
	start := time.Now()
	tasks, err := r.c.WaitJobsDone(ctxFor(t, 90*time.Second), acked, uncertain)
	if err != nil {
		t.Error(err)
	}
	done := time.Since(start)
	runs, err := fault.ReadLedger(r.ledger)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fault.CheckJobRuns(tasks, runs, r.prefix)
	if err != nil {
		t.Errorf("job runs: %v", err)
	}
	t.Logf("agents: %d jobs acknowledged, %d uncertain; %s; all acknowledged complete %s after the workload stopped",
		len(acked), len(uncertain), st, ms(done))
	if len(acked) == 0 {
		t.Error("agents: no job was acknowledged")
	}
	fol, err := r.c.WaitAgentsFollowLeader(ctxFor(t, 20*time.Second), agentHeartbeatAge)
	if err != nil {
		t.Error(err)
		return
	}
	t.Logf("agents follow the leader: %s", fol)
}

// waitAgentsLogged waits until every agent's log holds the line part.
func waitAgentsLogged(t *testing.T, c *fault.Cluster, part string) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		var missing []string
		for _, a := range c.Agents {
			if b, err := os.ReadFile(a.LogPath); err != nil || !strings.Contains(string(b), part) {
				missing = append(missing, a.Name)
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("agents %v never logged %q", missing, part)
		}
	}
}

// waitAgentsFollow waits until every running agent heartbeats to the
// current leader and returns how long that took.
func waitAgentsFollow(t *testing.T, c *fault.Cluster, within time.Duration, not ...string) (fault.AgentsFollowing, time.Duration, error) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	res, err := c.WaitAgentsFollowLeader(ctx, agentHeartbeatAge, not...)
	return res, time.Since(start), err
}

// TestLongJobsCutOffAgents: agents cut off from every server for longer
// than their TTL while they run jobs longer than the TTL. The leader
// judges them unreachable and hands their jobs to the other agents; the
// cut-off agents, still alive, must not go on running them (no task held
// by two live nodes). Agents fence themselves: with no heartbeat
// acknowledged for ttl - max(ttl/4, interval) they stop their tasks, before
// the leader requeues them (this test failed before agents did).
func TestLongJobsCutOffAgents(t *testing.T) {
	t.Parallel()
	if agentErr != nil {
		t.Skip(agentErr)
	}
	c, mon := startClusterWith(t, clusterOpts{aws: 3, gcp: 2, agents: 2})
	nem := fault.NewNemesis(c, mon, 10)
	if _, err := nem.Leader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.StartAgents()
	if _, err := c.WaitAgentsFollowLeader(ctxFor(t, 60*time.Second), agentHeartbeatAge); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(c.Dir, "long.ledger")
	jobs := fault.StartJobs([]*fault.Client{c.Client("c-aws")}, fault.JobsConfig{Prefix: "long",
		Every: 300 * time.Millisecond, Run: 8 * time.Second, Ledger: ledger})
	time.Sleep(3 * time.Second) // every agent runs some
	cut := c.AgentsInCloud("gcp")
	var rest []string
	for _, n := range nem.NodeNames() {
		if !slices.Contains(cut, n) {
			rest = append(rest, n)
		}
	}
	nem.Partition(rest, cut)
	time.Sleep(10 * time.Second) // > the agents' TTL (4 s)
	nem.Heal()
	acked, uncertain := jobs.Stop()
	tasks, err := c.WaitJobsDone(ctxFor(t, 2*time.Minute), acked, uncertain)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := fault.ReadLedger(ledger)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fault.CheckJobRuns(tasks, runs, "long")
	t.Logf("agents %v cut off for 10 s running 8 s jobs: %s", cut, st)
	if err != nil {
		t.Error(err)
	}
}
