//go:build linux

package fault

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The job's shell command records its run in the ledger format
// ReadLedger parses.
func TestJobCommandWritesLedger(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "it's a ledger")
	cmd := exec.Command("/bin/sh", "-c", JobCommand(10*time.Millisecond, ledger))
	cmd.Env = append(os.Environ(), "RCTL_TASK_ID=job-7", "RCTL_TASK_ATTEMPT=2", AgentNodeEnv+"=a-aws1")
	before := time.Now().UnixNano()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	runs, err := ReadLedger(ledger)
	if err != nil || len(runs) != 1 {
		t.Fatalf("ledger: %v, %v", runs, err)
	}
	r := runs[0]
	if r.Task != "job-7" || r.Attempt != 2 || r.Node != "a-aws1" || r.Start < before || r.End-r.Start < int64(10*time.Millisecond) {
		t.Fatalf("run %+v (started before %d)", r, before)
	}
}
