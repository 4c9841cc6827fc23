package fault

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// CheckLists checks what Task.List answered against the rest of the
// history with real-time rules that hold for every task of the workload at
// once (the porcupine model sees one task at a time; see Operations):
//
// Every list, linearizable or stale, shows only the past: a listed task
// had an add invoked before the list returned, and a listed "cancelled"
// task a cancel.
//
// A linearizable list also shows all of the past, for every task, however
// old:
//   - it lists every task whose add was acknowledged before the list was
//     invoked, and shows "cancelled" for every task whose cancel was;
//   - it shows at least what any linearizable read or list that returned
//     before it was invoked showed (tasks are never removed and
//     "cancelled" is final), and its index is not lower than theirs.
//
// Tasks never leave the manifest and cancelled is final in the
// workload's model, which is what makes these rules sound.
func CheckLists(ops []Op) error {
	type taskWrites struct {
		firstAdd, firstCancel int64 // earliest invocation; -1 none
		ackAdd, ackCancel     int64 // earliest acknowledged return; -1 none
	}
	writes := map[string]*taskWrites{}
	get := func(id string) *taskWrites {
		w := writes[id]
		if w == nil {
			w = &taskWrites{firstAdd: -1, firstCancel: -1, ackAdd: -1, ackCancel: -1}
			writes[id] = w
		}
		return w
	}
	earliest := func(cur, t int64) int64 {
		if cur < 0 || t < cur {
			return t
		}
		return cur
	}
	// observations: what linearizable reads saw, ordered by return.
	type seen struct {
		ret    int64
		index  uint64
		tasks  map[string]string
		source Op
	}
	var obs []seen
	var lists []Op
	for _, o := range ops {
		switch o.Kind {
		case OpAdd:
			w := get(o.Task)
			w.firstAdd = earliest(w.firstAdd, o.Call)
			if o.Out == OutOK {
				w.ackAdd = earliest(w.ackAdd, o.Return)
			}
		case OpCancel:
			w := get(o.Task)
			w.firstCancel = earliest(w.firstCancel, o.Call)
			if o.Out == OutOK {
				w.ackCancel = earliest(w.ackCancel, o.Return)
			}
		case OpGet:
			if o.Out != OutFailed && o.Out != OutNotFound {
				obs = append(obs, seen{ret: o.Return, tasks: map[string]string{o.Task: o.Out}, source: o})
			}
		case OpList, OpListStale:
			if o.Out != OutOK {
				continue
			}
			lists = append(lists, o)
			if o.Kind == OpList {
				obs = append(obs, seen{ret: o.Return, index: o.Index, tasks: o.Seen, source: o})
			}
		}
	}
	var problems []string
	bad := func(o Op, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s at %s: %s", o.Kind, at(o.Call), fmt.Sprintf(format, args...)))
	}
	ids := make([]string, 0, len(writes))
	for id := range writes {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	// Lists in invocation order; observations enter the running "must
	// see" state once they returned before the list was invoked.
	slices.SortStableFunc(lists, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	slices.SortStableFunc(obs, func(a, b seen) int { return cmp.Compare(a.ret, b.ret) })
	must := map[string]string{} // task → status some earlier read saw
	mustBy := map[string]Op{}   // … and the read that saw it
	var maxIndex uint64
	var maxIndexBy Op
	next := 0
	for _, l := range lists {
		for id, st := range l.Seen {
			w := writes[id]
			if w == nil || w.firstAdd < 0 || w.firstAdd > l.Return {
				bad(l, "lists %s (%s), which no add invoked before the list returned", id, st)
			}
			if st == "cancelled" && (w == nil || w.firstCancel < 0 || w.firstCancel > l.Return) {
				bad(l, "shows %s cancelled, but no cancel was invoked before the list returned", id)
			}
		}
		if l.Kind == OpListStale {
			continue
		}
		for _, id := range ids {
			w := writes[id]
			st, listed := l.Seen[id]
			if w.ackAdd >= 0 && w.ackAdd < l.Call && !listed {
				bad(l, "misses %s, whose add was acknowledged at %s, before the list was invoked", id, at(w.ackAdd))
			}
			if w.ackCancel >= 0 && w.ackCancel < l.Call && st != "cancelled" {
				bad(l, "shows %s %q, but its cancel was acknowledged at %s, before the list was invoked", id, orAbsent(st, listed), at(w.ackCancel))
			}
		}
		for ; next < len(obs) && obs[next].ret < l.Call; next++ {
			o := obs[next]
			for id, st := range o.tasks {
				if must[id] != "cancelled" {
					must[id], mustBy[id] = st, o.source
				}
			}
			if o.index > maxIndex {
				maxIndex, maxIndexBy = o.index, o.source
			}
		}
		for id, st := range must {
			got, listed := l.Seen[id]
			if !listed || st == "cancelled" && got != "cancelled" {
				bad(l, "shows %s %q, but %s, which returned before the list was invoked, saw it %q", id, orAbsent(got, listed), mustBy[id], st)
			}
		}
		if l.Index < maxIndex {
			bad(l, "index %d went back: %s, which returned before the list was invoked, had index %d", l.Index, maxIndexBy, maxIndex)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("… %d more", len(problems)-20))
	}
	return errors.New("task lists contradict the history: " + strings.Join(problems, "; "))
}

func orAbsent(status string, listed bool) string {
	if !listed {
		return "absent"
	}
	return status
}

// at renders a history time (ns since its start).
func at(ns int64) string {
	return fmt.Sprintf("%.3fs", time.Duration(ns).Seconds())
}
