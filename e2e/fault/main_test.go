//go:build linux

// Package fault_test holds rctl's fault scenarios: real `rctl serve
// --timing wan` processes, each in its own network namespace on the
// emulated two-cloud network of package fault (RTT 25 ms within a cloud,
// 243 ms across), with real Python node agents in namespaces of their
// own, under crashes and partitions. One test per scenario, each logging
// its figures (run with -v to see them):
//
//	TestEmulatedNetwork     the emulated RTTs, measured with real TCP
//	TestColdStart           3+2 servers: first leader and first write (< 10 s)
//	TestLeaderKillFailover  10 × kill -9 of the leader: new leader and first
//	                        write (< 5 s each), p50/p99, agents following the
//	                        new leader; a concurrent add/get/list/cancel
//	                        workload from both clouds checked for
//	                        linearizability (porcupine + list checks),
//	                        acknowledged writes, identical manifests, one
//	                        leader per term; 4 agents running shell jobs:
//	                        every acknowledged job completes, no job runs on
//	                        two nodes at once (ledger vs manifest)
//	TestMinorityPartition   leader + 1 cut off for 9 s: majority commits,
//	                        minority refuses, old leader steps down, the cut
//	                        off agents' jobs move; minority-side clients keep
//	                        reading; heal → converged; all checks as above
//	TestCloudSplit          3+3: no side writes, stale reads answered;
//	                        3+2: the aws side writes; heal → converged
//	TestLeaderIsolated      new leader, old one steps down, catches up
//	TestPausedLeader        SIGSTOP the leader, SIGCONT: it follows, and the
//	                        reads queued at it while frozen do not see its
//	                        stale state
//	TestRestartRecoversLog  kill -9 a follower / every server, restart:
//	                        nothing acknowledged is lost
//	TestBridgePartition     two halves and one server seeing both: the
//	                        leader's half commits on, the far side's clients
//	                        write through the bridge
//	TestPacketLoss          5 % loss per link, a leader kill under it (< 5 s),
//	                        10 %: writes never stop for 5 s, no election in
//	                        either loss window
//	TestLatencySpikes       +500 ms on one cross-cloud link (no election),
//	                        +100/250/500 ms on the leader, +250 ms on a
//	                        cloud, +500 ms on a follower: writes never stop
//	                        for 5 s, the cluster settles after each
//	TestFaultFreeRun        1 minute (RCTL_FAULT_STABLE: longer) without
//	                        faults, agents and workload running: no
//	                        election, no server ever seen without a leader
//	TestChaos               a randomized nemesis session with a Markdown
//	                        report; only with RCTL_CHAOS_SEED (make chaos)
//	TestLongJobsCutOffAgents agents cut off for longer than their TTL while
//	                        running 8 s jobs: they fence themselves (stop
//	                        their jobs) before the leader requeues them, so
//	                        no job runs on two nodes at once
//
// Every scenario builds its own network (namespaces named per process and
// network, see package fault), so they run in parallel: make test passes
// -parallel 3 (go test's default is GOMAXPROCS). Mostly they wait on the
// emulated network's delays and timeouts: three at a time keep about a
// third of two cores busy. For figures of one scenario alone, run it
// alone (-run).
//
// They need root and skip with a message without it. Without a node agent
// (RCTL_AGENT_BIN, or agent/.venv from `make agent-venv`) the scenarios
// that use agents run without them and log that they did. Run as root
// from the repository root:
//
//	go test -count=1 -v ./e2e/fault/
//
// RCTL_BIN uses a prebuilt rctl instead of building one; RCTL_FAULT_ROUNDS
// changes the number of leader kills (default 10); RCTL_FAULT_STABLE the
// length of the fault-free run (default 1m); RCTL_FAULT_SCALE multiplies
// the loss and spike phases (default 1). RCTL_CHAOS_SEED,
// RCTL_CHAOS_DURATION, RCTL_CHAOS_SHAPE and RCTL_CHAOS_REPORT drive
// TestChaos. A failing test keeps its servers' and agents' data dirs and
// logs (and, for a linearizability violation, history.jsonl and
// porcupine's history.html) in a directory it names.
package fault_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rctl-dev/rctl/fault"
)

var (
	rctlBin string
	// agentBin is the node agent (RCTL_AGENT_BIN or the repository's
	// agent/.venv); agentErr says why there is none, and the scenarios
	// run without agents, saying so.
	agentBin string
	agentErr error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	agentBin, agentErr = fault.FindAgentBin("../..")
	if fault.Requirements() != nil {
		return m.Run() // every scenario skips with the reason
	}
	if bin := os.Getenv("RCTL_BIN"); bin != "" {
		rctlBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "rctl-fault-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rctlBin = filepath.Join(dir, "rctl")
	// No -race: five servers under the race detector on two cores would
	// measure the detector, not the timing profile.
	cmd := exec.Command("go", "build", "-o", rctlBin, "../..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "fault: build rctl:", err)
		return 1
	}
	return m.Run()
}
