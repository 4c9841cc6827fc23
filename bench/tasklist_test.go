package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// firstWrite counts what a command prints and when it printed first.
type firstWrite struct {
	mu    sync.Mutex
	start time.Time
	first time.Duration
	bytes int64
	lines int64
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bytes == 0 && len(p) > 0 {
		w.first = time.Since(w.start)
	}
	w.bytes += int64(len(p))
	w.lines += int64(strings.Count(string(p), "\n"))
	return len(p), nil
}

// runCLI runs rctl with args and returns its output counter, the time it
// took and its peak RSS in MiB (0 when /usr/bin/time is missing: a
// child's own rusage reports the forking parent's RSS).
func runCLI(b *testing.B, args ...string) (*firstWrite, time.Duration, float64) {
	b.Helper()
	out := &firstWrite{}
	cmd := exec.Command(rctlBin, args...)
	timed := false
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		cmd = exec.Command("/usr/bin/time", append([]string{"-f", "rctl-peak-rss-kb=%M", rctlBin}, args...)...)
		timed = true
	}
	cmd.Stdout = out
	var errb strings.Builder
	cmd.Stderr = &errb
	out.start = time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("rctl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	took := time.Since(out.start)
	rss := 0.0
	if _, v, ok := strings.Cut(errb.String(), "rctl-peak-rss-kb="); timed && ok {
		kb, _ := strconv.Atoi(strings.TrimSpace(v))
		rss = float64(kb) / 1024
	}
	return out, took, rss
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}

// BenchmarkTaskList1M: paging through a manifest of 1M tasks (2-key
// payload) with 10,000 simulated agents heartbeating (they hold 10,000 of
// the tasks), 3 servers, `--timing lan`: Task.List page latency (Go
// client; through a follower, from the leader, stale), filtered walks,
// the whole walk by `rctl task list` through --addr (all three servers;
// table and JSON: time to the first row, total, the CLI's peak RSS), and
// `rctl top --once` (time to print). Sizes from RCTL_BENCH_TASKS and
// RCTL_BENCH_NODES (0: no agents).
func BenchmarkTaskList1M(b *testing.B) {
	total := envInt(b, "RCTL_BENCH_TASKS", 1_000_000)
	nodes := envInt(b, "RCTL_BENCH_NODES", 10_000)
	c := startCluster(b, 3, "lan")
	_, l, lc := c.leaderClients()
	t0 := time.Now()
	fill(b, lc, 0, total)
	fmt.Printf("task list: %d tasks added in %s\n", total, time.Since(t0).Round(time.Millisecond))
	if nodes > 0 {
		fleet := startFleet(b, l.addr, nodes, 32)
		defer fleet.close()
		fmt.Printf("task list: %d simulated agents registered and heartbeating\n", nodes)
	}
	var follower *server
	for _, s := range c.servers {
		if s != l {
			follower = s
			break
		}
	}
	fc := rpc.NewClient([]string{follower.addr})
	defer fc.Close()

	// Page latency, Go client: through a follower (linearizable, so
	// forwarded to the leader: the CLI's usual path), from the leader, and
	// stale from the follower. pages > 0 stops the walk early.
	walk := func(name string, cl *rpc.Client, args rpc.TaskListArgs, pages int) {
		var lats []time.Duration
		n := 0
		start := time.Now()
		for {
			t := time.Now()
			var r rpc.TaskListReply
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := cl.Call(ctx, rpc.MethodTaskList, &args, &r)
			cancel()
			if err != nil {
				b.Fatalf("%s: page %d: %v", name, len(lats), err)
			}
			lats = append(lats, time.Since(t))
			n += len(r.Tasks)
			if r.NextCursor == "" || len(lats) == pages {
				break
			}
			args.Cursor = r.NextCursor
		}
		fmt.Printf("task list: %s: %d tasks in %d pages, %s; per page %s\n", name, n, len(lats),
			time.Since(start).Round(time.Millisecond), summary(lats))
	}
	walk("all, 1000/page, via a follower", fc, rpc.TaskListArgs{Limit: 1000}, 0)
	walk("all, 1000/page, from the leader", lc, rpc.TaskListArgs{Limit: 1000}, 0)
	walk("all, 1000/page, stale from a follower", fc, rpc.TaskListArgs{Limit: 1000, QueryOptions: rpc.QueryOptions{Stale: true}}, 0)
	walk("all, 10000/page, from the leader", lc, rpc.TaskListArgs{Limit: 10_000}, 0)
	walk("newest first, 1000/page, from the leader, first 100 pages", lc, rpc.TaskListArgs{Limit: 1000, Reverse: true}, 100)
	walk("status=assigned, 1000/page, from the leader", lc, rpc.TaskListArgs{Limit: 1000, Status: "assigned"}, 0)
	walk("node_id=sim-5 (scan), from the leader", lc, rpc.TaskListArgs{Limit: 1000, NodeID: "sim-5"}, 0)
	walk("type=none (scan), from the leader", lc, rpc.TaskListArgs{Limit: 1000, Type: "none"}, 0)

	// The CLI, as an operator runs it.
	addrs := strings.Join(c.addrs(nil), ",")
	for _, args := range [][]string{
		{"task", "list"},
		{"-o", "json", "task", "list"},
		{"task", "list", "--status", "pending", "--limit", "20"},
	} {
		out, took, rss := runCLI(b, append([]string{"--addr", addrs, "--timeout", "1m"}, args...)...)
		fmt.Printf("task list: rctl %s: %s, first row after %s, %d lines, %d MiB printed, CLI peak RSS %.0f MiB\n",
			strings.Join(args, " "), took.Round(time.Millisecond), out.first.Round(time.Millisecond), out.lines, out.bytes>>20, rss)
	}

	var tops []time.Duration
	var lines int64
	var rss float64
	for range 5 {
		out, took, r := runCLI(b, "--addr", addrs, "top", "--once")
		tops = append(tops, took)
		lines, rss = out.lines, r
	}
	fmt.Printf("task list: rctl top --once at %d tasks / %d nodes: %s (%d lines, CLI peak RSS %.0f MiB)\n",
		total, nodes, summary(tops), lines, rss)
	out, took, _ := runCLI(b, "--addr", addrs, "-o", "json", "top", "--once")
	fmt.Printf("task list: rctl top --once -o json: %s (%d KiB)\n", took.Round(time.Millisecond), out.bytes>>10)
	b.ReportMetric(float64(pct(tops, 0.5).Milliseconds()), "top-once-p50-ms")
}
