package fault

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// LedgerRun is one run of a job, as the job's shell recorded it (see
// JobCommand): which node ran which attempt of the task, from when to when
// (unix nanoseconds, the host's clock, which the servers share).
type LedgerRun struct {
	Task       string
	Attempt    int
	Node       string
	Start, End int64
}

func (r LedgerRun) String() string {
	return fmt.Sprintf("%s attempt %d on %s [%s, %s]", r.Task, r.Attempt, r.Node,
		time.Unix(0, r.Start).Format("15:04:05.000"), time.Unix(0, r.End).Format("15:04:05.000"))
}

// ReadLedger reads a job ledger; a missing file is an empty ledger.
func ReadLedger(path string) ([]LedgerRun, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []LedgerRun
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var r LedgerRun
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %s %d %d", &r.Task, &r.Attempt, &r.Node, &r.Start, &r.End); err != nil {
			return nil, fmt.Errorf("ledger %s line %d %q: %w", path, n, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// JobStats sums up what the agents did with the jobs.
type JobStats struct {
	Jobs     int // jobs in the manifest
	Complete int
	Runs     int // runs in the ledger
	Requeued int // jobs assigned more than once
	Reruns   int // jobs that ran more than once
}

func (s JobStats) String() string {
	return fmt.Sprintf("%d jobs, %d complete, %d runs, %d requeued, %d ran more than once",
		s.Jobs, s.Complete, s.Runs, s.Requeued, s.Reruns)
}

// CheckJobRuns checks the runs of the jobs (tasks whose id starts with
// prefix+"-") against the manifest's tasks, as seen once everything
// settled:
//
//   - no two runs of one task overlap in time (it never ran on two nodes,
//     or twice on one, at once);
//   - every run was of an attempt the manifest gave to that node, started
//     after the assignment and ended before the manifest gave the task to
//     the next node: a task was never held by one node while another still
//     ran it;
//   - the manifest never assigned a task that another node held;
//   - every complete job has the run that completed it in the ledger.
//
// A task's history keeps its newest fsm.MaxHistory events; the checks
// that need older ones are skipped for tasks that overflowed.
func CheckJobRuns(tasks map[string]*fsm.Task, runs []LedgerRun, prefix string) (JobStats, error) {
	var st JobStats
	var problems []string
	byTask := map[string][]LedgerRun{}
	for _, r := range runs {
		if !strings.HasPrefix(r.Task, prefix+"-") {
			continue
		}
		st.Runs++
		byTask[r.Task] = append(byTask[r.Task], r)
	}
	ids := make([]string, 0, len(tasks))
	for id := range tasks {
		if strings.HasPrefix(id, prefix+"-") {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for id, rs := range byTask {
		if tasks[id] == nil {
			problems = append(problems, fmt.Sprintf("%s ran (%s) but is not in the manifest", id, rs[0]))
		}
	}
	for _, id := range ids {
		t := tasks[id]
		st.Jobs++
		if t.Status == fsm.TaskComplete {
			st.Complete++
		}
		if t.Attempts > 1 {
			st.Requeued++
		}
		rs := byTask[id]
		if len(rs) > 1 {
			st.Reruns++
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
		for i := 1; i < len(rs); i++ {
			for _, o := range rs[:i] {
				if rs[i].Start < o.End {
					problems = append(problems, fmt.Sprintf("%s ran twice at once: %s and %s", id, o, rs[i]))
				}
			}
		}
		complete := len(t.History) < fsm.MaxHistory
		// The manifest's holders, one per assignment (attempt k is the
		// k-th assigned event), and the manifest never assigning a task
		// that is still held.
		var assigns []fsm.Event
		held := ""
		for _, ev := range t.History {
			switch ev.Status {
			case fsm.TaskAssigned:
				if held != "" && complete {
					problems = append(problems, fmt.Sprintf("%s assigned to %s at index %d while %s held it", id, ev.NodeID, ev.Index, held))
				}
				held = ev.NodeID
				assigns = append(assigns, ev)
			case fsm.TaskRunning:
			default: // pending (requeued), complete, failed, cancelled
				held = ""
			}
		}
		if !complete {
			continue
		}
		for _, r := range rs {
			if r.Attempt < 1 || r.Attempt > len(assigns) {
				problems = append(problems, fmt.Sprintf("%s: run of attempt %d, but the manifest assigned it %d times (%s)", id, r.Attempt, len(assigns), r))
				continue
			}
			a := assigns[r.Attempt-1]
			if a.NodeID != r.Node {
				problems = append(problems, fmt.Sprintf("%s: attempt %d ran on %s but was assigned to %s (%s)", id, r.Attempt, r.Node, a.NodeID, r))
			}
			if r.Start < a.Time {
				problems = append(problems, fmt.Sprintf("%s: %s started before the assignment at %s", id, r, time.Unix(0, a.Time).Format("15:04:05.000")))
			}
			if r.Attempt < len(assigns) {
				if next := assigns[r.Attempt]; r.End > next.Time {
					problems = append(problems, fmt.Sprintf("%s held by two live nodes: %s still ran when the manifest gave attempt %d to %s at %s",
						id, r, r.Attempt+1, next.NodeID, time.Unix(0, next.Time).Format("15:04:05.000")))
				}
			}
		}
		if t.Status == fsm.TaskComplete {
			found := false
			for _, r := range rs {
				if r.Attempt == t.Attempts && r.Node == t.NodeID {
					found = true
				}
			}
			if !found {
				problems = append(problems, fmt.Sprintf("%s complete (attempt %d on %s) without that run in the ledger", id, t.Attempts, t.NodeID))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… %d more", len(problems)-20))
		}
		return st, errors.New(strings.Join(problems, "; "))
	}
	return st, nil
}
