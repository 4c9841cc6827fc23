package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// ReadBarrier waits for the manifest, not for raft's applied index, which
// counts entries handed to the FSM goroutine. The manifest never sees
// no-ops, barriers or configuration entries, so when the log ends in them
// its applied index is below the commit index; a read must still return at
// once, and a read after a write must see the write.
func TestReadBarrierWaitsForTheManifest(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.servers[c.waitLeader(10*time.Second)]
	succeedsWithin(t, 10*time.Second, func() error { // the server's own labels, a command
		if s.fsm.Server("s1") == nil {
			return fmt.Errorf("s1's labels not applied yet")
		}
		return nil
	})
	if err := s.raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}

	if got, commit := s.fsm.Indexes().Applied, s.raft.CommitIndex(); got >= commit {
		t.Fatalf("manifest applied index %d, commit index %d: want the log to end in entries the manifest never sees", got, commit)
	}
	t0 := time.Now()
	if err := s.ReadBarrier(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("read barrier after the election: %v", err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Errorf("read barrier after the election took %v; it has no command to wait for", took)
	}

	if err := s.propose(&fsm.NodeRegisterEntry{ID: "n1", Address: "10.0.0.1:7000", Cloud: "aws", Capacity: 1, Time: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadBarrier(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("read barrier after a write: %v", err)
	}
	if s.fsm.Node("n1") == nil {
		t.Fatal("a read after the write does not see it")
	}
}
