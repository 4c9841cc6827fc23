//go:build linux

package fault_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/rctl-dev/rctl/fault"
)

// TestChaos is a randomized nemesis session (`make chaos SEED=… DURATION=…`):
// with the workload, a write pulse and node agents running jobs, it
// injects one fault after another, chosen by the seed (fault.ChaosKinds:
// kills, pauses, isolations, partitions, cloud splits, bridges, loss,
// latency spikes, agent kills, whole-cluster restarts), heals each and
// waits for the cluster to settle; then it heals everything and runs every
// check. It writes a Markdown report (faults, elections, checks, figures,
// the monitor's timeline) and prints its path; the history sits next to
// it.
//
// It runs only when RCTL_CHAOS_SEED is set. RCTL_CHAOS_DURATION (default
// 5m) is how long faults are injected; RCTL_CHAOS_SHAPE "3+2" (default)
// or "3+3"; RCTL_CHAOS_REPORT the report's path (default
// $TMPDIR/rctl-chaos-<seed>-<time>/report.md).
func TestChaos(t *testing.T) {
	t.Parallel()
	seedText := os.Getenv("RCTL_CHAOS_SEED")
	if seedText == "" {
		t.Skip("randomized nemesis session: runs only with RCTL_CHAOS_SEED set (make chaos SEED=1 DURATION=5m)")
	}
	seed, err := strconv.ParseUint(seedText, 10, 64)
	if err != nil {
		t.Fatalf("RCTL_CHAOS_SEED=%q: want an unsigned integer", seedText)
	}
	dur := 5 * time.Minute
	if s := os.Getenv("RCTL_CHAOS_DURATION"); s != "" {
		if dur, err = time.ParseDuration(s); err != nil || dur <= 0 {
			t.Fatalf("RCTL_CHAOS_DURATION=%q: want a duration such as 10m", s)
		}
	}
	aws, gcp := 3, 2
	if s := os.Getenv("RCTL_CHAOS_SHAPE"); s != "" {
		if _, err := fmt.Sscanf(s, "%d+%d", &aws, &gcp); err != nil || aws < 1 || gcp < 1 || aws > 9 || gcp > 9 {
			t.Fatalf("RCTL_CHAOS_SHAPE=%q: want e.g. 3+2", s)
		}
	}
	reportPath := os.Getenv("RCTL_CHAOS_REPORT")
	if reportPath == "" {
		reportPath = filepath.Join(os.TempDir(), fmt.Sprintf("rctl-chaos-%d-%s", seed, time.Now().Format("20060102-150405")), "report.md")
	}
	if reportPath, err = filepath.Abs(reportPath); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(reportPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	c, mon := startClusterWith(t, clusterOpts{aws: aws, gcp: gcp, agents: 1})
	nem := fault.NewNemesis(c, mon, seed)
	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	rig := startAgents(t, c, "job", time.Second)
	work := startWorkloadCfg(c, 2, fault.WorkloadConfig{Prefix: "lin", OpTimeout: 4 * time.Second, Seed: seed})
	pulse := fault.StartPulse(pulseClient(c, 2*time.Second), "pulse-chaos", 200*time.Millisecond, 10*time.Second)
	defer pulse.Stop()

	t.Logf("chaos: seed %d, %s of faults on %d aws + %d gcp; report will be %s", seed, dur, aws, gcp, reportPath)
	faults := nem.Chaos(fault.ChaosConfig{Duration: dur, Logf: t.Logf})
	nem.Calm()
	calmed := time.Now()
	for i := range faults {
		f := &faults[i]
		f.Writes = pulse.Stats(f.Start, f.End).String()
	}
	time.Sleep(2 * time.Second) // writes go on over the calm
	pulse.Stop()
	h := work.Stop()
	acked, uncertain := rig.stop()

	rep := &fault.ChaosReport{Seed: seed, Shape: fmt.Sprintf("%d aws + %d gcp", aws, gcp), Duration: dur,
		Net: c.Net.Config, Binary: rctlBin, Agents: fault.AgentNames(c.Agents), Started: mon.Start(), Faults: faults}
	check := func(name string, err error, ok string) {
		r := fault.CheckResult{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			r.Detail = err.Error()
		}
		rep.Checks = append(rep.Checks, r)
		t.Logf("check %s: ok=%v %s", name, r.OK, r.Detail)
	}

	var unsettled []string
	for i, f := range faults {
		if f.Settled < 0 {
			unsettled = append(unsettled, fmt.Sprintf("#%d %s", i+1, f.Kind))
		}
	}
	check("every fault settled within 30 s of its heal", errIf(len(unsettled) > 0, "not settled after %s", strings.Join(unsettled, ", ")),
		fmt.Sprintf("%d faults", len(faults)))
	leader, err := mon.WaitStable(ctxFor(t, 60*time.Second))
	check("a stable leader once calm", err, fmt.Sprintf("%s, %s after the calm", leader, ms(time.Since(calmed))))
	start := time.Now()
	res, err := fault.CheckLinearizable(h, dir, 2*time.Minute)
	if err == nil && res == porcupine.Unknown {
		err = fmt.Errorf("undecided after %s (checker timeout)", ms(time.Since(start)))
	}
	check("linearizable history (porcupine, task lists)", err, fmt.Sprintf("%d operations, %s", len(h.Ops()), res))
	if rig != nil {
		tasks, err := c.WaitJobsDone(ctxFor(t, 2*time.Minute), acked, uncertain)
		check("every acknowledged job completes", err, fmt.Sprintf("%d acknowledged, %d uncertain", len(acked), len(uncertain)))
		runs, err := fault.ReadLedger(rig.ledger)
		if err == nil {
			var st fault.JobStats
			st, err = fault.CheckJobRuns(tasks, runs, rig.prefix)
			rep.Figures = append(rep.Figures, "jobs: "+st.String())
		}
		check("no job ran on two nodes at once; every run was assigned; every completion ran", err, "ledger agrees with the manifest")
		fol, err := c.WaitAgentsFollowLeader(ctxFor(t, 30*time.Second), agentHeartbeatAge)
		check("agents heartbeat to the current leader", err, fol.String())
	}
	m, err := c.WaitConverged(ctxFor(t, 60*time.Second), 0)
	check("identical manifests on every server", err, fmt.Sprintf("index %d, %d tasks, sha256 %.12s", m.Info.Index, m.Info.Tasks, m.Info.SHA256))
	check("no acknowledged write lost", c.CheckAcknowledged(ctxFor(t, 20*time.Second), h), "every acknowledged add and cancel on every server")
	check("at most one leader per term", mon.CheckOneLeaderPerTerm(), "")

	rep.Elections = mon.ElectionsSince(time.Time{})
	rep.Figures = append(rep.Figures,
		fmt.Sprintf("workload: %d operations %v", len(h.Ops()), h.Counts()),
		fmt.Sprintf("writes (pulse from c-aws) over the session: %s", pulse.Stats(mon.Start(), calmed)))
	for _, k := range []string{fault.OpAdd, fault.OpGet, fault.OpList} {
		if ds := h.Latencies(k, okOutcome(k), 0, 0); len(ds) > 0 {
			rep.Figures = append(rep.Figures, fmt.Sprintf("workload %s: %d ok, p50 %s p99 %s", k, len(ds), ms(fault.Percentile(ds, 50)), ms(fault.Percentile(ds, 99))))
		}
	}
	if err := h.WriteJSON(filepath.Join(dir, "history.jsonl")); err == nil {
		rep.Files = append(rep.Files, filepath.Join(dir, "history.jsonl")+": the workload's history, one operation a line")
	}
	if _, err := os.Stat(filepath.Join(dir, "history.html")); err == nil {
		rep.Files = append(rep.Files, filepath.Join(dir, "history.html")+": porcupine's visualization of the violation")
	}
	rep.Timeline = mon.Timeline()
	if err := rep.Write(reportPath); err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos report: %s", reportPath)
	fmt.Fprintf(os.Stderr, "\nchaos report (seed %d, %s): %s\n\n", seed, map[bool]string{true: "PASS", false: "FAIL"}[rep.Passed()], reportPath)
	if !rep.Passed() {
		t.Errorf("chaos session failed its checks; see %s", reportPath)
	}
}

func errIf(cond bool, format string, args ...any) error {
	if cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}
