package cluster

import (
	"github.com/rctl-dev/rctl/fsm"
)

// maxAssignPerRound bounds one scheduling round, so a huge backlog is
// worked off in slices that each commit quickly.
const maxAssignPerRound = 512

// assignment is one decision of the scheduler.
type assignment struct {
	TaskID string
	NodeID string
}

// plan assigns pending tasks (oldest first) to eligible nodes with free
// capacity, spreading them: each task goes to the candidate with the most
// free slots (ties: the lowest id), honouring the task's cloud constraint.
// held(id) is the number of tasks a node holds. plan is pure: the same
// inputs always give the same plan.
func plan(pending []*fsm.Task, nodes []*fsm.Node, held func(string) int, eligible func(*fsm.Node) bool, limit int) []assignment {
	type slot struct {
		node *fsm.Node
		free int
	}
	var slots []*slot
	total := 0
	for _, n := range nodes {
		if !eligible(n) {
			continue
		}
		if free := n.Capacity - held(n.ID); free > 0 {
			slots = append(slots, &slot{node: n, free: free})
			total += free
		}
	}
	var out []assignment
	for _, t := range pending {
		if total == 0 || len(out) >= limit {
			break
		}
		var best *slot
		for _, s := range slots {
			if s.free == 0 || (t.Cloud != "" && s.node.Cloud != t.Cloud) {
				continue
			}
			if best == nil || s.free > best.free || (s.free == best.free && s.node.ID < best.node.ID) {
				best = s
			}
		}
		if best == nil {
			continue // no node in the task's cloud has room; try the next task
		}
		best.free--
		total--
		out = append(out, assignment{TaskID: t.ID, NodeID: best.node.ID})
	}
	return out
}
