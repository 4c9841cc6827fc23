package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/cluster"
	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

// startServer runs one in-process server (insecure, lan timing) with n
// tasks "t000000"…, every third of type "other", and returns its address.
func startServer(t *testing.T, n int) string {
	t.Helper()
	addr := testutil.FreeAddrs(t, 1)[0]
	cfg := cluster.Default()
	cfg.NodeID, cfg.DataDir, cfg.Bind, cfg.Timing, cfg.Insecure = "s1", t.TempDir(), addr, "lan", true
	cfg.Peers = []cluster.Peer{{ID: "s1", Address: addr}}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.LogOutput, cfg.LogLevel = io.Discard, "error"
	srv, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	testutil.Eventually(t, 10*time.Second, func() error {
		if !srv.LeaderReady() {
			return fmt.Errorf("not leader yet")
		}
		return nil
	})
	cl := rpc.NewClient([]string{addr})
	defer cl.Close()
	for start := 0; start < n; start += fsm.MaxBatch {
		args := rpc.TaskAddBatchArgs{}
		for i := start; i < min(start+fsm.MaxBatch, n); i++ {
			typ := "sleep"
			if i%3 == 0 {
				typ = "other"
			}
			args.Tasks = append(args.Tasks, rpc.TaskAddArgs{ID: fmt.Sprintf("t%06d", i), Type: typ, Cloud: "nowhere"})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := cl.Call(ctx, rpc.MethodTaskAddBatch, &args, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	return addr
}

// onFirstWrite is stdout that runs hook once, when the command first
// writes: whatever hook changes in the cluster then happened after the
// first rows were printed.
type onFirstWrite struct {
	bytes.Buffer
	hook func()
}

func (w *onFirstWrite) Write(p []byte) (int, error) {
	if w.hook != nil {
		h := w.hook
		w.hook = nil
		h()
	}
	return w.Buffer.Write(p)
}

// TestTaskListStreamsPages: `task list` prints each page as it arrives.
// A task added when the first rows reach stdout is still listed at the
// end, which can only happen if those rows were written before the last
// page was asked for.
func TestTaskListStreamsPages(t *testing.T) {
	addr := startServer(t, 2500)
	late := func(id string) func() {
		return func() {
			cl := rpc.NewClient([]string{addr})
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "sleep", Cloud: "nowhere"}, nil); err != nil {
				t.Errorf("add %s: %v", id, err)
			}
		}
	}
	run := func(hook func(), args ...string) string {
		t.Helper()
		out := &onFirstWrite{hook: hook}
		var errb bytes.Buffer
		if code := Run(append([]string{"--addr", addr}, args...), out, &errb); code != ExitOK {
			t.Fatalf("rctl %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}

	t.Run("table", func(t *testing.T) {
		got := run(late("late-table"), "task", "list", "--page-size", "1000")
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 1+2501 || !strings.HasPrefix(lines[0], "ID ") {
			t.Fatalf("%d lines, first %q", len(lines), lines[0])
		}
		if !strings.HasPrefix(lines[1], "t000000 ") || !strings.HasPrefix(lines[len(lines)-1], "late-table ") {
			t.Fatalf("first row %q, last row %q: want t000000 first and the task added during the listing last", lines[1], lines[len(lines)-1])
		}
		// Columns line up across pages: the STATUS column starts at one
		// offset (but for the last row, whose id is wider than the first
		// page's).
		col := strings.Index(lines[0], "STATUS")
		for _, l := range lines[1 : len(lines)-1] {
			if !strings.HasPrefix(l[col:], "pending ") {
				t.Fatalf("misaligned row %q (STATUS at %d)", l, col)
			}
		}
	})
	t.Run("json array", func(t *testing.T) {
		got := run(late("late-json"), "-o", "json", "task", "list", "--page-size", "700")
		var tasks []fsm.Task
		if err := json.Unmarshal([]byte(got), &tasks); err != nil {
			t.Fatalf("not one JSON array: %v\n%.300s", err, got)
		}
		if len(tasks) != 2502 || tasks[0].ID != "t000000" || tasks[len(tasks)-1].ID != "late-json" {
			t.Fatalf("%d tasks, first %s, last %s", len(tasks), tasks[0].ID, tasks[len(tasks)-1].ID)
		}
		// Laid out as printJSON lays out a whole slice.
		var want bytes.Buffer
		if err := (&globals{stdout: &want}).printJSON(tasks[:2]); err != nil {
			t.Fatal(err)
		}
		head := run(nil, "-o", "json", "task", "list", "--limit", "2")
		if head != want.String() {
			t.Fatalf("--limit 2 -o json:\n%s\nwant:\n%s", head, want.String())
		}
		if empty := run(nil, "-o", "json", "task", "list", "--type", "none"); empty != "[]\n" {
			t.Fatalf("empty listing: %q", empty)
		}
	})
	t.Run("limit and filters", func(t *testing.T) {
		got := run(nil, "task", "list", "--limit", "1500", "--page-size", "400")
		if n := strings.Count(got, "\n"); n != 1+1500 {
			t.Fatalf("--limit 1500: %d lines", n)
		}
		got = run(nil, "task", "list", "--type", "other", "--newest", "--limit", "3")
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[1], "t002499 ") || !strings.HasPrefix(lines[3], "t002493 ") {
			t.Fatalf("--type other --newest --limit 3:\n%s", got)
		}
		if got := run(nil, "task", "list", "--node", "nobody"); got != "ID  TYPE  STATUS  NODE  ATTEMPTS  AGE\n" {
			t.Fatalf("no match: %q", got)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"--limit", "-1"}, {"--page-size", "0"}, {"--page-size", "10001"}, {"--status", "sleeping"}} {
			var out, errb bytes.Buffer
			if code := Run(append([]string{"--addr", addr, "task", "list"}, args...), &out, &errb); code != ExitUsage {
				t.Fatalf("%v: exit %d, want 2 (%s)", args, code, errb.String())
			}
		}
	})
}

func TestStreamTableEscapesAndWidens(t *testing.T) {
	var out bytes.Buffer
	tb := newStreamTable(&out, "ID", "NOTE", "END")
	if err := tb.rows([][]string{{"a\tb", "x\ny\x1b]0;t\a", "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := tb.rows([][]string{{"a-much-longer-id", "d", "2"}}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	assertPrintable(t, got, true)
	want := "ID    NOTE            END\n" +
		`a\tb  x\ny\x1b]0;t\a  1` + "\n" +
		"a-much-longer-id  d   2\n" // pushed right, then back in line
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
