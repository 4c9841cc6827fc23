package rpc

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRaftStaysInCluster: the cluster package owns Raft; rpc and the fsm
// below it reach it only through the Backend (doc.go, "The Backend").
func TestRaftStaysInCluster(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list is not available here: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/hashicorp/raft") {
			t.Errorf("rpc depends on %s; only cluster may import raft", dep)
		}
	}
}
