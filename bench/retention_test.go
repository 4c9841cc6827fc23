package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

// BenchmarkRetention (issue 17): what retiring finished tasks buys. 3
// servers, `--timing lan`, started with retention off (`--retain-finished
// 0 --retain-finished-max 0`); 1M tasks (2-key payload) are added and
// 900,000 of them cancelled (Task.Cancel, one call each). Before
// retention: the leader's RSS, snapshot save (size, time) and `rctl
// snapshot restore` time, the data dirs' raft log and snapshot files, and
// Task.Add latency. Then every server is restarted with the default count
// rule (`--retain-finished-max 100000`, `--retire-interval 30s`): how
// long the leader takes to retire the 800,000 beyond the limit, Task.Add
// latency meanwhile, and the same figures after, plus a follower
// restarted on the bounded manifest, `rctl task list` (the whole walk)
// and `rctl top --once` on it. Sizes from RCTL_BENCH_TASKS,
// RCTL_BENCH_FINISHED, RCTL_BENCH_RETAIN; the interval from
// RCTL_BENCH_RETIRE_INTERVAL (a Go duration, default 30s as rctl serve's).
// RCTL_BENCH_LOGDIR=dir keeps the servers' logs (level info) in
// dir/<id>.log; they hold one task_retired line per retired task.
func BenchmarkRetention(b *testing.B) {
	total := envInt(b, "RCTL_BENCH_TASKS", 1_000_000)
	finished := envInt(b, "RCTL_BENCH_FINISHED", total*9/10)
	keep := envInt(b, "RCTL_BENCH_RETAIN", 100_000)
	interval := 30 * time.Second // rctl serve's default
	if v := os.Getenv("RCTL_BENCH_RETIRE_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("RCTL_BENCH_RETIRE_INTERVAL: %v", err)
		}
		interval = d
	}
	c := startCluster(b, 3, "lan")
	logDir := os.Getenv("RCTL_BENCH_LOGDIR")
	start := func(s *server) {
		if logDir != "" {
			startLogged(b, c, s, logDir)
		} else {
			c.start(s)
		}
	}
	for _, s := range c.servers { // retention off while the manifest is built
		c.kill(s)
		s.args = append(s.args, "--retain-finished", "0", "--retain-finished-max", "0")
		start(s)
	}
	_, l, lc := c.leaderClients()

	t0 := time.Now()
	fill(b, lc, 0, total)
	fmt.Printf("retention: %d tasks added in %s\n", total, time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	cancelRange(b, lc, 0, finished, 128)
	took := time.Since(t1)
	fmt.Printf("retention: %d of them cancelled (Task.Cancel, 128 in flight) in %s, %.0f cancels/s\n",
		finished, took.Round(time.Millisecond), float64(finished)/took.Seconds())

	before := measureRetention(b, c, l, lc, "before retention")

	// Rolling the new flags out: every server restarted with the count
	// rule (as an operator would, here all at once).
	for _, s := range c.servers {
		c.kill(s)
	}
	for _, s := range c.servers {
		s.args = withRetention(s.args, keep, interval)
		start(s)
	}
	restarted := time.Now()
	cl2 := rpc.NewClient(c.addrs(nil))
	defer cl2.Close()
	l = c.leader(cl2, time.Minute)
	lc2 := rpc.NewClient([]string{l.addr})
	defer lc2.Close()
	waitApplied(b, lc2, 2*time.Minute) // the leader has replayed its log
	elected := time.Now()
	rssLeader1M := rssOf(l)
	fmt.Printf("retention: all 3 restarted with --retain-finished-max %d --retire-interval %s: leader %s elected and caught up after %s, its RSS %.0f MiB at %d tasks\n",
		keep, interval, l.id, elected.Sub(restarted).Round(time.Millisecond), rssLeader1M, total)

	// Retirement, with writes going on.
	probe := startProbe(lc2, "during")
	var first time.Time
	excess := finished - keep
	for {
		counts := leaderCounts(b, lc2)
		n := counts["cancelled"]
		if n < finished && first.IsZero() {
			first = time.Now()
		}
		if n <= keep {
			break
		}
		if time.Since(elected) > 30*time.Minute {
			b.Fatalf("still %d cancelled tasks after 30 minutes", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := time.Now()
	during := probe.stop()
	rssRetired := rssOf(l)
	fmt.Printf("retention: %d tasks retired in %s from the leader's election (%s from the first retirement seen), %d rounds of at most 20,000 (--retire-interval %s, 1 s apart while a backlog lasts); %.0f tasks/s\n",
		excess, done.Sub(elected).Round(time.Millisecond), done.Sub(first).Round(time.Millisecond),
		(excess+19_999)/20_000, interval, float64(excess)/done.Sub(first).Seconds())
	fmt.Printf("retention: Task.Add latency while retiring: %s (before retention: %s)\n", summary(during), summary(before.adds))
	fmt.Printf("retention: leader %s RSS %.0f MiB at %d tasks → %.0f MiB after retiring down to %d (same process)\n",
		l.id, rssLeader1M, total, rssRetired, total-excess)
	testutil.Eventually(b, time.Minute, func() error {
		for _, s := range c.servers {
			n := staleCount(s.addr, "cancelled")
			if n != keep {
				return fmt.Errorf("%s holds %d cancelled tasks", s.id, n)
			}
		}
		return nil
	})

	after := measureRetention(b, c, l, lc2, "after retention")
	fmt.Printf("retention: snapshot %.1f → %.1f MiB (%.1fx smaller), restore %s → %s, leader RSS %.0f → %.0f MiB\n",
		float64(before.snapBytes)/(1<<20), float64(after.snapBytes)/(1<<20), float64(before.snapBytes)/float64(after.snapBytes),
		before.restore.Round(time.Millisecond), after.restore.Round(time.Millisecond), before.rss, after.rss)

	// A follower restarted on the bounded manifest.
	f := c.other(l)
	c.kill(f)
	t3 := time.Now()
	start(f)
	fc := rpc.NewClient([]string{f.addr})
	defer fc.Close()
	waitCaughtUp(b, lc2, fc, 5*time.Minute)
	fmt.Printf("retention: follower %s restarted on the bounded manifest: caught up in %s, RSS %.0f MiB\n",
		f.id, time.Since(t3).Round(time.Millisecond), rssOf(f))

	// The CLI on the bounded manifest (BenchmarkTaskList1M has the same at
	// 1M tasks).
	addrs := strings.Join(c.addrs(nil), ",")
	out, took2, rss := runCLI(b, "--addr", addrs, "--timeout", "1m", "task", "list")
	fmt.Printf("retention: rctl task list (whole walk) after retention: %s, first row after %s, %d lines, CLI peak RSS %.0f MiB\n",
		took2.Round(time.Millisecond), out.first.Round(time.Millisecond), out.lines, rss)
	var tops []time.Duration
	for range 5 {
		_, took, _ := runCLI(b, "--addr", addrs, "top", "--once")
		tops = append(tops, took)
	}
	fmt.Printf("retention: rctl top --once after retention: %s\n", summary(tops))
	b.ReportMetric(done.Sub(first).Seconds(), "retire-s")
	b.ReportMetric(float64(after.snapBytes)/float64(before.snapBytes), "snapshot-ratio")
}

// retentionFigures are what measureRetention measured.
type retentionFigures struct {
	snapBytes int
	save      time.Duration
	restore   time.Duration
	rss       float64
	adds      []time.Duration
}

// measureRetention prints and returns the leader's RSS, snapshot save
// (size, time) and `rctl snapshot restore` time, the data dirs' raft
// files, and Task.Add latency (the probe's adds are pending tasks).
func measureRetention(b *testing.B, c *cluster, l *server, lc *rpc.Client, phase string) retentionFigures {
	var fig retentionFigures
	fig.rss = rssOf(l)
	counts := leaderCounts(b, lc)
	tasks := 0
	for _, n := range counts {
		tasks += n
	}
	p := startProbe(lc, strings.Fields(phase)[0])
	time.Sleep(5 * time.Second)
	fig.adds = p.stop()

	var buf bytes.Buffer
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if _, err := rpc.SnapshotSave(ctx, rpc.Credentials{}, []string{l.addr}, false, &buf); err != nil {
		b.Fatal(err)
	}
	cancel()
	fig.save, fig.snapBytes = time.Since(t0), buf.Len()
	file := filepath.Join(b.TempDir(), "retention.snap")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	addrs := strings.Join(c.addrs(nil), ",")
	if out, err := exec.Command(rctlBin, "--addr", addrs, "--timeout", "5m", "snapshot", "restore", file).CombinedOutput(); err != nil {
		// Say so and measure a second attempt rather than lose the run.
		fmt.Printf("retention: %s: rctl snapshot restore failed after %s: %s; again:\n", phase, time.Since(t1).Round(time.Millisecond), bytes.TrimSpace(out))
		t1 = time.Now()
		if out, err := exec.Command(rctlBin, "--addr", addrs, "--timeout", "5m", "snapshot", "restore", file).CombinedOutput(); err != nil {
			b.Fatalf("rctl snapshot restore: %v\n%s", err, out)
		}
	}
	fig.restore = time.Since(t1)
	out, err := exec.Command(rctlBin, "-o", "json", "snapshot", "inspect", file).Output()
	if err != nil {
		b.Fatalf("rctl snapshot inspect: %v", err)
	}
	var info fsm.SnapshotInfo
	if err := json.Unmarshal(out, &info); err != nil {
		b.Fatal(err)
	}
	var rss []string
	for _, s := range c.servers {
		rss = append(rss, fmt.Sprintf("%s %.0f", s.id, rssOf(s)))
	}
	fmt.Printf("retention: %s: %d tasks %v; RSS (MiB) %s (leader %s); Task.Add %s\n", phase, tasks, nonZero(counts),
		strings.Join(rss, ", "), l.id, summary(fig.adds))
	fmt.Printf("retention: %s: snapshot %.1f MiB (format %d, %d tasks, %d retired records), save %s, rctl snapshot restore %s\n", phase,
		float64(fig.snapBytes)/(1<<20), info.Version, info.Tasks, info.Retired, fig.save.Round(time.Millisecond), fig.restore.Round(time.Millisecond))
	fmt.Printf("retention: %s: leader data dir: %s\n", phase, dataDirSizes(l.dir))
	return fig
}

// nonZero drops the statuses without tasks.
func nonZero(counts map[string]int) map[string]int {
	out := make(map[string]int)
	for k, v := range counts {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// dataDirSizes sums a data dir's files: the raft log (bbolt) and the
// snapshots.
func dataDirSizes(dir string) string {
	var logB, snapB, other int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		switch {
		case strings.Contains(path, string(filepath.Separator)+"snapshots"+string(filepath.Separator)):
			snapB += info.Size()
		case strings.HasSuffix(path, ".db"):
			logB += info.Size()
		default:
			other += info.Size()
		}
		return nil
	})
	return fmt.Sprintf("raft log %.0f MiB, snapshots %.0f MiB (up to 3 kept), other %.1f MiB", float64(logB)/(1<<20), float64(snapB)/(1<<20), float64(other)/(1<<20))
}

// withRetention replaces the retention flags in a server's arguments.
func withRetention(args []string, keep int, interval time.Duration) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--retain-finished", "--retain-finished-max", "--retire-interval":
			i++
			continue
		case "--log-level": // task_retired lines are info: pay for them
			out = append(out, args[i], "info")
			i++
			continue
		}
		out = append(out, args[i])
	}
	return append(out, "--retain-finished-max", strconv.Itoa(keep), "--retire-interval", interval.String())
}

