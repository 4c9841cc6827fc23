package fault

import (
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
		case OpGet:
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

// Operations turns a history into porcupine operations: failed reads are
// dropped, unknown writes return after everything else.
func Operations(ops []Op) []porcupine.Operation {
	var end int64
	for _, o := range ops {
		end = max(end, o.Return, o.Call)
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		if o.Kind == OpGet && o.Out == OutFailed {
			continue
		}
		ret := o.Return
		if ret < 0 {
			ret = end + 1
		}
		out = append(out, porcupine.Operation{ClientId: o.Client, Input: taskInput{Kind: o.Kind, Task: o.Task},
			Call: o.Call, Output: o.Out, Return: ret, Metadata: o.Server})
	}
	slices.SortStableFunc(out, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	return out
}

// CheckLinearizable checks the history against TaskModel with porcupine,
// giving up after timeout (result Unknown, no error). On a violation it
// writes the history (history.jsonl, one Op a line) and porcupine's
// visualization (history.html: open it in a browser) into dir and returns
// an error naming them.
func CheckLinearizable(h *History, dir string, timeout time.Duration) (porcupine.CheckResult, error) {
	ops := Operations(h.Ops())
	res, info := porcupine.CheckOperationsVerbose(TaskModel, ops, timeout)
	if res != porcupine.Illegal {
		return res, nil
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
		len(ops), describeIllegal(ops), jsonPath, htmlPath), errors.Join(errs...))
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
