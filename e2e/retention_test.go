package e2e

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// Issue 17's end-to-end scenario. Three real servers keep at most 1,000
// tasks per finished status and look for tasks to retire every 250 ms.
// A simulated agent finishes 2,400 tasks (1,200 complete, 1,200 failed),
// then a steady stream of 101,000 tasks is added in batches of 1,000 and
// each is cancelled through Task.Cancel: 100,400 finished tasks beyond
// the limits. Afterwards every server holds exactly 1,000 tasks of each
// finished status (the newest), retired ids answer not_found with the
// retired hint while they are remembered, a retired id can be added
// again, a restarted follower comes back with the same bounded manifest,
// a snapshot holds only that manifest and the retired record, and the
// leader logged one event=task_retired line per retired task.
func TestRetentionBoundsTheManifest(t *testing.T) {
	const (
		limit     = 1000
		agentN    = 2400    // finished by the agent: half complete, half failed
		streamN   = 101_000 // cancelled
		batch     = fsm.MaxBatch
		cancelers = 256
	)
	start := time.Now()
	useUninstrumentedServers(t)
	c := startClusterWith(t, 3, func(*proc) []string {
		return []string{"--insecure", "--retain-finished-max", fmt.Sprint(limit), "--retire-interval", "250ms"}
	})
	// The leader logs 100,400 task_retired lines: on failure, print only
	// the end of each server's log. (Runs before the harness's cleanup,
	// which prints the logs.)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range c.procs {
			c.kill(p)
			if b := p.log.Bytes(); len(b) > 64<<10 {
				tail := slices.Clone(b[len(b)-64<<10:])
				p.log.Reset()
				fmt.Fprintf(p.log, "[… %d bytes of log left out …]\n", len(b)-len(tail))
				p.log.Write(tail)
			}
		}
	})
	all := c.addrs()
	l := c.leader(10*time.Second, all)
	term0 := statusOf(t, l.addr).Term
	cl := rpc.NewClient(append([]string{l.addr}, strings.Split(c.addrs(l), ",")...))
	t.Cleanup(func() { cl.Close() })

	// 1. A simulated agent completes or fails agentN tasks.
	var agentIDs []string
	for i := range agentN {
		agentIDs = append(agentIDs, fmt.Sprintf("ag-%05d", i))
	}
	addBatches(t, cl, agentIDs)
	runAgent(t, cl, l.addr, "sim-1", agentIDs)
	waitCounts(t, c, map[string]int{"complete": limit, "failed": limit})
	t.Logf("agent phase: %d tasks finished and retired down to the limit after %s", agentN, time.Since(start).Round(time.Millisecond))

	// 2. The stream: batches of 1,000 added while cancelers finish the
	// tasks of the batches before; the last batch is cancelled only after
	// every other task, so the tasks kept are known exactly.
	streamIDs := make([]string, streamN)
	for i := range streamIDs {
		streamIDs[i] = fmt.Sprintf("st-%06d", i)
	}
	lastBatch := streamIDs[streamN-batch:]
	var peak atomic.Int64
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	sampled := sampleCancelled(sampleCtx, c, &peak)
	t.Cleanup(func() { stopSampling(); <-sampled })
	t0 := time.Now()
	ids := make(chan string, 4*batch)
	var closeOnce sync.Once
	closeIDs := func() { closeOnce.Do(func() { close(ids) }) }
	defer closeIDs() // a failed add ends the cancelers too
	var wg sync.WaitGroup
	errs := make(chan error, cancelers)
	for range cancelers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if err := call(cl, rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: id, Reason: "stream"}, nil); err != nil {
					errs <- fmt.Errorf("cancel %s: %w", id, err)
					for range ids { // drain, so the producer never blocks
					}
					return
				}
			}
		}()
	}
	for s := 0; s < streamN; s += batch {
		addBatches(t, cl, streamIDs[s:s+batch])
		if s+batch < streamN {
			for _, id := range streamIDs[s : s+batch] {
				ids <- id
			}
		}
	}
	closeIDs()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	cancelEach(t, cl, lastBatch, cancelers)
	streamed := time.Since(t0)
	t.Logf("stream: %d tasks added and cancelled in %s (%.0f tasks/s)", streamN, streamed.Round(time.Millisecond),
		float64(streamN)/streamed.Seconds())
	waitCounts(t, c, map[string]int{"complete": limit, "failed": limit, "cancelled": limit})
	stopSampling()
	<-sampled
	t.Logf("stream: every server at %d per finished status %s after the last cancel; peak cancelled tasks seen during the stream: %d",
		limit, (time.Since(t0) - streamed).Round(time.Millisecond), peak.Load())
	// Retirement ran during the stream, not only at its end.
	if p := peak.Load(); p == 0 || p > streamN/2 {
		t.Fatalf("peak of cancelled tasks during the stream was %d: retirement did not keep up with the stream (limit %d, stream %d)", p, limit, streamN)
	}

	// 3. Every server holds exactly the newest tasks: the last batch
	// cancelled, and the same manifest as the leader's.
	wantCancelled := strings.Join(lastBatch, "\n")
	ref := manifest(t, l.addr, false)
	if n := strings.Count(ref, "\n"); n != 3*limit {
		t.Fatalf("the leader lists %d tasks, want %d", n, 3*limit)
	}
	for _, p := range c.procs {
		if got := listIDs(t, p.addr, "cancelled"); got != wantCancelled {
			t.Fatalf("%s keeps other cancelled tasks than the last %d cancelled (%d listed)", p.id, limit, strings.Count(got, "\n")+1)
		}
		for _, st := range []string{"complete", "failed"} {
			if n := strings.Count(listIDs(t, p.addr, st), "\n") + 1; n != limit {
				t.Fatalf("%s lists %d %s tasks, want %d", p.id, n, st, limit)
			}
		}
		if got := manifest(t, p.addr, true); got != ref {
			t.Fatalf("%s's manifest differs from the leader's", p.id)
		}
	}

	// 4. A retired id answers not_found with the hint while remembered;
	// the oldest retirements (the agent's, beyond fsm.RetiredMemory) are
	// forgotten and answer a plain not_found.
	_, errOut, code := rctl(t, "--addr", all, "task", "get", "st-000001")
	if code != 1 || !strings.Contains(errOut, "was retired at") || !strings.Contains(errOut, "cancelled") || !strings.Contains(errOut, "[not_found]") {
		t.Fatalf("task get of a retired task: exit %d, %q; want exit 1, not_found saying it was retired, cancelled", code, errOut)
	}
	kept := listIDs(t, l.addr, "complete") + "\n" + listIDs(t, l.addr, "failed")
	var forgotten string
	for _, id := range agentIDs {
		if !strings.Contains(kept, id) {
			forgotten = id
			break
		}
	}
	if _, errOut, code := rctl(t, "--addr", all, "task", "get", forgotten); code != 1 || !strings.Contains(errOut, "[not_found]") || strings.Contains(errOut, "retired") {
		t.Fatalf("task get of %s, retired before the last %d retirements: exit %d, %q; want a plain not_found", forgotten, fsm.RetiredMemory, code, errOut)
	}

	// 5. A retired id can be added again.
	if out := mustRctl(t, "--addr", all, "task", "add", "--type", "shell", "--id", "st-000000", "--payload", "cmd=true"); strings.TrimSpace(out) != "st-000000" {
		t.Fatalf("re-adding a retired id printed %q", out)
	}
	var again task
	mustJSON(t, mustRctl(t, "--addr", all, "-o", "json", "task", "get", "st-000000"), &again)
	if again.Status != "pending" || again.Type != "shell" {
		t.Fatalf("re-added task is %+v, want a pending shell task", again)
	}

	// 6. A follower restarted from its data dir comes back with the same
	// bounded manifest, and remembers the retired ids.
	var f *proc
	for _, p := range c.procs {
		if p != l {
			f = p
			break
		}
	}
	c.kill(f)
	c.start(f)
	ref = manifest(t, l.addr, false)
	eventually(t, 60*time.Second, func() error {
		if got := manifest(t, f.addr, true); got != ref {
			return fmt.Errorf("restarted %s lists %d tasks, the leader %d", f.id, strings.Count(got, "\n"), strings.Count(ref, "\n"))
		}
		return nil
	})
	if got := listIDs(t, f.addr, "cancelled"); got != wantCancelled {
		t.Fatalf("restarted %s keeps other cancelled tasks", f.id)
	}
	if _, errOut, code := rctl(t, "--addr", f.addr, "task", "get", "--stale", "st-050000"); code != 1 || !strings.Contains(errOut, "was retired at") {
		t.Fatalf("restarted %s, task get --stale of a retired task: exit %d, %q", f.id, code, errOut)
	}

	// 7. A snapshot holds the bounded manifest and the retired record:
	// the last fsm.RetiredMemory retirements (the 100,000 stream tasks)
	// less the one added again.
	snap := filepath.Join(t.TempDir(), "after.snap")
	mustRctl(t, "--addr", f.addr, "snapshot", "save", snap)
	var info fsm.SnapshotInfo
	mustJSON(t, mustRctl(t, "-o", "json", "snapshot", "inspect", snap), &info)
	if info.Tasks != 3*limit+1 || info.TasksByStatus[fsm.TaskCancelled] != limit || info.TasksByStatus[fsm.TaskComplete] != limit ||
		info.TasksByStatus[fsm.TaskFailed] != limit || info.TasksByStatus[fsm.TaskPending] != 1 || info.Retired != fsm.RetiredMemory-1 {
		t.Fatalf("snapshot holds %d tasks %v and %d retired records; want %d tasks (1,000 per finished status, 1 pending) and %d retired",
			info.Tasks, info.TasksByStatus, info.Retired, 3*limit+1, fsm.RetiredMemory-1)
	}
	if st, err := os.Stat(snap); err == nil {
		t.Logf("snapshot after retirement: %d tasks, %d retired records, %d KiB", info.Tasks, info.Retired, st.Size()>>10)
	}

	// 8. One event=task_retired line per retired task, in the log of the
	// leader that retired it (read once the processes are gone).
	term1 := statusOf(t, l.addr).Term
	for _, p := range c.procs {
		c.kill(p)
	}
	lines, sample := 0, ""
	for _, p := range c.procs {
		for _, line := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(line, "event=task_retired") {
				lines++
				if strings.Contains(line, "task=st-050000 ") {
					sample = line
				}
			}
		}
	}
	retired := agentN - 2*limit + streamN - limit
	switch {
	case term1 == term0 && lines != retired:
		t.Fatalf("%d event=task_retired lines, want %d (one per retired task)", lines, retired)
	case term1 != term0 && (lines > retired || lines < retired-fsm.MaxRetireBatch):
		t.Fatalf("%d event=task_retired lines across a leader change, want about %d", lines, retired)
	}
	for _, kv := range []string{"type=shell", "status=cancelled", "reason=retention", "finished_at="} {
		if !strings.Contains(sample, kv) {
			t.Fatalf("task_retired line of st-050000 lacks %s: %q", kv, sample)
		}
	}
	t.Logf("retention e2e: %d tasks retired, %d task_retired lines; whole test %s", retired, lines, time.Since(start).Round(time.Millisecond))
}

