package fault

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// Op kinds recorded in a History.
const (
	OpAdd    = "add"
	OpGet    = "get"
	OpCancel = "cancel"
	// OpList is a linearizable Task.List; OpListStale a stale one
	// (answered locally by any server). Their Seen holds the status of
	// every listed task of the workload.
	OpList      = "list"
	OpListStale = "list-stale"
)

// Outcomes of an operation, as recorded. A read's outcome is the task's
// status ("pending", "cancelled", …) or OutNotFound.
const (
	OutOK       = "ok"        // a write acknowledged
	OutNotFound = "not_found" // the task does not exist
	OutConflict = "conflict"  // the write was refused by the state
	// OutUnknown: a write that failed in a way that leaves its effect
	// open (unavailable, deadline exceeded, a lost connection): it may
	// have committed, now or later. The checker lets it take effect at
	// any time after its invocation, or never.
	OutUnknown = "unknown"
	// OutFailed: a read that got no answer. It constrains nothing and the
	// checker ignores it.
	OutFailed = "failed"
)

// Op is one operation of a client, with invoke and return times.
type Op struct {
	Client int    `json:"client"`
	Kind   string `json:"kind"`
	Task   string `json:"task"`
	Out    string `json:"out"`
	Err    string `json:"err,omitempty"`
	Server string `json:"server,omitempty"` // the address that answered
	// Call and Return are nanoseconds since the history began; Return is
	// -1 for an OutUnknown write (it may take effect any time later).
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Seen is what a list (OutOK) returned: task id → status, for the
	// workload's tasks only. Index is the list's index (QueryMeta.Index).
	Seen  map[string]string `json:"seen,omitempty"`
	Index uint64            `json:"index,omitempty"`
}

func (o Op) String() string {
	if o.Kind == OpList || o.Kind == OpListStale {
		return fmt.Sprintf("c%d %s → %s (%d tasks, index %d)", o.Client, o.Kind, o.Out, len(o.Seen), o.Index)
	}
	return fmt.Sprintf("c%d %s(%s) → %s", o.Client, o.Kind, o.Task, o.Out)
}

// isList reports whether o is a Task.List of either kind.
func (o Op) isList() bool { return o.Kind == OpList || o.Kind == OpListStale }

// History records operations from concurrent clients. It is safe for
// concurrent use.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts an empty history; its clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Do runs one operation and records it with its invoke and return times.
// fn returns the answering server and an error; outcome classifies them.
func (h *History) Do(client int, kind, task string, fn func() (out string, server string, err error)) Op {
	return h.DoOp(client, kind, task, func(op *Op) error {
		var err error
		op.Out, op.Server, err = fn()
		return err
	})
}

// DoOp is Do for operations that fill in more of the Op (a list's Seen
// and Index): fn sets op.Out and whatever else it learnt.
func (h *History) DoOp(client int, kind, task string, fn func(op *Op) error) Op {
	op := Op{Client: client, Kind: kind, Task: task}
	op.Call = time.Since(h.start).Nanoseconds()
	err := fn(&op)
	op.Return = time.Since(h.start).Nanoseconds()
	if err != nil {
		op.Err = err.Error()
	}
	if op.Out == OutUnknown {
		op.Return = -1
	}
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
	return op
}

// Start is when the history's clock started: Op times count from it.
func (h *History) Start() time.Time { return h.start }

// Ops returns the recorded operations ordered by invocation.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := append([]Op(nil), h.ops...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// Counts tallies operations by kind and outcome, e.g. "add:ok" → 120.
func (h *History) Counts() map[string]int {
	m := map[string]int{}
	for _, o := range h.Ops() {
		m[o.Kind+":"+o.Out]++
	}
	return m
}

// Latencies returns the durations of the operations of one kind that
// ended with outcome out and were invoked in [from, to) (offsets from the
// history's start; to ≤ 0 means no end).
func (h *History) Latencies(kind, out string, from, to time.Duration) []time.Duration {
	var ds []time.Duration
	for _, o := range h.Ops() {
		if o.Kind != kind || o.Out != out || o.Return < 0 || o.Call < int64(from) || (to > 0 && o.Call >= int64(to)) {
			continue
		}
		ds = append(ds, time.Duration(o.Return-o.Call))
	}
	return ds
}

// Acknowledged returns the tasks whose add was acknowledged, and those
// whose cancel was: a correct cluster never loses either.
func (h *History) Acknowledged() (added, cancelled map[string]bool) {
	added, cancelled = map[string]bool{}, map[string]bool{}
	for _, o := range h.Ops() {
		if o.Out != OutOK {
			continue
		}
		switch o.Kind {
		case OpAdd:
			added[o.Task] = true
		case OpCancel:
			cancelled[o.Task] = true
		}
	}
	return added, cancelled
}

// WriteJSON writes the history to path, one operation per line.
func (h *History) WriteJSON(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, o := range h.Ops() {
		if err := enc.Encode(o); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// ReadHistory reads a file written by WriteJSON.
func ReadHistory(path string) (*History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &History{}
	dec := json.NewDecoder(f)
	for dec.More() {
		var o Op
		if err := dec.Decode(&o); err != nil {
			return nil, fmt.Errorf("read history %s: %w", path, err)
		}
		h.ops = append(h.ops, o)
	}
	return h, nil
}

// writeOutcome classifies the result of a write (add or cancel).
func writeOutcome(err error) string {
	switch {
	case err == nil:
		return OutOK
	case rpc.CodeOf(err) == rpc.CodeNotFound:
		return OutNotFound
	case rpc.CodeOf(err) == rpc.CodeConflict:
		return OutConflict
	case rpc.CodeOf(err) == rpc.CodeInvalidArgument:
		return "invalid_argument" // a harness bug; the model refuses it
	default:
		return OutUnknown
	}
}

// retriedWriteOutcome classifies the result of a write sent with
// retries: a refusal at the end after an attempt without a definite
// answer is unknown (that attempt may still take effect). Success stays
// success: a late duplicate of an add or a cancel changes nothing.
func retriedWriteOutcome(err error, ambiguous bool) string {
	out := writeOutcome(err)
	if ambiguous && (out == OutNotFound || out == OutConflict) {
		return OutUnknown
	}
	return out
}

// listOutcome classifies the result of a Task.List.
func listOutcome(err error) string {
	if err == nil {
		return OutOK
	}
	return OutFailed
}

// readOutcome classifies the result of a Task.Get.
func readOutcome(reply *rpc.TaskGetReply, err error) string {
	switch {
	case err == nil && reply.Task != nil:
		return string(reply.Task.Status)
	case err == nil:
		return "no task in reply" // refused by the model
	case rpc.CodeOf(err) == rpc.CodeNotFound:
		return OutNotFound
	default:
		return OutFailed
	}
}
