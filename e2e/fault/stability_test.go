//go:build linux

package fault_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

// scaled multiplies a phase's duration by RCTL_FAULT_SCALE (a float,
// default 1): longer fault phases for manual runs.
func scaled(d time.Duration) time.Duration {
	if s := os.Getenv("RCTL_FAULT_SCALE"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(float64(d) * f)
		}
	}
	return d
}

// stableRun is the length of TestFaultFreeRun: RCTL_FAULT_STABLE (a Go
// duration, e.g. 1h) or 1 minute. make test runs the minute (it was 3,
// which held make test over 20 minutes); the stability figures in
// bench/RESULTS-peer.md come from hour-long runs (RCTL_FAULT_STABLE=1h,
// go test -timeout 2h).
func stableRun(t *testing.T) time.Duration {
	if s := os.Getenv("RCTL_FAULT_STABLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("RCTL_FAULT_STABLE=%q: want a duration such as 10m", s)
		}
		return d
	}
	return time.Minute
}

// A fault-free run on the wan network: 3 aws + 2 gcp servers, node agents
// in both clouds running jobs, the add/get/list/cancel workload from both
// clouds and a pulse of writes. Not one leader change may happen, and no
// server may ever be seen without a leader (a follower that lost its
// leader and pre-votes in vain leaves the term as it is: DESIGN.md's
// pitfall; the monitor counts those observations too).
func TestFaultFreeRun(t *testing.T) {
	t.Parallel()
	run := stableRun(t)
	c, mon := startClusterWith(t, clusterOpts{aws: 3, gcp: 2, agents: 1})
	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	rig := startAgents(t, c, "job", time.Second)
	work := startWorkload(c, 2)
	pulseAWS := fault.StartPulse(pulseClient(c, 2*time.Second), "pulse-aws", 250*time.Millisecond, 10*time.Second)
	gcp := c.Client("c-gcp")
	gcp.AttemptTimeout = 2 * time.Second
	pulseGCP := fault.StartPulse(gcp, "pulse-gcp", 250*time.Millisecond, 10*time.Second)
	leader, term := mon.Leader()
	t0 := time.Now()
	// Poll for an early failure instead of only looking at the end.
	for time.Since(t0) < run {
		time.Sleep(min(5*time.Second, run-time.Since(t0)))
		if st := mon.StabilitySince(t0); !st.Quiet() {
			t.Errorf("after %s of fault-free running: %s", ms(time.Since(t0)), st)
			break
		}
	}
	end := time.Now()
	pulseAWS.Stop()
	pulseGCP.Stop()
	st := mon.StabilitySince(t0)
	t.Logf("fault-free run of %s (3 aws + 2 gcp, wan, leader %s term %d): %s; %d monitor polls in all", ms(end.Sub(t0)), leader, term, st, st.Polls)
	t.Logf("writes from c-aws: %s", pulseAWS.Stats(t0, end))
	t.Logf("writes from c-gcp: %s", pulseGCP.Stats(t0, end))
	h := work.History()
	for _, k := range []string{fault.OpAdd, fault.OpGet, fault.OpList, fault.OpListStale} {
		if ds := h.Latencies(k, okOutcome(k), 0, 0); len(ds) > 0 {
			t.Logf("workload %s: %d ok, p50 %s p99 %s", k, len(ds), ms(fault.Percentile(ds, 50)), ms(fault.Percentile(ds, 99)))
		}
	}
	if !st.Quiet() {
		t.Errorf("fault-free run: want no election and no server without a leader, got %s", st)
	}
	if l, tm := mon.Leader(); l != leader || tm != term {
		t.Errorf("leader moved from %s (term %d) to %s (term %d) without a fault", leader, term, l, tm)
	}
	finish(t, c, mon, work, rig)
}

// okOutcome is the outcome of a successful operation of a kind (a get's
// is a status).
func okOutcome(kind string) string {
	if kind == fault.OpGet {
		return "pending"
	}
	return fault.OutOK
}

// A long run at 10 % loss on every link (issue 16: the 400 ms succession
// silence must not move leadership under loss that leaves every quorum
// able to talk). RCTL_FAULT_LOSS_SOAK (a Go duration, e.g. 20m) sets its
// length; without it the test is skipped, so make test does not run it.
// Only the pulse writes run, no history: a linearizability check of tens
// of minutes of the full workload does not fit the machine
// (bench/RESULTS-peer.md, the hour-long fault-free run). A window is
// reported every 5 minutes.
func TestLossSoak(t *testing.T) {
	t.Parallel()
	s := os.Getenv("RCTL_FAULT_LOSS_SOAK")
	if s == "" {
		t.Skip("set RCTL_FAULT_LOSS_SOAK=<duration> (e.g. 20m; go test -timeout above it) to hold 10% loss on every link that long")
	}
	run, err := time.ParseDuration(s)
	if err != nil || run <= 0 {
		t.Fatalf("RCTL_FAULT_LOSS_SOAK=%q: want a duration such as 20m", s)
	}
	c, mon := startCluster(t, 3, 2, false)
	nem := fault.NewNemesis(c, mon, 10)
	if _, err := nem.Leader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	pulse := fault.StartPulse(pulseClient(c, 2*time.Second), "pulse-soak", 100*time.Millisecond, 10*time.Second)
	defer pulse.Stop()
	nodes := nem.NodeNames()
	nem.LinkLoss(0.10, nodes...)
	t0 := time.Now()
	for done := time.Duration(0); done < run; {
		step := min(run-done, 5*time.Minute)
		from := time.Now()
		time.Sleep(step)
		window(t, fmt.Sprintf("10%% loss per link, %s–%s", done, done+step), mon, pulse, from, time.Now())
		done += step
	}
	noElection(t, "10% loss per link, the whole soak", mon, t0)
	nem.LinkLoss(0, nodes...)
}