// TestRetentionWorksOffABacklog: retention switched on (by restarting the
// servers with the rule, as an operator rolls out a flag) over more
// finished tasks than one round retires (20 entries of 1,000) works off
// the rest after a short pause, not one --retire-interval per 20,000
// tasks: at the default 30 s that paced retirement at 667 tasks a second,
// below what a cluster can finish, so a steady stream faster than that
// grew the manifest without bound.
func TestRetentionWorksOffABacklog(t *testing.T) {
	const (
		limit    = 1000
		finished = 26_000 // 25,000 beyond the limit: a full round and a part
		interval = 8 * time.Second
	)
	useUninstrumentedServers(t)
	c := startClusterWith(t, 3, func(*proc) []string {
		return []string{"--insecure", "--retain-finished", "0", "--retain-finished-max", "0"} // retention off
	})
	l := c.leader(10*time.Second, c.addrs())
	cl := rpc.NewClient(append([]string{l.addr}, strings.Split(c.addrs(l), ",")...))
	t.Cleanup(func() { cl.Close() })
	ids := make([]string, finished)
	for i := range ids {
		ids[i] = fmt.Sprintf("b-%06d", i)
	}
	addBatches(t, cl, ids)
	cancelEach(t, cl, ids, 256)
	waitCounts(t, c, map[string]int{"cancelled": finished})

	for _, p := range c.procs {
		c.kill(p)
	}
	for _, p := range c.procs { // the last --retain-finished-max wins
		p.args = append(p.args, "--retain-finished-max", fmt.Sprint(limit), "--retire-interval", interval.String())
		c.start(p)
	}
	l = c.leader(20*time.Second, c.addrs())
	waitCounts(t, c, map[string]int{"cancelled": limit})

	// The leader's log has one tasks_retired line per round: 20,000, then
	// the other 5,000 after a pause well under the interval.
	for _, p := range c.procs {
		c.kill(p) // the log is read once the process is gone
	}
	var rounds []time.Time
	var counts []string
	for _, line := range strings.Split(l.log.String(), "\n") {
		if !strings.Contains(line, "event=tasks_retired") || !strings.Contains(line, "reason=retention") {
			continue
		}
		ts, ok := logField(line, "time")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			t.Fatalf("no time in %q", line)
		}
		n, _ := logField(line, "count")
		rounds, counts = append(rounds, at), append(counts, n)
	}
	if len(rounds) != 2 || counts[0] != "20000" || counts[1] != "5000" {
		t.Fatalf("retirement rounds in %s's log retired %v, want [20000 5000]", l.id, counts)
	}
	if gap := rounds[1].Sub(rounds[0]); gap >= interval/2 {
		t.Fatalf("the rest of the backlog was retired %s after the first full round; want a short pause, not about --retire-interval (%s)", gap, interval)
	} else {
		t.Logf("backlog of %d: rounds of %v, %s apart (--retire-interval %s)", finished-limit, counts, gap.Round(time.Millisecond), interval)
	}
}

