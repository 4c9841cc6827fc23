//go:build unix

package cluster

import (
	"syscall"
	"testing"
)

// The default total connection cap follows the open-file limit: a fixed
// 8192 refused the ten-thousandth agent's connection to the leader.
func TestDefaultConnLimitFollowsOpenFileLimit(t *testing.T) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	want := max(int(r.Cur)-fdReserve, 256)
	if got := DefaultConnLimits().Total; got != want {
		t.Fatalf("default --max-conns %d, want the open-file limit %d less %d = %d", got, r.Cur, fdReserve, want)
	}
	if r.Cur >= 11024 && DefaultConnLimits().Total < 10000 {
		t.Fatalf("with ulimit -n %d the default cap %d holds fewer than 10,000 agents", r.Cur, DefaultConnLimits().Total)
	}
}
