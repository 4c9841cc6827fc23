package fsm

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

// taskTable stores the tasks and the secondary indexes the scheduler
// needs, sized for millions of tasks:
//
//   - list holds every task by ordinal, in (CreateIndex, ID) order, which is
//     creation order since every add_task has a larger log index than the
//     one before. ids maps a task ID to its ordinal.
//   - byStatus holds one bitset of ordinals per status, so listing the
//     tasks in a status costs one bit per task plus the tasks returned,
//     and keeps order for free.
//   - held maps a node ID to the ascending ordinals of the tasks it holds
//     (assigned or running).
//
// Per task that is one list slot, one ids entry and six bits. Tasks are
// never deleted, so ordinals never need compaction.
type taskTable struct {
	ids      map[string]uint32
	list     []*Task
	byStatus [numTaskStatuses]bitset
	held     map[string][]uint32
}

const numTaskStatuses = 6

// statusSlot maps a status to its bitset.
func statusSlot(s TaskStatus) (int, bool) {
	switch s {
	case TaskPending:
		return 0, true
	case TaskAssigned:
		return 1, true
	case TaskRunning:
		return 2, true
	case TaskComplete:
		return 3, true
	case TaskFailed:
		return 4, true
	case TaskCancelled:
		return 5, true
	}
	return 0, false
}

// isHeld reports whether t occupies a slot on its node.
func isHeld(t *Task) bool {
	return (t.Status == TaskAssigned || t.Status == TaskRunning) && t.NodeID != ""
}

// cmpTask orders tasks by (CreateIndex, ID).
func cmpTask(a, b *Task) int {
	if c := cmp.Compare(a.CreateIndex, b.CreateIndex); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func newTaskTable(n int) taskTable {
	return taskTable{
		ids:  make(map[string]uint32, n),
		list: make([]*Task, 0, n),
		held: make(map[string][]uint32),
	}
}

func (tt *taskTable) get(id string) *Task {
	o, ok := tt.ids[id]
	if !ok {
		return nil
	}
	return tt.list[o]
}

// insert adds a task whose ID is not yet in the table.
func (tt *taskTable) insert(t *Task) {
	o := uint32(len(tt.list))
	tt.list = append(tt.list, t)
	if o > 0 && cmpTask(tt.list[o-1], t) >= 0 {
		// Only reachable when Apply is fed non-increasing log indexes
		// (never by raft); restore the order the hard way.
		tt.rebuild()
		return
	}
	tt.ids[t.ID] = o
	tt.index(o, t)
}

// replace swaps the stored task with the same ID for t.
func (tt *taskTable) replace(t *Task) {
	o := tt.ids[t.ID]
	if old := tt.list[o]; old.Status != t.Status || old.NodeID != t.NodeID {
		tt.unindex(o, old)
		tt.index(o, t)
	}
	tt.list[o] = t
}

func (tt *taskTable) index(o uint32, t *Task) {
	if slot, ok := statusSlot(t.Status); ok {
		tt.byStatus[slot].set(o)
	}
	if isHeld(t) {
		h := tt.held[t.NodeID]
		i, _ := slices.BinarySearch(h, o)
		tt.held[t.NodeID] = slices.Insert(h, i, o)
	}
}

func (tt *taskTable) unindex(o uint32, t *Task) {
	if slot, ok := statusSlot(t.Status); ok {
		tt.byStatus[slot].clear(o)
	}
	if isHeld(t) {
		h := tt.held[t.NodeID]
		if i, found := slices.BinarySearch(h, o); found {
			h = slices.Delete(h, i, i+1)
		}
		if len(h) == 0 {
			delete(tt.held, t.NodeID)
		} else {
			tt.held[t.NodeID] = h
		}
	}
}

// rebuild sorts list and recomputes every index from it.
func (tt *taskTable) rebuild() {
	slices.SortFunc(tt.list, cmpTask)
	tt.reindex()
}

// reindex recomputes every index from list, which is in cmpTask order.
func (tt *taskTable) reindex() {
	clear(tt.ids)
	clear(tt.held)
	for i := range tt.byStatus {
		tt.byStatus[i] = bitset{}
	}
	for o, t := range tt.list {
		tt.ids[t.ID] = uint32(o)
		tt.index(uint32(o), t)
	}
}

func (tt *taskTable) count(s TaskStatus) int {
	slot, ok := statusSlot(s)
	if !ok {
		return 0
	}
	return tt.byStatus[slot].n
}

// firstWithStatus returns at most limit tasks in status s, oldest first.
func (tt *taskTable) firstWithStatus(s TaskStatus, limit int) []*Task {
	slot, ok := statusSlot(s)
	if !ok || limit <= 0 {
		return nil
	}
	b := &tt.byStatus[slot]
	out := make([]*Task, 0, min(b.n, limit))
	b.eachWhile(func(o uint32) bool {
		out = append(out, tt.list[o])
		return len(out) < limit
	})
	return out
}

func (tt *taskTable) withStatus(s TaskStatus) []*Task {
	slot, ok := statusSlot(s)
	if !ok {
		return nil
	}
	b := &tt.byStatus[slot]
	out := make([]*Task, 0, b.n)
	b.each(func(o uint32) { out = append(out, tt.list[o]) })
	return out
}

func (tt *taskTable) heldCount(nodeID string) int {
	return len(tt.held[nodeID])
}

func (tt *taskTable) heldBy(nodeID string) []*Task {
	h := tt.held[nodeID]
	out := make([]*Task, len(h))
	for i, o := range h {
		out[i] = tt.list[o]
	}
	return out
}

// bitset is a set of ordinals with a summary level (one bit per non-zero
// word), so iterating a sparse set skips empty stretches 4096 at a time.
type bitset struct {
	words   []uint64
	summary []uint64
	n       int
}

func (b *bitset) set(i uint32) {
	w := int(i >> 6)
	if w >= len(b.words) {
		b.words = append(b.words, make([]uint64, w+1-len(b.words))...)
		if need := (len(b.words) + 63) >> 6; need > len(b.summary) {
			b.summary = append(b.summary, make([]uint64, need-len(b.summary))...)
		}
	}
	bit := uint64(1) << (i & 63)
	if b.words[w]&bit != 0 {
		return
	}
	b.words[w] |= bit
	b.summary[w>>6] |= 1 << (w & 63)
	b.n++
}

func (b *bitset) clear(i uint32) {
	w := int(i >> 6)
	if w >= len(b.words) {
		return
	}
	bit := uint64(1) << (i & 63)
	if b.words[w]&bit == 0 {
		return
	}
	b.words[w] &^= bit
	if b.words[w] == 0 {
		b.summary[w>>6] &^= 1 << (w & 63)
	}
	b.n--
}

func (b *bitset) has(i uint32) bool {
	w := int(i >> 6)
	return w < len(b.words) && b.words[w]&(1<<(i&63)) != 0
}

// each calls fn for every member in ascending order.
func (b *bitset) each(fn func(uint32)) {
	b.eachWhile(func(o uint32) bool { fn(o); return true })
}

// eachWhile calls fn for every set bit in ascending order until fn
// returns false.
func (b *bitset) eachWhile(fn func(uint32) bool) {
	for si, sw := range b.summary {
		for sw != 0 {
			w := si<<6 + bits.TrailingZeros64(sw)
			sw &= sw - 1
			for word := b.words[w]; word != 0; word &= word - 1 {
				if !fn(uint32(w<<6 + bits.TrailingZeros64(word))) {
					return
				}
			}
		}
	}
}