// logField returns the value of key=value in a text log line.
func logField(line, key string) (string, bool) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// useUninstrumentedServers makes this test's servers (and CLI) a build
// without the race detector when rctlBin has it (TestMain's default
// build): the stream is ~105,000 raft entries, which race-instrumented
// servers on 2 cores commit at ~330 a second, minutes instead of about
// one. The retirement code runs under the race detector in the cluster
// package's in-process tests.
func useUninstrumentedServers(t *testing.T) {
	t.Helper()
	bi, err := buildinfo.ReadFile(rctlBin)
	if err != nil {
		t.Fatalf("read build info of %s: %v", rctlBin, err)
	}
	if !slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"}) {
		return
	}
	bin := filepath.Join(t.TempDir(), "rctl")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("build rctl without -race: %v\n%s", err, out)
	}
	saved := rctlBin
	rctlBin = bin
	t.Cleanup(func() { rctlBin = saved })
}

// cancelEach cancels ids with workers calls in flight.
func cancelEach(t *testing.T, cl *rpc.Client, ids []string, workers int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(ids); i = int(next.Add(1) - 1) {
				if err := call(cl, rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: ids[i], Reason: "stream"}, nil); err != nil {
					errs <- fmt.Errorf("cancel %s: %w", ids[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// call makes one RPC with a generous deadline.
func call(cl *rpc.Client, method string, args, reply any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cl.Call(ctx, method, args, reply)
}

// addBatches adds ids as shell tasks, fsm.MaxBatch per Task.AddBatch.
func addBatches(t *testing.T, cl *rpc.Client, ids []string) {
	t.Helper()
	for s := 0; s < len(ids); s += fsm.MaxBatch {
		var a rpc.TaskAddBatchArgs
		for _, id := range ids[s:min(s+fsm.MaxBatch, len(ids))] {
			a.Tasks = append(a.Tasks, rpc.TaskAddArgs{ID: id, Type: "shell", Payload: map[string]string{"cmd": "echo " + id}})
		}
		if err := call(cl, rpc.MethodTaskAddBatch, &a, nil); err != nil {
			t.Fatalf("add batch at %s: %v", ids[s], err)
		}
	}
}

// runAgent registers node and runs the tasks the leader gives it as an
// agent would (Task.Start, then Task.Complete or Task.Fail), until every
// task of ids has finished: an even index completes, an odd one fails.
// It deregisters the node when done.
func runAgent(t *testing.T, cl *rpc.Client, leader, node string, ids []string) {
	t.Helper()
	fails := make(map[string]bool, len(ids))
	for i, id := range ids {
		fails[id] = i%2 == 1
	}
	if err := call(cl, rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: node, Cloud: "local", Capacity: 1000}, nil); err != nil {
		t.Fatalf("register %s: %v", node, err)
	}
	pool := rpc.NewPool()
	defer pool.Close()
	done := make(map[string]bool, len(ids))
	deadline := time.Now().Add(60 * time.Second)
	for len(done) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("agent %s finished %d of %d tasks in 60 s", node, len(done), len(ids))
		}
		var hb rpc.HeartbeatReply
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pool.Call(ctx, leader, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: node}, &hb)
		cancel()
		var re *rpc.Error
		switch {
		case err == nil:
		case errors.As(err, &re) && re.Code == rpc.CodeNotLeader && re.LeaderAddr != "":
			leader = re.LeaderAddr
			continue
		default:
			t.Logf("heartbeat of %s: %v", node, err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var todo []string
		for _, tk := range hb.Tasks {
			if _, ours := fails[tk.ID]; ours && !done[tk.ID] {
				todo = append(todo, tk.ID)
			}
		}
		if len(todo) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(todo))
		sem := make(chan struct{}, 32)
		for _, id := range todo {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				r := rpc.TaskReportArgs{TaskID: id, NodeID: node}
				if err := call(cl, rpc.MethodTaskStart, &r, nil); err != nil {
					errs <- fmt.Errorf("start %s: %w", id, err)
					return
				}
				method := rpc.MethodTaskComplete
				r.Result = fsm.Result{ExitCode: 0, Output: "ok"}
				if fails[id] {
					method, r.Result = rpc.MethodTaskFail, fsm.Result{ExitCode: 1, Error: "simulated failure"}
				}
				if err := call(cl, method, &r, nil); err != nil {
					errs <- fmt.Errorf("%s %s: %w", method, id, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, id := range todo {
			done[id] = true
		}
	}
	if err := call(cl, rpc.MethodNodeDeregister, &rpc.NodeIDArgs{NodeID: node}, nil); err != nil {
		t.Fatalf("deregister %s: %v", node, err)
	}
}

// staleCounts returns a server's own count of tasks per status.
func staleCounts(addr string) (map[string]int, error) {
	cl := rpc.NewClient([]string{addr})
	defer cl.Close()
	var r rpc.TaskListReply
	err := call(cl, rpc.MethodTaskList, &rpc.TaskListArgs{Limit: 1, QueryOptions: rpc.QueryOptions{Stale: true}}, &r)
	return r.Counts, err
}

// waitCounts waits until every server's own counts of the statuses in
// want are those (other statuses are not checked).
func waitCounts(t *testing.T, c *cluster, want map[string]int) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		for _, p := range c.procs {
			got, err := staleCounts(p.addr)
			if err != nil {
				return fmt.Errorf("%s: %w", p.id, err)
			}
			for st, n := range want {
				if got[st] != n {
					return fmt.Errorf("%s holds %d %s tasks, want %d (counts %v)", p.id, got[st], st, n, got)
				}
			}
		}
		return nil
	})
}

// sampleCancelled records the most cancelled tasks any server held, every
// 100 ms, until ctx ends; the channel closes when it has stopped.
func sampleCancelled(ctx context.Context, c *cluster, peak *atomic.Int64) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for _, p := range c.procs {
				if got, err := staleCounts(p.addr); err == nil && int64(got["cancelled"]) > peak.Load() {
					peak.Store(int64(got["cancelled"]))
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return done
}

// listIDs pages through a server's own tasks of one status with the CLI
// (`rctl task list --status S --stale`) and returns their ids, one a line.
func listIDs(t *testing.T, addr, status string) string {
	t.Helper()
	var ts []task
	mustJSON(t, mustRctl(t, "--addr", addr, "-o", "json", "task", "list", "--status", status, "--stale"), &ts)
	ids := make([]string, len(ts))
	for i, x := range ts {
		ids[i] = x.ID
	}
	slices.Sort(ids)
	return strings.Join(ids, "\n")
}

// statusOf returns a server's status.
func statusOf(t *testing.T, addr string) status {
	t.Helper()
	var st status
	mustJSON(t, mustRctl(t, "--addr", addr, "-o", "json", "status"), &st)
	return st
}
