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
//     one before. A removed (retired) task leaves a nil slot, a
//     tombstone, until the next compaction.
//   - ids maps a task ID to a handle, which stays the task's while it is
//     stored; ord maps a handle to the ordinal, handleOf an ordinal back
//     to its handle. The indirection lets a compaction renumber the
//     ordinals in two flat arrays instead of rewriting a million map
//     values (random-access hashing, ten times slower).
//   - byStatus holds one bitset of ordinals per status, so listing the
//     tasks in a status costs one bit per task plus the tasks returned,
//     and keeps order for free.
//   - held maps a node ID to the ascending ordinals of the tasks it holds
//     (assigned or running).
//   - finished holds, per finished status, the finished tasks in finish
//     order (see finishOrder), so choosing what to retire reads only the
//     oldest few.
//   - pending maps a cloud constraint (Task.Cloud; "" for tasks that may
//     run anywhere) to the ordinals of the pending tasks with that
//     constraint, ascending (see pendingGroup), so the scheduler reads
//     the oldest pending tasks that some node with room can take without
//     looking at a backlog no node can take.
//
// Per task that is one list slot, one ids entry, 8 bytes of ord and
// handleOf and six bits, plus an 8-byte pendingGroup entry while it is
// pending and a 24-byte finishOrder entry once it is finished. Removing a
// task clears its bits and its ids entry and leaves a tombstone; trailing
// tombstones are dropped at once, and when tombstones outnumber the live
// tasks (and are at least compactMin) the list is compacted: one
// sequential pass over the slots and the bitsets, paid for by at least as
// many removals, so a removal costs O(1) amortized plus a binary search in
// finishOrder.
type taskTable struct {
	ids      map[string]uint32 // task ID → handle
	ord      []uint32          // handle → ordinal
	free     []uint32          // handles free for reuse
	idsPeak  int               // the most tasks ids held since it was made
	list     []*Task
	handleOf []uint32 // ordinal → handle, parallel to list
	dead     int      // tombstones (nil slots) in list
	byStatus [numTaskStatuses]bitset
	held     map[string][]uint32
	finished [numFinishedStatuses]finishOrder
	pending  map[string]*pendingGroup // Task.Cloud → its pending tasks
}

// compactMin is the fewest tombstones worth a compaction: small tables
// are not renumbered on every other removal.
const compactMin = 1024

const (
	numTaskStatuses     = 6
	numFinishedStatuses = 3
)

// finishedSlot maps a finished status to its finishOrder.
func finishedSlot(s TaskStatus) (int, bool) {
	switch s {
	case TaskComplete:
		return 0, true
	case TaskFailed:
		return 1, true
	case TaskCancelled:
		return 2, true
	}
	return 0, false
}

// finishedStatuses lists the finished statuses by finishedSlot.
var finishedStatuses = [numFinishedStatuses]TaskStatus{TaskComplete, TaskFailed, TaskCancelled}

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
		ids:     make(map[string]uint32, n),
		list:    make([]*Task, 0, n),
		held:    make(map[string][]uint32),
		pending: make(map[string]*pendingGroup),
	}
}

// ordinal returns the ordinal of the task with the given ID.
func (tt *taskTable) ordinal(id string) (uint32, bool) {
	h, ok := tt.ids[id]
	if !ok {
		return 0, false
	}
	return tt.ord[h], true
}

func (tt *taskTable) get(id string) *Task {
	o, ok := tt.ordinal(id)
	if !ok {
		return nil
	}
	return tt.list[o]
}

// live is the number of tasks stored.
func (tt *taskTable) live() int { return len(tt.ids) }

