package fault

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func TestTaskModel(t *testing.T) {
	op := func(client int, kind, task, out string, call, ret int64) Op {
		return Op{Client: client, Kind: kind, Task: task, Out: out, Call: call, Return: ret}
	}
	cases := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"add then read", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(1, OpGet, "a", "pending", 11, 20),
		}, porcupine.Ok},
		{"read concurrent with add may miss it", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(1, OpGet, "a", OutNotFound, 5, 20),
		}, porcupine.Ok},
		{"stale read after acknowledged add", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(1, OpGet, "a", OutNotFound, 11, 20),
		}, porcupine.Illegal},
		{"cancel then read sees cancelled", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(0, OpCancel, "a", OutOK, 11, 20), op(1, OpGet, "a", "cancelled", 21, 30),
		}, porcupine.Ok},
		{"read goes back in time", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(0, OpCancel, "a", OutOK, 11, 20),
			op(1, OpGet, "a", "cancelled", 21, 30), op(2, OpGet, "a", "pending", 31, 40),
		}, porcupine.Illegal},
		{"cancel of a missing task", []Op{
			op(0, OpCancel, "a", OutNotFound, 0, 10), op(0, OpAdd, "a", OutOK, 11, 20),
		}, porcupine.Ok},
		{"unknown add seen later", []Op{
			op(0, OpAdd, "a", OutUnknown, 0, -1), op(1, OpGet, "a", OutNotFound, 5, 8), op(1, OpGet, "a", "pending", 100, 110),
		}, porcupine.Ok},
		{"unknown add never seen", []Op{
			op(0, OpAdd, "a", OutUnknown, 0, -1), op(1, OpGet, "a", OutNotFound, 100, 110),
		}, porcupine.Ok},
		{"unknown add seen, then unseen", []Op{
			op(0, OpAdd, "a", OutUnknown, 0, -1), op(1, OpGet, "a", "pending", 100, 110), op(1, OpGet, "a", OutNotFound, 120, 130),
		}, porcupine.Illegal},
		{"failed reads are ignored", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(1, OpGet, "a", OutFailed, 11, 20),
		}, porcupine.Ok},
		{"tasks are independent", []Op{
			op(0, OpAdd, "a", OutOK, 0, 10), op(1, OpGet, "b", OutNotFound, 11, 20), op(1, OpGet, "a", "pending", 21, 30),
		}, porcupine.Ok},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(TaskModel, Operations(tc.ops), 5*time.Second); got != tc.want {
				t.Fatalf("check = %s, want %s for %v", got, tc.want, tc.ops)
			}
		})
	}
}

// TestCheckLinearizableWritesFiles: a violation leaves the history and the
// visualization behind, and the history reads back.
func TestCheckLinearizableWritesFiles(t *testing.T) {
	h := NewHistory()
	h.ops = []Op{
		{Client: 0, Kind: OpAdd, Task: "a", Out: OutOK, Call: 0, Return: 10},
		{Client: 1, Kind: OpGet, Task: "a", Out: OutNotFound, Call: 11, Return: 20},
	}
	dir := t.TempDir()
	res, err := CheckLinearizable(h, dir, 5*time.Second)
	if res != porcupine.Illegal || err == nil {
		t.Fatalf("check = %s, %v; want Illegal with an error", res, err)
	}
	t.Logf("checker said: %v", err)
	for _, f := range []string{"history.jsonl", "history.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
	back, err := ReadHistory(filepath.Join(dir, "history.jsonl"))
	if err != nil || len(back.Ops()) != 2 {
		t.Fatalf("read back %v, %v", back, err)
	}
}
