package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// fill adds tasks [from, to) in batches of fsm.MaxBatch through cl, with
// 4 batches in flight.
func fill(b *testing.B, cl *rpc.Client, from, to int) {
	sem := make(chan struct{}, 4)
	errs := make(chan error, 1)
	for start := from; start < to; start += fsm.MaxBatch {
		end := min(start+fsm.MaxBatch, to)
		args := rpc.TaskAddBatchArgs{Tasks: make([]rpc.TaskAddArgs, 0, end-start)}
		for i := start; i < end; i++ {
			args.Tasks = append(args.Tasks, rpc.TaskAddArgs{ID: "m" + strconv.Itoa(i), Type: "shell",
				Payload: map[string]string{"cmd": "echo " + strconv.Itoa(i), "timeout": "60"}})
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := cl.Call(ctx, rpc.MethodTaskAddBatch, &args, nil); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
		select {
		case err := <-errs:
			b.Fatalf("fill: %v", err)
		default:
		}
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
}

func rssOf(s *server) float64 {
	_, rss := procStat(s.cmd.Process.Pid)
	return rss
}

// BenchmarkManifestScale: server RSS at 100k and 1M tasks (2-key payload),
// snapshot save and restore of 1M tasks, and how long a wiped follower
// takes to catch up from a raft snapshot. Size from RCTL_BENCH_TASKS.
// RCTL_BENCH_LOGDIR=dir keeps the servers' logs (level info, raft's
// included) in dir/<id>.log, for the per-phase timing of the restore.
func BenchmarkManifestScale(b *testing.B) {
	total := 1_000_000
	if env := os.Getenv("RCTL_BENCH_TASKS"); env != "" {
		n, err := strconv.Atoi(env)
		if err != nil {
			b.Fatal(err)
		}
		total = n
	}
	c := startCluster(b, 3, "lan")
	logDir := os.Getenv("RCTL_BENCH_LOGDIR")
	for _, s := range c.servers { // snapshot often, so a wiped follower needs InstallSnapshot
		s.args = append(s.args, "--snapshot-threshold", "200", "--trailing-logs", "50")
		c.kill(s)
		if logDir != "" {
			startLogged(b, c, s, logDir)
		} else {
			c.start(s)
		}
	}
	_, l, lc := c.leaderClients()

	t0 := time.Now()
	step := min(100_000, total)
	fill(b, lc, 0, step)
	fmt.Printf("manifest: %d tasks added in %s; leader RSS %.0f MiB\n", step, time.Since(t0).Round(time.Millisecond), rssOf(l))
	if total > step {
		fill(b, lc, step, total)
		fmt.Printf("manifest: %d tasks added in %s; leader RSS %.0f MiB\n", total, time.Since(t0).Round(time.Millisecond), rssOf(l))
	}
	for _, s := range c.servers {
		fmt.Printf("manifest: %s RSS %.0f MiB at %d tasks\n", s.id, rssOf(s), total)
	}

	// Snapshot save and restore through the CLI's code path.
	var buf bytes.Buffer
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if _, err := rpc.SnapshotSave(ctx, rpc.Credentials{}, []string{l.addr}, false, &buf); err != nil {
		b.Fatal(err)
	}
	cancel()
	save := time.Since(t1)
	t2 := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	_, err := rpc.SnapshotRestore(ctx, rpc.Credentials{}, []string{l.addr}, int64(buf.Len()), func() (io.Reader, error) { return bytes.NewReader(buf.Bytes()), nil })
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	restore := time.Since(t2)

	fmt.Printf("manifest: snapshot of %d tasks: %d MiB, save %s, restore (verify + raft restore on the leader) %s\n",
		total, buf.Len()>>20, save.Round(time.Millisecond), restore.Round(time.Millisecond))

	// The same restore through the CLI (its local check of the file
	// included), as an operator runs it.
	file := filepath.Join(b.TempDir(), "manifest.snap")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	t4 := time.Now()
	if out, err := exec.Command(rctlBin, "--addr", l.addr, "snapshot", "restore", file).CombinedOutput(); err != nil {
		b.Fatalf("rctl snapshot restore: %v\n%s", err, out)
	}
	fmt.Printf("manifest: rctl snapshot restore of %d tasks (check the file, upload, verify, raft restore, quorum installed): %s\n",
		total, time.Since(t4).Round(time.Millisecond))

	// A follower loses its disk and rejoins with the same id.
	f := c.other(l)
	c.kill(f)
	if err := os.RemoveAll(f.dir); err != nil {
		b.Fatal(err)
	}
	t3 := time.Now()
	c.start(f)
	var leaderLast uint64
	{
		var st rpc.StatusReply
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = lc.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st)
		cancel()
		leaderLast = st.AppliedIndex
	}
	fc := rpc.NewClient([]string{f.addr})
	defer fc.Close()
	for {
		var st rpc.StatusReply
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := fc.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st)
		cancel()
		if err == nil && st.AppliedIndex >= leaderLast {
			break
		}
		if time.Since(t3) > 5*time.Minute {
			b.Fatal("wiped follower did not catch up in 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("manifest: wiped follower %s caught up (%d tasks, via raft snapshot) in %s; its RSS %.0f MiB\n",
		f.id, total, time.Since(t3).Round(time.Millisecond), rssOf(f))
}

// startLogged starts s like c.start, but at log level info with its log
// in dir/<id>.log (diagnostics: RCTL_BENCH_LOGDIR).
func startLogged(b *testing.B, c *cluster, s *server, dir string) {
	args := append([]string(nil), s.args...)
	for i := range args {
		if args[i] == "--log-level" && i+1 < len(args) {
			args[i+1] = "info"
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, s.id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	s.cmd = exec.Command(rctlBin, args...)
	s.cmd.Stderr = f
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); f.Close(); close(s.done) }()
}
