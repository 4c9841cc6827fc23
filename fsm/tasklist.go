package fsm

import (
	"cmp"
	"math"
	"math/bits"
	"sort"
	"strings"
)

// Paging through the manifest.
//
// The table keeps its tasks in (CreateIndex, ID) order, so a position in a
// listing is a task's key, TaskPos, not an ordinal: ordinals move when the
// table is compacted, keys never do. A page starts right after a position
// (before it, walking backwards): a binary search over the ordinals finds
// where, and the page is read from there through the status's bitset (or
// all of them), skipping empty stretches word by word. So a page costs
// O(log n + page) (plus a summary word per 262,144 slots skipped) however
// far into the manifest it starts, and tasks added or removed between two
// pages shift nothing: every task present for the whole walk is returned
// exactly once, in order.

// TaskPos is a position in the manifest's task order: (CreateIndex, ID).
type TaskPos struct {
	CreateIndex uint64
	ID          string
}

// PosOf returns the position of t.
func PosOf(t *Task) TaskPos { return TaskPos{CreateIndex: t.CreateIndex, ID: t.ID} }

// cmpPos orders a task against a position.
func cmpPos(t *Task, p *TaskPos) int {
	if c := cmp.Compare(t.CreateIndex, p.CreateIndex); c != 0 {
		return c
	}
	return strings.Compare(t.ID, p.ID)
}

// TaskQuery selects one page of tasks for FSM.TaskPage.
type TaskQuery struct {
	// Status, NodeID and Type filter the tasks; "" matches every task.
	// NodeID matches Task.NodeID: the node holding the task, or the last
	// one that held it.
	Status TaskStatus
	NodeID string
	Type   string
	// After is the position the page starts after (before, with
	// Reverse); nil starts at the oldest task (the newest, with Reverse).
	After *TaskPos
	// Reverse walks from the newest task to the oldest.
	Reverse bool
	// Limit is the most tasks returned (at least 1).
	Limit int
	// MaxBytes stops the page before a task that would take the tasks'
	// approximate encoded size (ApproxSize) past it; the first task is
	// always returned. 0: no bound.
	MaxBytes int
	// ScanBudget is the most tasks examined, matching or not; the page
	// then ends early with Next set. 0: no bound. Only a filter the
	// indexes do not answer (NodeID or Type, except NodeID with status
	// assigned or running) makes the walk examine tasks it does not
	// return.
	ScanBudget int
}

// TaskPage is one page of tasks.
type TaskPage struct {
	// Tasks are the matching tasks in walk order.
	Tasks []*Task
	// Next is where the next page starts (TaskQuery.After): the position
	// of the last task examined. Nil when the walk reached the end of the
	// manifest. A non-nil Next may lead to an empty page when no task
	// after it matches.
	Next *TaskPos
	// Index is the task table's index (Indexes().Tasks) when the page's
	// first part was read; the page shows at least that state.
	Index uint64
	// Examined is how many tasks the walk looked at.
	Examined int
}

// lockChunk is how many tasks one read-lock hold examines at most: a
// filtered walk releases the lock between chunks, so a long scan never
// holds up Apply for long (16k tasks: well under a millisecond). A
// variable so tests can make it small.
var lockChunk = 16 << 10

// TaskPage returns one page of tasks: those matching q's filters after
// q.After in q's direction, at most q.Limit of them. Unfiltered and
// status-filtered pages, and pages of the tasks a node holds (NodeID with
// status assigned or running), cost O(log n + page); a NodeID or Type
// filter otherwise examines the tasks in between, at most q.ScanBudget of
// them, in chunks of lockChunk per hold of the read lock. Between chunks
// the state may change; the walk goes on from the last position examined,
// so the guarantee (every task present for the whole walk and matching
// throughout is returned exactly once) still holds.
func (f *FSM) TaskPage(q TaskQuery) TaskPage {
	limit := max(q.Limit, 1)
	budget := q.ScanBudget
	if budget <= 0 {
		budget = math.MaxInt
	}
	var page TaskPage
	after := q.After
	size := 0
	for first := true; ; first = false {
		chunk := min(budget, lockChunk)
		examined, full := 0, false
		var last *Task
		f.mu.RLock()
		if first {
			page.Index = f.st.idx.Tasks
		}
		end := f.st.tasks.walk(&q, after, func(t *Task) bool {
			if full || examined == chunk {
				return false // a task remains: the walk is not at its end
			}
			examined++
			if (q.NodeID != "" && t.NodeID != q.NodeID) || (q.Type != "" && t.Type != q.Type) ||
				(q.Status != "" && t.Status != q.Status) {
				last = t
				return true
			}
			sz := ApproxSize(t)
			if q.MaxBytes > 0 && len(page.Tasks) > 0 && size+sz > q.MaxBytes {
				examined--
				full = true
				return false // not taken: the next page starts with it
			}
			page.Tasks = append(page.Tasks, t)
			size += sz
			last = t
			full = len(page.Tasks) >= limit
			return true
		})
		f.mu.RUnlock()
		page.Examined += examined
		budget -= examined
		if last != nil {
			p := PosOf(last)
			after = &p
		}
		switch {
		case end:
			page.Next = nil
			return page
		case full || budget <= 0:
			page.Next = after
			return page
		}
		// The chunk is used up: let Apply in, then go on from after.
	}
}

