package fault

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// taskInput is what an operation asked, as porcupine sees it.
type taskInput struct {
	Kind, Task string
}

// absent is the model state of a task that does not exist.
const absent = "absent"

// TaskModel is the sequential specification of one task of the manifest,
// as the workload uses it (tasks no node can run, so only add, get and
// cancel change or observe them). Histories are partitioned by task id,
// so the state is just the task's status:
//
//	add    absent → pending; otherwise unchanged (re-adding the same task
//	       is a no-op); always "ok"
//	cancel absent → "not_found"; pending|cancelled → cancelled, "ok"
//	get    absent → "not_found"; otherwise the status
//	list   as get: a linearizable Task.List, projected onto this task
//	       (see Operations)
//
// A write whose outcome is unknown takes effect as if acknowledged; since
// its return time is the end of the history, the checker may also place
// it after everything, which is the same as never.
var TaskModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byTask := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			id := op.Input.(taskInput).Task
			if _, ok := byTask[id]; !ok {
				order = append(order, id)
			}
			byTask[id] = append(byTask[id], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, id := range order {
			out = append(out, byTask[id])
		}
		return out
	},
	Init: func() any { return absent },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(taskInput), output.(string)
		switch in.Kind {
		case OpAdd:
			if out != OutOK && out != OutUnknown {
				return false, st
			}
			if st == absent {
				return true, "pending"
			}
			return true, st
		case OpCancel:
			switch {
			case out == OutUnknown && st == absent:
				return true, st
			case out == OutUnknown || out == OutOK:
				return st != absent && (st == "pending" || st == "cancelled"), "cancelled"
			case out == OutNotFound:
				return st == absent, st
			}
			return false, st
		case OpGet, OpList:
			if out == OutNotFound {
				return st == absent, st
			}
			return out == st, st
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(taskInput)
		return fmt.Sprintf("%s(%s) → %s", in.Kind, in.Task, output)
	},
	DescribeState: func(state any) string { return state.(string) },
}

// ListHorizon is how long after a task's last definite operation
// returned a linearizable list is still projected onto it (Operations).
// Later lists are checked against it by CheckLists only.
const ListHorizon = 8 * time.Second

// Operations turns a history into porcupine operations: failed reads are
// dropped, unknown writes return after everything else, stale lists are
// left to CheckLists, and each linearizable list becomes one read per
// task it may say something about.
//
// A list reads every task at one instant; the model, partitioned by task,
// cannot express that, so a list is projected onto each task as a read
// with the list's invoke and return times and, as output, the task's
// status in the list or "not_found". This is sound (a linearizable
// history stays linearizable under projection, so every violation found
// is real) but not complete: it does not require one instant for all
// tasks of a list. CheckLists adds the cross-task checks that are cheap.
// A list is projected onto a task if it lists it, or if it overlaps the
// task's life in the history: invoked before the last definite operation
// on the task returned plus ListHorizon (or at any time after the first,
// if a write to the task has an unknown outcome), and returned after the
// first operation on the task was invoked. Earlier lists must not show
// the task (they show nothing the task's absence would contradict), and
// later ones are what CheckLists's real-time checks cover.
func Operations(ops []Op) []porcupine.Operation {
	var end int64
	type life struct {
		first, last int64
		unknown     bool
	}
	lives := map[string]*life{}
	var tasks []string
	for _, o := range ops {
		end = max(end, o.Return, o.Call)
		if o.isList() {
			continue
		}
		l := lives[o.Task]
		if l == nil {
			l = &life{first: o.Call, last: o.Call}
			lives[o.Task] = l
			tasks = append(tasks, o.Task)
		}
		l.first = min(l.first, o.Call)
		if o.Return < 0 {
			l.unknown = true
		} else if o.Out != OutFailed {
			l.last = max(l.last, o.Return)
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		switch {
		case o.Out == OutFailed && (o.Kind == OpGet || o.isList()):
			continue
		case o.Kind == OpListStale:
			continue
		case o.Kind == OpList:
			for _, id := range tasks {
				l := lives[id]
				st, listed := o.Seen[id]
				if !listed && (o.Return < l.first || !l.unknown && o.Call > l.last+int64(ListHorizon)) {
					continue
				}
				if !listed {
					st = OutNotFound
				}
				out = append(out, porcupine.Operation{ClientId: o.Client, Input: taskInput{Kind: OpList, Task: id},
					Call: o.Call, Output: st, Return: o.Return, Metadata: o.Server})
			}
			for id, st := range o.Seen {
				if lives[id] == nil { // listed, never written: from nowhere
					out = append(out, porcupine.Operation{ClientId: o.Client, Input: taskInput{Kind: OpList, Task: id},
						Call: o.Call, Output: st, Return: o.Return, Metadata: o.Server})
				}
			}
			continue
		}
		ret := o.Return
		if ret < 0 {
			ret = end + 1
		}
		out = append(out, porcupine.Operation{ClientId: o.Client, Input: taskInput{Kind: o.Kind, Task: o.Task},
			Call: o.Call, Output: o.Out, Return: ret, Metadata: o.Server})
	}
	slices.SortStableFunc(out, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	return out
}

// CheckLinearizable checks the history against TaskModel with porcupine,
// giving up after timeout (result Unknown, no error). On a violation it
// writes the history (history.jsonl, one Op a line) and porcupine's
// visualization (history.html: open it in a browser) into dir and returns
// an error naming them.
//
// It also runs CheckLists; its violations make the result Illegal too
// (when porcupine itself found none, only history.jsonl is written).
func CheckLinearizable(h *History, dir string, timeout time.Duration) (porcupine.CheckResult, error) {
	ops := Operations(h.Ops())
	res, info := porcupine.CheckOperationsVerbose(TaskModel, ops, timeout)
	listErr := CheckLists(h.Ops())
	if res != porcupine.Illegal && listErr == nil {
		return res, nil
	}
	if res != porcupine.Illegal {
		jsonPath := filepath.Join(dir, "history.jsonl")
		if err := h.WriteJSON(jsonPath); err != nil {
			return porcupine.Illegal, errors.Join(listErr, err)
		}
		return porcupine.Illegal, fmt.Errorf("%w; history in %s", listErr, jsonPath)
	}
	jsonPath := filepath.Join(dir, "history.jsonl")
	htmlPath := filepath.Join(dir, "history.html")
	var errs []error
	if err := h.WriteJSON(jsonPath); err != nil {
		errs = append(errs, err)
	}
	if err := porcupine.VisualizePath(TaskModel, info, htmlPath); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(fmt.Errorf("history of %d operations is not linearizable (%s); history in %s, visualization in %s",
		len(ops), describeIllegal(ops), jsonPath, htmlPath), listErr, errors.Join(errs...))
}

// describeIllegal names the tasks whose operations have no linearization.
func describeIllegal(ops []porcupine.Operation) string {
	var bad []string
	for _, part := range TaskModel.Partition(ops) {
		if !porcupine.CheckOperations(TaskModel, part) {
			bad = append(bad, part[0].Input.(taskInput).Task)
		}
	}
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("… %d more", len(bad)-10))
	}
	return "no linearization for task " + strings.Join(bad, ", ")
}
