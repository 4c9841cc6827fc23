package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// addAndCancel adds n tasks (in batches) and cancels each: n finished tasks.
func addAndCancel(t *testing.T, cl *rpc.Client, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for start := 0; start < n; start += fsm.MaxBatch {
		var batch rpc.TaskAddBatchArgs
		for i := start; i < min(n, start+fsm.MaxBatch); i++ {
			id := fmt.Sprintf("%s-%05d", prefix, i)
			ids = append(ids, id)
			batch.Tasks = append(batch.Tasks, rpc.TaskAddArgs{ID: id, Type: "sleep"})
		}
		if err := cl.Call(ctxT(t, 30*time.Second), rpc.MethodTaskAddBatch, &batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: id}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func TestRetentionKeepsTheManifestBounded(t *testing.T) {
	const keep = 300
	c := newTestClusterWith(t, 3, func(_ int, cfg *Config) {
		cfg.Retention = RetentionConfig{MaxPerStatus: keep, Interval: 100 * time.Millisecond}
	})
	l := c.waitLeader(10 * time.Second)
	cl := c.client(l)
	// Three rounds of finished tasks, each far over the limit: the count
	// of finished tasks comes back to the limit every time, the newest
	// kept, on every server.
	var ids []string
	for round := range 3 {
		ids = addAndCancel(t, cl, fmt.Sprintf("r%d", round), 2*keep)
		succeedsWithin(t, 20*time.Second, func() error {
			for i, s := range c.servers {
				if n := s.fsm.TaskCounts()[fsm.TaskCancelled]; n != keep {
					return fmt.Errorf("round %d: %s holds %d cancelled tasks, want %d", round, c.cfgs[i].NodeID, n, keep)
				}
			}
			return nil
		})
	}
	// The newest are the ones kept; an old one is gone with a hint.
	for _, s := range c.servers {
		if s.fsm.Task(ids[len(ids)-1]) == nil || s.fsm.Task(ids[0]) != nil {
			t.Fatal("retention did not keep exactly the newest finished tasks")
		}
	}
	err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskGet, &rpc.TaskGetArgs{ID: ids[0]}, nil)
	if !isCode(err, rpc.CodeNotFound) || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("task get of a retired task: %v, want not_found saying it was retired", err)
	}
	// A retired id may be used again.
	if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: ids[0], Type: "shell"}, nil); err != nil {
		t.Fatalf("re-adding a retired id: %v", err)
	}
}

func TestTaskGCRetiresNow(t *testing.T) {
	c := newTestClusterWith(t, 3, func(_ int, cfg *Config) {
		cfg.Retention = RetentionConfig{Disabled: true}
	})
	l := c.waitLeader(10 * time.Second)
	ids := addAndCancel(t, c.client(l), "gc", 50)
	// Not finished: must stay.
	if err := c.client(l).Call(ctxT(t, 10*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "live", Type: "sleep"}, nil); err != nil {
		t.Fatal(err)
	}
	var reply rpc.TaskGCReply
	// Through a follower: forwarded to the leader.
	f := (l + 1) % 3
	succeedsWithin(t, 10*time.Second, func() error {
		if err := c.client(f).Call(ctxT(t, 10*time.Second), rpc.MethodTaskGC, &rpc.TaskGCArgs{OlderThanMS: 1}, &reply); err != nil {
			return err
		}
		if reply.Retired == 0 {
			return errors.New("nothing retired yet")
		}
		return nil
	})
	succeedsWithin(t, 10*time.Second, func() error {
		for i, s := range c.servers {
			if n := s.fsm.TaskCounts()[fsm.TaskCancelled]; n != 0 {
				return fmt.Errorf("%s still holds %d cancelled tasks", c.cfgs[i].NodeID, n)
			}
			if s.fsm.Task("live") == nil {
				return fmt.Errorf("%s lost the pending task", c.cfgs[i].NodeID)
			}
			if _, ok := s.fsm.Retired(ids[0]); !ok {
				return fmt.Errorf("%s does not remember %s as retired", c.cfgs[i].NodeID, ids[0])
			}
		}
		return nil
	})
	err := c.client(l).Call(ctxT(t, 10*time.Second), rpc.MethodTaskGC, &rpc.TaskGCArgs{OlderThanMS: 0}, nil)
	if !isCode(err, rpc.CodeInvalidArgument) {
		t.Fatalf("gc with no age: %v", err)
	}
}
