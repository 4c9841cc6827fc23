package cluster

import (
	"slices"
	"strings"

	"github.com/rctl-dev/rctl/fsm"
)

// maxAssignPerRound bounds one scheduling round, so a huge backlog is
// worked off in slices that each commit quickly.
const maxAssignPerRound = 512

// Which pending tasks a round looks at.
//
// A pending task can go only to a node of its cloud, or anywhere when its
// cloud is "". The fsm keeps the pending tasks grouped by that constraint,
// each group oldest first (fsm.OldestPending), so a round reads, per
// group, only the oldest tasks it could possibly place:
//
//   - cloud c (a cloud with free slots on healthy nodes): at most
//     min(free slots in c, limit) tasks;
//   - "" (anywhere): at most min(free slots in all, limit) tasks.
//
// Groups of clouds without free slots (a backlog for a cloud that has no
// node, or whose nodes are full) are not read at all. The groups are
// merged in (CreateIndex, ID) order, and plan assigns that list oldest
// first exactly as it would assign the whole backlog:
//
//   - a task of cloud c beyond the first free(c) of its group could only
//     be placed if an older task of c had not been, which happens only
//     when c has no free slot left; the same holds for "" and the total;
//   - plan stops after limit assignments, and every task it passes over
//     is a task of some cloud c whose slots went to "" tasks, so it
//     passes over at most as many tasks as it assigns: the first
//     2 × limit tasks of the merged list are all it can reach
//     (candidateCap).
//
// So the cut changes nothing (TestCandidatesPlanLikeTheWholeBacklog):
// fairness is oldest first among the tasks some node can take, across
// clouds, and a round reads at most 2 × limit tasks, merged through a heap
// of one cursor per group: O(assignments · log groups + groups), where
// groups is 1 + the clouds with room.

// candidateCap is the most candidates a round reads for limit
// assignments (see above).
func candidateCap(limit int) int { return 2 * limit }

// candidateQuotas returns what a round asks fsm.OldestPending for: the
// "" group up to the total free slots, and each cloud with free slots up
// to its own, every one capped at limit. free maps a node cloud to its
// free slots ("" for nodes without a cloud label, which only take
// unconstrained tasks). The result is sorted by cloud, so rounds are
// deterministic.
func candidateQuotas(free map[string]int, limit int) []fsm.PendingQuota {
	total := 0
	for _, n := range free {
		total += n
	}
	if total <= 0 || limit <= 0 {
		return nil
	}
	out := []fsm.PendingQuota{{Cloud: "", Limit: min(total, limit)}}
	for cloud, n := range free {
		if cloud != "" && n > 0 {
			out = append(out, fsm.PendingQuota{Cloud: cloud, Limit: min(n, limit)})
		}
	}
	slices.SortFunc(out[1:], func(a, b fsm.PendingQuota) int { return strings.Compare(a.Cloud, b.Cloud) })
	return out
}

// assignment is one decision of the scheduler.
type assignment struct {
	TaskID string
	NodeID string
}

// plan assigns pending tasks (oldest first: the order given) to eligible
// nodes with free capacity, spreading them: each task goes to the candidate with the most
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