// walk calls visit for the candidates of q (the tasks in q.Status, or
// all, or the tasks q.NodeID holds) after pos in q's direction, until
// visit returns false, and reports whether it ran out of candidates.
func (tt *taskTable) walk(q *TaskQuery, pos *TaskPos, visit func(*Task) bool) (end bool) {
	start := 0 // first ordinal of the part after pos (forward)
	if pos != nil {
		start = tt.boundary(pos, q.Reverse)
	} else if q.Reverse {
		start = len(tt.list)
	}
	if q.NodeID != "" && (q.Status == TaskAssigned || q.Status == TaskRunning) {
		h := tt.held[q.NodeID]
		i := sort.Search(len(h), func(i int) bool { return int(h[i]) >= start })
		if q.Reverse {
			for i--; i >= 0; i-- {
				if !visit(tt.list[h[i]]) {
					return false
				}
			}
			return true
		}
		for ; i < len(h); i++ {
			if !visit(tt.list[h[i]]) {
				return false
			}
		}
		return true
	}
	set := tt.liveSets()
	if q.Status != "" {
		slot, ok := statusSlot(q.Status)
		if !ok {
			return true
		}
		set = bitsets{&tt.byStatus[slot]}
	}
	if q.Reverse {
		for o := start - 1; ; {
			p, ok := set.prev(o)
			if !ok {
				return true
			}
			if !visit(tt.list[p]) {
				return false
			}
			o = int(p) - 1
		}
	}
	for o := start; o < len(tt.list); {
		p, ok := set.next(uint32(o))
		if !ok {
			return true
		}
		if !visit(tt.list[p]) {
			return false
		}
		o = int(p) + 1
	}
	return true
}

// liveSets is the union of the status bitsets: every stored task.
func (tt *taskTable) liveSets() bitsets {
	out := make(bitsets, len(tt.byStatus))
	for i := range tt.byStatus {
		out[i] = &tt.byStatus[i]
	}
	return out
}

// boundary returns the first ordinal from which every stored task sorts
// after pos (at or after it when atOrAfter is set), found by a binary
// search over the ordinals that skips tombstones through the bitsets:
// O(log n) probes.
func (tt *taskTable) boundary(pos *TaskPos, atOrAfter bool) int {
	live := tt.liveSets()
	lo, hi := 0, len(tt.list)
	// Invariant: live tasks below lo sort before the boundary, live tasks
	// at or above hi after it.
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		p, ok := live.next(uint32(mid))
		if !ok || int(p) >= hi {
			hi = mid // nothing live in [mid, hi)
			continue
		}
		c := cmpPos(tt.list[p], pos)
		if c > 0 || (atOrAfter && c == 0) {
			hi = mid
		} else {
			lo = int(p) + 1
		}
	}
	return lo
}

// bitsets iterates the union of some bitsets.
type bitsets []*bitset

func (bs bitsets) word(w int) uint64 {
	var x uint64
	for _, b := range bs {
		if w < len(b.words) {
			x |= b.words[w]
		}
	}
	return x
}

func (bs bitsets) summary(s int) uint64 {
	var x uint64
	for _, b := range bs {
		if s < len(b.summary) {
			x |= b.summary[s]
		}
	}
	return x
}

func (bs bitsets) summaries() int {
	n := 0
	for _, b := range bs {
		n = max(n, len(b.summary))
	}
	return n
}

// next returns the smallest member ≥ from.
func (bs bitsets) next(from uint32) (uint32, bool) {
	w := int(from >> 6)
	if x := bs.word(w) & (^uint64(0) << (from & 63)); x != 0 {
		return uint32(w<<6 + bits.TrailingZeros64(x)), true
	}
	w++
	for s, n := w>>6, bs.summaries(); s < n; s++ {
		sw := bs.summary(s)
		if s == w>>6 {
			sw &= ^uint64(0) << (w & 63)
		}
		if sw != 0 {
			w2 := s<<6 + bits.TrailingZeros64(sw)
			// A summary bit is set exactly when its word is not zero.
			return uint32(w2<<6 + bits.TrailingZeros64(bs.word(w2))), true
		}
	}
	return 0, false
}

// prev returns the largest member ≤ from; none when from < 0.
func (bs bitsets) prev(from int) (uint32, bool) {
	if from < 0 {
		return 0, false
	}
	w := from >> 6
	if x := bs.word(w) & (^uint64(0) >> (63 - uint(from&63))); x != 0 {
		return uint32(w<<6 + 63 - bits.LeadingZeros64(x)), true
	}
	w--
	if w < 0 {
		return 0, false
	}
	for s := min(w>>6, bs.summaries()-1); s >= 0; s-- {
		sw := bs.summary(s)
		if s == w>>6 {
			sw &= ^uint64(0) >> (63 - uint(w&63))
		}
		if sw != 0 {
			w2 := s<<6 + 63 - bits.LeadingZeros64(sw)
			return uint32(w2<<6 + 63 - bits.LeadingZeros64(bs.word(w2))), true
		}
	}
	return 0, false
}

// ApproxSize is an upper estimate of t's msgpack encoding in bytes, for
// keeping a reply under the frame limit without encoding it twice.
func ApproxSize(t *Task) int {
	n := 320 + len(t.ID) + len(t.Type) + len(t.Cloud) + len(t.NodeID) + len(t.Status)
	for _, s := range t.Payload {
		n += len(s) + 5
	}
	if r := t.Result; r != nil {
		n += 48 + len(r.Output) + len(r.Error)
	}
	for i := range t.History {
		e := &t.History[i]
		n += 80 + len(e.Status) + len(e.NodeID) + len(e.Message)
	}
	return n
}