// cancelRange cancels tasks m<from>…m<to-1> (fill's ids) with inflight
// calls at once.
func cancelRange(b *testing.B, cl *rpc.Client, from, to, inflight int) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || firstErr.Load() != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := cl.Call(ctx, rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: "m" + strconv.Itoa(i)}, nil)
				cancel()
				if err != nil {
					firstErr.Store(err)
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("cancel: %v", err)
	}
}

// addProbe adds tasks one at a time and records each call's latency.
type addProbe struct {
	stopCh chan struct{}
	done   chan []time.Duration
}

var probeSeq atomic.Int64

func startProbe(cl *rpc.Client, name string) *addProbe {
	p := &addProbe{stopCh: make(chan struct{}), done: make(chan []time.Duration, 1)}
	go func() {
		var lats []time.Duration
		for {
			select {
			case <-p.stopCh:
				p.done <- lats
				return
			default:
			}
			t := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: fmt.Sprintf("probe-%s-%d", name, probeSeq.Add(1)), Type: "sleep"}, nil)
			cancel()
			if err == nil {
				lats = append(lats, time.Since(t))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return p
}

func (p *addProbe) stop() []time.Duration {
	close(p.stopCh)
	lats := <-p.done
	if len(lats) == 0 {
		lats = []time.Duration{0}
	}
	return lats
}

// leaderCounts returns the manifest's counts per status, read through
// the leader.
func leaderCounts(b *testing.B, cl *rpc.Client) map[string]int {
	var r rpc.TaskListReply
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.Call(ctx, rpc.MethodTaskList, &rpc.TaskListArgs{Limit: 1}, &r); err != nil {
		b.Fatalf("task list: %v", err)
	}
	return r.Counts
}

// staleCount returns one server's own count of tasks in status (-1 on
// error).
func staleCount(addr, status string) int {
	cl := rpc.NewClient([]string{addr})
	defer cl.Close()
	var r rpc.TaskListReply
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Call(ctx, rpc.MethodTaskList, &rpc.TaskListArgs{Limit: 1, QueryOptions: rpc.QueryOptions{Stale: true}}, &r); err != nil {
		return -1
	}
	return r.Counts[status]
}

// waitApplied waits until the server behind cl has applied its whole
// log (applied index = last index).
func waitApplied(b *testing.B, cl *rpc.Client, within time.Duration) {
	testutil.Eventually(b, within, func() error {
		var st rpc.StatusReply
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cl.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
			return err
		}
		if st.AppliedIndex < st.CommitIndex || st.CommitIndex == 0 {
			return fmt.Errorf("applied %d of %d", st.AppliedIndex, st.CommitIndex)
		}
		return nil
	})
}

// waitCaughtUp waits until the follower behind fc has applied what the
// leader behind lc had applied when the wait began.
func waitCaughtUp(b *testing.B, lc, fc *rpc.Client, within time.Duration) {
	var ls rpc.StatusReply
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := lc.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &ls)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	testutil.Eventually(b, within, func() error {
		var st rpc.StatusReply
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := fc.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
			return err
		}
		if st.AppliedIndex < ls.AppliedIndex {
			return fmt.Errorf("applied %d of %d", st.AppliedIndex, ls.AppliedIndex)
		}
		return nil
	})
}
