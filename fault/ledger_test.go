package fault

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rctl-dev/rctl/fsm"
)

func TestCheckJobRuns(t *testing.T) {
	ev := func(st fsm.TaskStatus, node string, tm int64) fsm.Event {
		return fsm.Event{Time: tm, Status: st, NodeID: node}
	}
	task := func(st fsm.TaskStatus, node string, attempts int, h ...fsm.Event) map[string]*fsm.Task {
		return map[string]*fsm.Task{"job-1": {ID: "job-1", Status: st, NodeID: node, Attempts: attempts, History: h}}
	}
	run := func(attempt int, node string, start, end int64) LedgerRun {
		return LedgerRun{Task: "job-1", Attempt: attempt, Node: node, Start: start, End: end}
	}
	once := task(fsm.TaskComplete, "n1", 1, ev(fsm.TaskAssigned, "n1", 100), ev(fsm.TaskRunning, "n1", 105), ev(fsm.TaskComplete, "n1", 210))
	requeued := task(fsm.TaskComplete, "n2", 2,
		ev(fsm.TaskAssigned, "n1", 100), ev(fsm.TaskRunning, "n1", 105), ev(fsm.TaskPending, "n1", 400),
		ev(fsm.TaskAssigned, "n2", 450), ev(fsm.TaskRunning, "n2", 455), ev(fsm.TaskComplete, "n2", 700))
	cases := []struct {
		name  string
		tasks map[string]*fsm.Task
		runs  []LedgerRun
		want  string // "" = no problem
	}{
		{"one run", once, []LedgerRun{run(1, "n1", 110, 200)}, ""},
		{"requeued, ran twice apart", requeued, []LedgerRun{run(1, "n1", 110, 300), run(2, "n2", 460, 650)}, ""},
		{"ran twice at once", requeued, []LedgerRun{run(1, "n1", 110, 500), run(2, "n2", 460, 650)}, "ran twice at once"},
		{"still ran when given to the next node", requeued, []LedgerRun{run(1, "n1", 110, 452), run(2, "n2", 460, 650)}, "held by two live nodes"},
		{"ran on a node that did not hold it", once, []LedgerRun{run(1, "n2", 110, 200)}, "was assigned to n1"},
		{"ran before it was assigned", once, []LedgerRun{run(1, "n1", 90, 200)}, "before the assignment"},
		{"complete without its run", requeued, []LedgerRun{run(1, "n1", 110, 300)}, "without that run"},
		{"ran but not in the manifest", map[string]*fsm.Task{}, []LedgerRun{run(1, "n1", 110, 200)}, "not in the manifest"},
		{"assigned while held", task(fsm.TaskAssigned, "n2", 2, ev(fsm.TaskAssigned, "n1", 100), ev(fsm.TaskAssigned, "n2", 200)), nil, "while n1 held it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := CheckJobRuns(tc.tasks, tc.runs, "job")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected problem: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a problem mentioning %q", err, tc.want)
			}
			t.Logf("%s; %v", st, err)
		})
	}
}

func TestReadLedger(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger")
	if runs, err := ReadLedger(p); err != nil || len(runs) != 0 {
		t.Fatalf("missing ledger: %v, %v", runs, err)
	}
	if err := os.WriteFile(p, []byte("job-1 1 a-aws1 100 200\njob-2 2 a-gcp1 300 400\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := ReadLedger(p)
	if err != nil || len(runs) != 2 || runs[1] != (LedgerRun{"job-2", 2, "a-gcp1", 300, 400}) {
		t.Fatalf("got %v, %v", runs, err)
	}
}