// all returns the stored tasks in (CreateIndex, ID) order.
func (tt *taskTable) all() []*Task {
	out := make([]*Task, 0, tt.live())
	for _, t := range tt.list {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// insert adds a task whose ID is not yet in the table.
func (tt *taskTable) insert(t *Task) {
	o := uint32(len(tt.list))
	tt.list = append(tt.list, t)
	// The last slot before o is live: remove drops trailing tombstones.
	if o > 0 && cmpTask(tt.list[o-1], t) >= 0 {
		// Only reachable when Apply is fed non-increasing log indexes
		// (never by raft); restore the order the hard way.
		tt.rebuild()
	} else {
		var h uint32
		if n := len(tt.free); n > 0 {
			h, tt.free = tt.free[n-1], tt.free[:n-1]
			tt.ord[h] = o
		} else {
			h = uint32(len(tt.ord))
			tt.ord = append(tt.ord, o)
		}
		tt.ids[t.ID] = h
		tt.handleOf = append(tt.handleOf, h)
		tt.index(o, t)
	}
	tt.idsPeak = max(tt.idsPeak, tt.live())
	tt.finish(t)
}

// replace swaps the stored task with the same ID for t.
func (tt *taskTable) replace(t *Task) {
	o, _ := tt.ordinal(t.ID)
	old := tt.list[o]
	if old.Status != t.Status || old.NodeID != t.NodeID {
		tt.unindex(o, old)
		tt.index(o, t)
	}
	tt.unfinish(old)
	tt.list[o] = t
	tt.finish(t)
}

// remove deletes the task with the given ID and returns it, or returns
// nil when there is none. Its slot becomes a tombstone; see taskTable.
func (tt *taskTable) remove(id string) *Task {
	return tt.removeIf(id, func(*Task) bool { return true })
}

// removeIf removes the task with the given ID if ok says so, and returns
// it; nil when there is none or ok refused it. One map lookup.
func (tt *taskTable) removeIf(id string, ok func(*Task) bool) *Task {
	h, found := tt.ids[id]
	if !found {
		return nil
	}
	o := tt.ord[h]
	t := tt.list[o]
	if !ok(t) {
		return nil
	}
	tt.unindex(o, t)
	tt.unfinish(t)
	delete(tt.ids, id)
	tt.free = append(tt.free, h)
	tt.list[o] = nil
	tt.dead++
	// Drop trailing tombstones, so that the last slot is always live
	// (insert compares with it) and retiring the newest tasks leaves
	// nothing behind.
	n := len(tt.list)
	for n > 0 && tt.list[n-1] == nil {
		n--
		tt.dead--
	}
	tt.list = tt.list[:n]
	tt.handleOf = tt.handleOf[:n]
	if tt.dead >= compactMin && tt.dead > tt.live() {
		tt.compact()
	}
	return t
}

// compact drops the tombstones and renumbers the ordinals: one pass over
// the slots builds the new list and handleOf and the old-to-new ordinal
// map, which renumbers the bitsets (by their set bits), the held lists
// (in place: the map is monotonic) and ord. It reads no task and touches
// no map key: 15 ms for 500k tasks left of 1M slots (BenchmarkRetire1MTasks
// /compact). The list and the bitsets are allocated anew at the live
// size. When the table shrank below a quarter of the most tasks its ids
// map held, the map is rebuilt as well, to release its memory (a Go map
// never shrinks): that costs a map insert per task (65-100 ms for 250k,
// /compact-shrink), once per fourfold shrink.
func (tt *taskTable) compact() {
	live := tt.live()
	renum := make([]uint32, len(tt.list))
	list := make([]*Task, 0, live+live/4)
	handleOf := make([]uint32, 0, cap(list))
	for o, t := range tt.list {
		if t != nil {
			renum[o] = uint32(len(list))
			list = append(list, t)
			handleOf = append(handleOf, tt.handleOf[o])
		}
	}
	for s := range tt.byStatus {
		var nb bitset
		tt.byStatus[s].each(func(o uint32) { nb.set(renum[o]) })
		tt.byStatus[s] = nb
	}
	for _, h := range tt.held {
		for i, o := range h {
			h[i] = renum[o]
		}
	}
	for _, g := range tt.pending {
		g.renumber(renum)
	}
	tt.list, tt.handleOf, tt.dead = list, handleOf, 0
	if 4*live < tt.idsPeak {
		tt.ids = make(map[string]uint32, live)
		tt.idsPeak = live
		tt.renumberHandles()
		return
	}
	for o, h := range handleOf {
		tt.ord[h] = uint32(o)
	}
}

// renumberHandles makes every task's handle its ordinal, filling ids
// (empty) from list.
func (tt *taskTable) renumberHandles() {
	n := len(tt.list)
	tt.ord = make([]uint32, n, n+n/4)
	tt.handleOf = make([]uint32, n, cap(tt.list))
	tt.free = nil
	for o, t := range tt.list {
		tt.ids[t.ID] = uint32(o)
		tt.ord[o] = uint32(o)
		tt.handleOf[o] = uint32(o)
	}
}

func (tt *taskTable) index(o uint32, t *Task) {
	if slot, ok := statusSlot(t.Status); ok {
		tt.byStatus[slot].set(o)
	}
	if t.Status == TaskPending {
		g := tt.pending[t.Cloud]
		if g == nil {
			if tt.pending == nil {
				tt.pending = make(map[string]*pendingGroup)
			}
			g = &pendingGroup{}
			tt.pending[t.Cloud] = g
		}
		g.add(o)
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
	if t.Status == TaskPending {
		if g := tt.pending[t.Cloud]; g != nil && g.remove(o) {
			delete(tt.pending, t.Cloud) // no empty groups: clouds come and go
		}
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

// rebuild drops tombstones, sorts list and recomputes every ordinal
// index from it. finishOrder holds pointers, not ordinals: it stays.
func (tt *taskTable) rebuild() {
	tt.list = slices.DeleteFunc(tt.list, func(t *Task) bool { return t == nil })
	slices.SortFunc(tt.list, cmpTask)
	tt.reindex()
}

// reindex recomputes ids, ord, handleOf, the bitsets, held and pending from list,
// which is in cmpTask order without tombstones. finishOrder is not
// touched (see buildFinished).
func (tt *taskTable) reindex() {
	clear(tt.ids)
	tt.idsPeak = max(tt.idsPeak, len(tt.list))
	tt.renumberHandles()
	tt.held = make(map[string][]uint32)
	tt.pending = make(map[string]*pendingGroup)
	tt.dead = 0
	for i := range tt.byStatus {
		tt.byStatus[i] = bitset{}
	}
	for o, t := range tt.list {
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

// cmpFinish orders finished tasks by finish time: (UpdatedAt,
// ModifyIndex, CreateIndex, ID). A finished task never changes, so its key
// is fixed while it is stored.
func cmpFinish(a, b *Task) int {
	if c := cmp.Compare(a.UpdatedAt, b.UpdatedAt); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ModifyIndex, b.ModifyIndex); c != 0 {
		return c
	}
	return cmpTask(a, b)
}

// finishOrder holds the tasks of one finished status sorted by cmpFinish,
// oldest first, for RetireCandidates: the age rule and the count rule both
// select a prefix of it, so choosing candidates reads only them.
//
// Tasks finish in log order with the proposer's time, so a new entry is
// almost always appended; a proposer clock that went back inserts it a
// little before the end (a memmove of the entries finished later). A
// removed task leaves a tombstone (t nil, key kept for the binary
// search); leading and trailing tombstones are dropped at once, and the
// rest when they outnumber the live entries (amortized O(1)).
type finishOrder struct {
	q    []finishEntry
	dead int
}

// finishEntry is one task of a finishOrder: its key and the task, nil
// once removed.
type finishEntry struct {
	at int64  // UpdatedAt
	ix uint64 // ModifyIndex
	t  *Task
}

// finish records t in its status's finishOrder if t is finished.
func (tt *taskTable) finish(t *Task) {
	if slot, ok := finishedSlot(t.Status); ok {
		tt.finished[slot].add(t)
	}
}

// unfinish forgets t (the stored pointer) if it is finished.
func (tt *taskTable) unfinish(t *Task) {
	if slot, ok := finishedSlot(t.Status); ok {
		tt.finished[slot].remove(t)
	}
}

// buildFinished recomputes every finishOrder from list (after a restore).
func (tt *taskTable) buildFinished() {
	for slot := range tt.finished {
		tt.finished[slot] = finishOrder{q: make([]finishEntry, 0, tt.count(finishedStatuses[slot]))}
	}
	for _, t := range tt.list {
		if slot, ok := finishedSlot(t.Status); ok {
			fo := &tt.finished[slot]
			fo.q = append(fo.q, finishEntry{at: t.UpdatedAt, ix: t.ModifyIndex, t: t})
		}
	}
	for slot := range tt.finished {
		// The keys are in the entries: only ties read the tasks.
		slices.SortFunc(tt.finished[slot].q, func(a, b finishEntry) int {
			if c := cmpFinishKey(a, b); c != 0 {
				return c
			}
			return cmpTask(a.t, b.t)
		})
	}
}

// group returns the bounds [lo, hi) of the entries keyed (at, ix).
func (fo *finishOrder) group(at int64, ix uint64) (lo, hi int) {
	q := fo.q
	lo, _ = slices.BinarySearchFunc(q, finishEntry{at: at, ix: ix}, cmpFinishKey)
	hi = lo
	for hi < len(q) && q[hi].at == at && q[hi].ix == ix {
		hi++
	}
	return lo, hi
}

func cmpFinishKey(e, k finishEntry) int {
	if c := cmp.Compare(e.at, k.at); c != 0 {
		return c
	}
	return cmp.Compare(e.ix, k.ix)
}

func (fo *finishOrder) add(t *Task) {
	e := finishEntry{at: t.UpdatedAt, ix: t.ModifyIndex, t: t}
	n := len(fo.q)
	if n == 0 || cmpFinish(fo.q[n-1].t, t) < 0 { // the last entry is live
		fo.q = append(fo.q, e)
		return
	}
	// Entries with the same (at, ix) were finished by one entry; order
	// them by (CreateIndex, ID), skipping tombstones.
	i, hi := fo.group(e.at, e.ix)
	for i < hi && (fo.q[i].t == nil || cmpTask(fo.q[i].t, t) < 0) {
		i++
	}
	fo.q = slices.Insert(fo.q, i, e)
}

func (fo *finishOrder) remove(t *Task) {
	lo, hi := fo.group(t.UpdatedAt, t.ModifyIndex)
	i := lo
	for i < hi && fo.q[i].t != t {
		i++
	}
	if i == hi {
		return // not recorded: never expected
	}
	fo.q[i].t = nil
	fo.dead++
	n := 0
	for n < len(fo.q) && fo.q[n].t == nil {
		n++
	}
	fo.q = fo.q[n:]
	fo.dead -= n
	m := len(fo.q)
	for m > 0 && fo.q[m-1].t == nil {
		m--
		fo.dead--
	}
	fo.q = fo.q[:m]
	if fo.dead > 64 && fo.dead > len(fo.q)-fo.dead {
		fo.q = slices.DeleteFunc(fo.q, func(e finishEntry) bool { return e.t == nil })
		fo.dead = 0
	}
}

// oldest returns the first tasks of fo, oldest first, while keep says so
// (keep gets the live position and the entry) and at most limit of them.
func (fo *finishOrder) oldest(limit int, keep func(i int, e *finishEntry) bool) []*Task {
	var out []*Task
	for k := range fo.q {
		e := &fo.q[k]
		if len(out) >= limit {
			break
		}
		if e.t == nil {
			continue
		}
		if !keep(len(out), e) {
			break
		}
		out = append(out, e.t)
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
