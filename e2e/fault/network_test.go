//go:build linux

package fault_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

// Network faults that are not clean cuts: a bridge partition, packet loss
// and latency spikes. Each runs the add/get/list/cancel workload and a
// pulse (a write every 100 ms from c-aws, any server) that measures how
// long writes ever stop, and ends with the usual checks once the network
// is whole again.

// pulseClient is a failover client in c-aws over every server that gives
// a silent server attempt before trying the next.
func pulseClient(c *fault.Cluster, attempt time.Duration) *fault.Client {
	cl := c.Client("c-aws")
	cl.AttemptTimeout = attempt
	return cl
}

// finish stops the workload and the jobs and runs every check of a healed
// cluster (stop other writers, such as pulses, first): a stable leader, a linearizable history, every acknowledged
// job complete with sound runs and agents following the leader, identical
// manifests, no acknowledged write lost, one leader per term.
func finish(t *testing.T, c *fault.Cluster, mon *fault.Monitor, work *fault.Workload, rig *agentRig) {
	t.Helper()
	h := work.Stop()
	acked, uncertain := rig.stop()
	t.Logf("workload: %d operations %v", len(h.Ops()), h.Counts())
	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	checkHistory(t, c, h)
	rig.check(t, acked, uncertain)
	m, err := c.WaitConverged(ctxFor(t, 30*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("converged: every server holds manifest index %d, %d tasks, sha256 %.12s", m.Info.Index, m.Info.Tasks, m.Info.SHA256)
	if err := c.CheckAcknowledged(ctxFor(t, 10*time.Second), h); err != nil {
		t.Error(err)
	}
	if err := mon.CheckOneLeaderPerTerm(); err != nil {
		t.Error(err)
	}
}

// window logs what the monitor and the pulse saw in [from, to) and fails
// the test if writes stopped for the failover bound or longer: whatever
// the fault, a cluster with a quorum of connected servers must not be
// without a leader (or a write) for longer than it takes to replace a
// dead one.
func window(t *testing.T, name string, mon *fault.Monitor, pulse *fault.Pulse, from, to time.Time) fault.PulseStats {
	t.Helper()
	ps := pulse.Stats(from, to)
	longest, total := mon.Leaderless(from, to)
	t.Logf("%s (%s): %s; %s; without a leader %s in all, longest %s",
		name, ms(to.Sub(from)), ps, mon.StabilitySince(from), ms(total), ms(longest))
	if ps.Gap >= 2*failoverBound {
		t.Errorf("%s: no write acknowledged for %s, want < %s", name, ms(ps.Gap), 2*failoverBound)
	}
	return ps
}

// noElection fails the test if a leader was elected since from: faults
// that leave every quorum able to talk (loss, a slow link) must not move
// leadership (issue 16's stability bar).
func noElection(t *testing.T, name string, mon *fault.Monitor, from time.Time) {
	t.Helper()
	if es := mon.ElectionsSince(from); len(es) > 0 {
		t.Errorf("%s: %d leader election(s) %v, want none", name, len(es), es)
	}
}

// A bridge partition: two halves that cannot reach each other and one
// server (of the other cloud than the leader) that reaches both. The half
// holding the leader plus the bridge is a quorum, so the cluster keeps
// committing; the other half cannot elect a leader of its own (the bridge
// knows a leader and refuses its votes) and its clients get through via
// the bridge. Healed, everything converges.
func TestBridgePartition(t *testing.T) {
	t.Parallel()
	c, mon := startCluster(t, 3, 2, false)
	nem := fault.NewNemesis(c, mon, 7)
	leader, err := nem.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	other := "gcp"
	if leader.Cloud == "gcp" {
		other = "aws"
	}
	followers := nem.Followers(leader)
	bridge := fault.InCloud(followers, other)[0]
	rest := fault.Without(followers, bridge)
	mate := rest[0]
	if same := fault.InCloud(rest, leader.Cloud); len(same) > 0 {
		mate = same[0]
	}
	side1 := []*fault.Server{leader, mate}
	side2 := fault.Without(rest, mate)

	work := startWorkload(c, 2)
	pulse := fault.StartPulse(pulseClient(c, time.Second), "pulse-bridge", 100*time.Millisecond, 10*time.Second)
	defer pulse.Stop()
	nem.Bridge(bridge.Name, fault.Side(side1, "c-aws"), fault.Side(side2, "c-gcp"))
	t0 := time.Now()
	at, by, err := fault.FirstWrite(ctxFor(t, 20*time.Second), c.Probes("c-aws", append(side1, bridge)...), "bridge")
	if err != nil {
		t.Fatalf("the side %v with the bridge %s cannot write: %v", fault.Names(side1), bridge.Name, err)
	}
	// A client on the other side, with only that side's servers and the
	// bridge, still gets its write through (via the bridge).
	far := probeClient(c, "c-gcp", append(side2, bridge)...)
	farAt, err := fault.Write(ctxFor(t, 20*time.Second), far, "bridge-far")
	if err != nil {
		t.Errorf("a client next to %v and the bridge could not write: %v", fault.Names(side2), err)
	}
	time.Sleep(time.Until(t0.Add(8 * time.Second))) // hold the partition
	end := time.Now()
	t.Logf("bridge partition %v | %s | %v (leader %s): first committed write (%s) after %s; a write from the far side (c-gcp → %v, %s) after %s",
		fault.Names(side1), bridge.Name, fault.Names(side2), leader.Name, by, ms(at.Sub(t0)),
		fault.Names(side2), bridge.Name, ms(farAt.Sub(t0)))
	window(t, "bridge partition", mon, pulse, t0, end)
	l, _ := mon.Leader()
	t.Logf("leader during the bridge partition: %s (before: %s)", l, leader.Name)

	nem.Heal()
	healed := time.Now()
	time.Sleep(2 * time.Second) // the workload runs on across the heal
	window(t, "after the heal", mon, pulse, healed, time.Now())
	pulse.Stop()
	finish(t, c, mon, work, nil)
}

// Packet loss on every link (servers and clients): 5 % each way for a
// while, then a leader kill under that loss (the seed's failover bound
// applies), then 10 %. Figures are logged; writes must never stop for the
// failover bound, and neither loss window may see a leader election.
func TestPacketLoss(t *testing.T) {
	t.Parallel()
	c, mon := startCluster(t, 3, 2, false)
	nem := fault.NewNemesis(c, mon, 8)
	if _, err := nem.Leader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	work := startWorkload(c, 2)
	pulse := fault.StartPulse(pulseClient(c, 2*time.Second), "pulse-loss", 100*time.Millisecond, 10*time.Second)
	defer pulse.Stop()
	nodes := nem.NodeNames()
	hold := scaled(12 * time.Second)

	nem.LinkLoss(0.05, nodes...)
	t1 := time.Now()
	time.Sleep(hold)
	window(t, "5% loss per link", mon, pulse, t1, time.Now())
	noElection(t, "5% loss per link", mon, t1)

	// kill -9 of the leader under 5 % loss.
	old, err := nem.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctxFor(t, 2*time.Second), old)
	if err != nil {
		t.Fatal(err)
	}
	nem.Kill(old)
	t0 := time.Now()
	wroteAt, by, err := fault.FirstWrite(ctxFor(t, 20*time.Second), c.LocalProbes(fault.Without(c.Servers, old)...), "loss-kill")
	if err != nil {
		t.Fatalf("no write after killing %s under 5%% loss: %v", old.Name, err)
	}
	newLeader, _, electedAt, err := mon.WaitLeader(ctxFor(t, 10*time.Second), st.Term, old.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("5%% loss: killed leader %s → new leader %s after %s, first committed write (%s) after %s",
		old.Name, newLeader, ms(electedAt.Sub(t0)), by, ms(wroteAt.Sub(t0)))
	if d := electedAt.Sub(t0); d >= failoverBound {
		t.Errorf("5%% loss: new leader %s after the leader's kill, want < %s", ms(d), failoverBound)
	}
	if d := wroteAt.Sub(t0); d >= stallBound {
		t.Errorf("5%% loss: first committed write %s after the leader's kill, want < %s", ms(d), stallBound)
	}
	nem.Restart(old)

	nem.LinkLoss(0.10, nodes...)
	t2 := time.Now()
	time.Sleep(hold * 2 / 3)
	window(t, "10% loss per link", mon, pulse, t2, time.Now())
	noElection(t, "10% loss per link", mon, t2)

	nem.LinkLoss(0, nodes...)
	pulse.Stop()
	finish(t, c, mon, work, nil)
}

// Latency spikes: extra one-way delay on the leader's links (100, 250
// and 500 ms), on a whole cloud and on one follower, a few seconds each,
// and on one cross-cloud link (the leader ↔ a GCP voter), which must not
// move leadership. A big enough spike on the leader may; writes must never
// stop for the failover bound, and the cluster must settle after each.
func TestLatencySpikes(t *testing.T) {
	t.Parallel()
	c, mon := startCluster(t, 3, 2, false)
	nem := fault.NewNemesis(c, mon, 9)
	if _, err := nem.Leader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	work := startWorkload(c, 2)
	pulse := fault.StartPulse(pulseClient(c, 2*time.Second), "pulse-spike", 100*time.Millisecond, 10*time.Second)
	defer pulse.Stop()
	hold := scaled(4 * time.Second)
	leaderNode := func() []string {
		l, err := nem.Leader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return []string{l.Name}
	}
	cases := []struct {
		name  string
		delay time.Duration
		nodes func() []string
	}{
		{"leader", 100 * time.Millisecond, leaderNode},
		{"leader", 250 * time.Millisecond, leaderNode},
		{"leader", 500 * time.Millisecond, leaderNode},
		{"gcp cloud", 250 * time.Millisecond, func() []string {
			return append(fault.Names(fault.InCloud(c.Servers, "gcp")), "c-gcp")
		}},
		{"one aws follower", 500 * time.Millisecond, func() []string {
			l, err := nem.Leader(30 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return []string{fault.InCloud(nem.Followers(l), "aws")[0].Name}
		}},
	}
	// +500 ms on one cross-cloud link (the leader ↔ a GCP voter), twice
	// as long as the others: the far voter hears the leader late, the
	// rest of the quorum on time. Issue 16: no leader change.
	{
		l, err := nem.Leader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		far := fault.InCloud(nem.Followers(l), "gcp")[0].Name
		nem.LinkSpike(500*time.Millisecond, l.Name, far)
		t0 := time.Now()
		time.Sleep(2 * hold)
		nem.LinkSpike(0, l.Name, far)
		name := fmt.Sprintf("+500ms one way on the link %s ↔ %s", l.Name, far)
		window(t, name, mon, pulse, t0, time.Now())
		noElection(t, name, mon, t0)
	}
	for _, tc := range cases {
		nodes := tc.nodes()
		nem.Spike(tc.delay, nodes...)
		t0 := time.Now()
		time.Sleep(hold)
		nem.Spike(0, nodes...)
		window(t, fmt.Sprintf("+%s one way on %s %v", tc.delay, tc.name, nodes), mon, pulse, t0, time.Now())
		settled := time.Now()
		if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		t.Logf("  settled %s after the spike", ms(time.Since(settled)))
	}
	pulse.Stop()
	finish(t, c, mon, work, nil)
}

// A leader on a bad link: heavy loss on every frame to or from the
// leader's host, so its followers hear it in bursts with long silences
// between (TCP backs off), and writes through it mostly time out. Issue 16
// asked for this case to be decided: such a leader is replaced. A quorum
// of voters that has not heard it for SuccessionSilence is the same
// evidence as for a silent leader, so succession stands a successor; the
// old leader, heard again by a follower at a newer term, steps down.
// Writes must go on through the others within the stall bound, and a new
// leader must be elected within twice the seed's failover bound (this
// leader is not dead: the 5 s bound is for a dead one); healed, everything
// converges. Measured: 0b2e7d2 (600 ms silence, probes answered at once)
// elected one after 2.5–6.9 s; 0f2aa99…1426009 after 1.1–5.8 s over 13 runs
// (one CI run on 0903189 at 5.77 s, when raft's own election split its
// votes twice). The tail beyond 5 s is open in issue 16: followers hear
// such a leader in bursts, a quorum is rarely silent at the same moment,
// and raft's timers, not succession, then decide.
func TestLeaderOnALossyLink(t *testing.T) {
	t.Parallel()
	c, mon := startCluster(t, 3, 2, false)
	nem := fault.NewNemesis(c, mon, 10)
	leader, st := leaderAndStatus(t, c, nem)
	nem.Loss(lossyLeaderLink, leader.Name)
	t0 := time.Now()
	rest := fault.Without(c.Servers, leader)
	wroteAt, by, err := fault.FirstWrite(ctxFor(t, 20*time.Second), c.LocalProbes(rest...), "lossy")
	if err != nil {
		t.Fatal(err)
	}
	newLeader, _, electedAt, err := mon.WaitLeader(ctxFor(t, 10*time.Second), st.Term, leader.Name)
	if err != nil {
		t.Fatalf("leader %s with %.0f%% loss on its link: no other leader: %v", leader.Name, 100*lossyLeaderLink, err)
	}
	t.Logf("leader %s with %.0f%% loss on its link: %s elected after %s, first committed write through the others (%s) after %s",
		leader.Name, 100*lossyLeaderLink, newLeader, ms(electedAt.Sub(t0)), by, ms(wroteAt.Sub(t0)))
	if d := electedAt.Sub(t0); d >= 2*failoverBound {
		t.Errorf("new leader %s after the leader's link went bad, want < %s (twice the seed's failover bound)", ms(d), 2*failoverBound)
	}
	if d := wroteAt.Sub(t0); d >= stallBound {
		t.Errorf("first committed write %s after the leader's link went bad, want < %s", ms(d), stallBound)
	}
	nem.Loss(0, leader.Name)
	m, err := c.WaitConverged(ctxFor(t, 30*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("healed: all converged (index %d, %d tasks)", m.Info.Index, m.Info.Tasks)
	if err := mon.CheckOneLeaderPerTerm(); err != nil {
		t.Error(err)
	}
}

// lossyLeaderLink is the loss on the bad leader's port in
// TestLeaderOnALossyLink: each way, on every frame.
const lossyLeaderLink = 0.5
