package fsm

import (
	"slices"
)

// The pending index: the scheduler's view of the backlog.
//
// A pending task may run only on a node whose cloud equals its Cloud, or
// anywhere when its Cloud is "". taskTable.pending groups the pending
// tasks by that constraint, each group in table order (CreateIndex, ID),
// so the scheduler asks for the oldest few of exactly the groups some node
// with free capacity can take (OldestPending), and a backlog constrained
// to a cloud without room costs it nothing, however large.

// pendingGroup holds the ordinals of the pending tasks of one cloud
// constraint, ascending, i.e. oldest first. Tasks are added in creation
// order, so a new one is appended; a requeued task goes back to its place
// (a binary search and a memmove of the younger entries). The scheduler
// takes the oldest, so removals are mostly at the front: a removed entry
// becomes a tombstone (dead), leading and trailing tombstones are dropped
// at once (reslicing), and the rest when they outnumber the live entries,
// so a removal costs a binary search plus O(1) amortized.
type pendingGroup struct {
	q    []pendingEntry
	dead int
}

// pendingEntry is one slot of a pendingGroup: a task's ordinal and whether
// the task has left the group (a tombstone keeps its ordinal for the
// binary search).
type pendingEntry struct {
	o    uint32
	dead bool
}

func (g *pendingGroup) live() int { return len(g.q) - g.dead }

// search returns the position of ordinal o in g, or where it would go.
func (g *pendingGroup) search(o uint32) (int, bool) {
	return slices.BinarySearchFunc(g.q, o, func(e pendingEntry, o uint32) int {
		switch {
		case e.o < o:
			return -1
		case e.o > o:
			return 1
		}
		return 0
	})
}

// add records ordinal o.
func (g *pendingGroup) add(o uint32) {
	if n := len(g.q); n == 0 || g.q[n-1].o < o {
		g.q = append(g.q, pendingEntry{o: o})
		return
	}
	i, found := g.search(o)
	if found { // its own tombstone: a task requeued before a compaction
		if g.q[i].dead {
			g.q[i].dead = false
			g.dead--
		}
		return
	}
	g.q = slices.Insert(g.q, i, pendingEntry{o: o})
}

// remove forgets ordinal o and reports whether the group is now empty.
func (g *pendingGroup) remove(o uint32) (empty bool) {
	i, found := g.search(o)
	if !found || g.q[i].dead {
		return g.live() == 0 // not recorded: never expected
	}
	g.q[i].dead = true
	g.dead++
	n := 0
	for n < len(g.q) && g.q[n].dead {
		n++
	}
	g.q = g.q[n:]
	g.dead -= n
	m := len(g.q)
	for m > 0 && g.q[m-1].dead {
		m--
		g.dead--
	}
	g.q = g.q[:m]
	if g.dead > 64 && g.dead > g.live() {
		g.q = slices.DeleteFunc(g.q, func(e pendingEntry) bool { return e.dead })
		g.dead = 0
	}
	return len(g.q) == 0
}

// renumber maps every live ordinal through renum (monotonic, so the order
// holds) and drops the tombstones: part of taskTable.compact.
func (g *pendingGroup) renumber(renum []uint32) {
	q := g.q[:0]
	for _, e := range g.q {
		if !e.dead {
			q = append(q, pendingEntry{o: renum[e.o]})
		}
	}
	g.q = slices.Clip(q)
	g.dead = 0
}

// oldest appends to out the ordinals of at most limit of the group's
// oldest tasks.
func (g *pendingGroup) oldest(limit int, out []uint32) []uint32 {
	for _, e := range g.q {
		if limit <= 0 {
			break
		}
		if !e.dead {
			out = append(out, e.o)
			limit--
		}
	}
	return out
}

// PendingQuota asks OldestPending for at most Limit of the oldest pending
// tasks whose cloud constraint (Task.Cloud) is exactly Cloud; Cloud ""
// asks for tasks that may run anywhere.
type PendingQuota struct {
	Cloud string
	Limit int
}

// OldestPending returns the oldest pending tasks of the quotas' groups,
// merged into one list in (CreateIndex, ID) order, oldest first: from
// each group (the tasks whose cloud constraint is the quota's Cloud) at
// most its Limit, and at most most in all (most ≤ 0: no total bound). A
// cloud listed twice counts once, with the larger limit. The groups are
// merged lazily (a heap of one cursor per group), so it reads only the
// tasks it returns: O(returned · log groups + groups), whatever the
// size of the backlog in these or other clouds.
func (f *FSM) OldestPending(quotas []PendingQuota, most int) []*Task {
	limits := make(map[string]int, len(quotas))
	for _, q := range quotas {
		if q.Limit > 0 {
			limits[q.Cloud] = max(limits[q.Cloud], q.Limit)
		}
	}
	if most <= 0 {
		most = int(^uint(0) >> 1)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	tt := &f.st.tasks
	h := make(pendingHeap, 0, len(limits))
	for cloud, limit := range limits { // the heap orders them: order-free
		if g := tt.pending[cloud]; g != nil {
			c := pendingCursor{q: g.q, left: limit}
			if c.advance() {
				h = append(h, c)
			}
		}
	}
	h.init()
	var out []*Task
	for len(h) > 0 && len(out) < most {
		c := &h[0]
		out = append(out, tt.list[c.q[c.i].o])
		c.i++
		c.left--
		if c.advance() {
			h.down(0)
		} else {
			h.pop()
		}
	}
	return out
}

// pendingCursor reads one group's live entries in order: q[i] is the next
// one while left > 0.
type pendingCursor struct {
	q    []pendingEntry
	i    int
	left int
}

// advance skips tombstones and reports whether the cursor has an entry.
func (c *pendingCursor) advance() bool {
	for c.i < len(c.q) && c.q[c.i].dead {
		c.i++
	}
	return c.left > 0 && c.i < len(c.q)
}

// pendingHeap is a min-heap of cursors by their next ordinal.
type pendingHeap []pendingCursor

func (h pendingHeap) less(a, b int) bool { return h[a].q[h[a].i].o < h[b].q[h[b].i].o }

func (h pendingHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h pendingHeap) down(i int) {
	for {
		m := i
		if l := 2*i + 1; l < len(h) && h.less(l, m) {
			m = l
		}
		if r := 2*i + 2; r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h *pendingHeap) pop() {
	n := len(*h) - 1
	(*h)[0] = (*h)[n]
	*h = (*h)[:n]
	h.down(0)
}

// PendingCount returns how many pending tasks have the cloud constraint
// cloud ("" : those that may run anywhere).
func (f *FSM) PendingCount(cloud string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if g := f.st.tasks.pending[cloud]; g != nil {
		return g.live()
	}
	return 0
}
