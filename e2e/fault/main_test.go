//go:build linux

// Package fault_test holds rctl's fault scenarios: real `rctl serve
// --timing wan` processes, each in its own network namespace on the
// emulated two-cloud network of package fault (RTT 25 ms within a cloud,
// 243 ms across), under crashes and partitions. One test per scenario,
// each logging its figures (run with -v to see them):
//
//	TestEmulatedNetwork     the emulated RTTs, measured with real TCP
//	TestColdStart           3+2 servers: first leader and first write (< 10 s)
//	TestLeaderKillFailover  10 × kill -9 of the leader: new leader and first
//	                        write (< 5 s each), p50/p99; a concurrent
//	                        add/get/cancel workload from both clouds checked
//	                        for linearizability (porcupine), acknowledged
//	                        writes, identical manifests, one leader per term
//	TestMinorityPartition   leader + 1 cut off: majority commits, minority
//	                        refuses, old leader steps down; heal → converged;
//	                        workload checked as above
//	TestCloudSplit          3+3: no side writes, stale reads answered;
//	                        3+2: the aws side writes; heal → converged
//	TestLeaderIsolated      new leader, old one steps down, catches up
//	TestPausedLeader        SIGSTOP the leader, SIGCONT: it follows
//	TestRestartRecoversLog  kill -9 a follower / every server, restart:
//	                        nothing acknowledged is lost
//
// They need root and skip with a message without it. Run as root from the
// repository root:
//
//	go test -race -count=1 -v ./e2e/fault/
//
// RCTL_BIN uses a prebuilt rctl instead of building one; RCTL_FAULT_ROUNDS
// changes the number of leader kills (default 10). A failing test keeps
// its servers' data dirs and logs (and, for a linearizability violation,
// history.jsonl and porcupine's history.html) in a directory it names.
package fault_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rctl-dev/rctl/fault"
)

var rctlBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
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
