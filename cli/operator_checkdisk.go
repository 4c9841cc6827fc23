package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/termsafe"
)

// checkDiskOptions are the flags of `rctl operator check-disk`.
type checkDiskOptions struct {
	dataDir       string
	syncCount     int
	syncSize      int
	throughputMiB int
	maxP99        time.Duration
}

// Bounds of check-disk's flags.
const (
	minSyncCount     = 10 // fewer gives no p99 worth the name
	maxSyncCount     = 100000
	minSyncSize      = 512
	maxSyncSize      = 1 << 20
	maxThroughputMiB = 4096
	maxSyncBytes     = 1 << 30 // --sync-count × --sync-size
	throughputBlock  = 1 << 20 // the throughput test writes 1 MiB at a time
	// etcdP99Rule is etcd's rule of thumb for a disk that holds a Raft
	// log: the 99th diskPercentile of its WAL's fdatasync under 10 ms
	// (etcd.io/docs, "Hardware recommendations" and "FAQ: what does the
	// etcd warning 'apply entries took too long' mean").
	etcdP99Rule = 10 * time.Millisecond
)

// diskSyncReport is the small-append test: every sample is one write(2)
// of size_bytes at the end of the file followed by fdatasync(2) (fsync
// outside Linux), what one batch of Raft log entries costs bbolt.
type diskSyncReport struct {
	Method    string  `json:"method"`
	Count     int     `json:"count"`
	SizeBytes int     `json:"size_bytes"`
	MinMS     float64 `json:"min_ms"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	MeanMS    float64 `json:"mean_ms"`
}

// diskThroughputReport is the sequential test: bytes written in
// block_bytes writes without syncing, then one fsync; seconds covers all
// of it, sync_ms the final fsync alone.
type diskThroughputReport struct {
	Bytes      int64   `json:"bytes"`
	BlockBytes int     `json:"block_bytes"`
	Seconds    float64 `json:"seconds"`
	SyncMS     float64 `json:"sync_ms"`
	MiBPerSec  float64 `json:"mib_per_sec"`
}

// diskReport is what `rctl operator check-disk` prints (-o json: this
// object).
type diskReport struct {
	DataDir string `json:"data_dir"`
	// Verdict is "ok" when the fdatasync p99 is under MaxP99MS, else "slow".
	Verdict    string               `json:"verdict"`
	Detail     string               `json:"detail"`
	MaxP99MS   float64              `json:"max_p99_ms"`
	Sync       diskSyncReport       `json:"fdatasync"`
	Throughput diskThroughputReport `json:"throughput"`
	// StoppedEarly: --timeout ran out before every write was made; the
	// figures cover the writes that were.
	StoppedEarly bool `json:"stopped_early"`
}

func newOperatorCheckDiskCommand(g *globals) *cobra.Command {
	o := checkDiskOptions{}
	cmd := &cobra.Command{
		Use:   "check-disk --data-dir DIR",
		Short: "Measure whether a directory's disk is fast enough for a Raft log (local; no cluster needed)",
		Long: `Measure the disk under DIR the way a Raft log uses it, before trusting a
server to it: run it on each server host against the directory its rctl
serve --data-dir is (or will be) in. It is a local check: it talks to no
server and needs no token or certificate, and --addr and the TLS flags are
ignored. Who may run it: anyone who may create a file in DIR (on a packaged
host: sudo -u rctl rctl operator check-disk --data-dir /var/lib/rctl).

It writes one temporary file in DIR (.rctl-check-disk-*) and removes it when
done, also when interrupted with Ctrl-C or when a write fails. DIR must exist
and be writable; otherwise it stops with one error and creates nothing. It
never takes more than half of the free space (it refuses to start instead),
and the appends together are at most 1 GiB.

Two measurements:
  fdatasync   --sync-count appends of --sync-size bytes at the end of the
              file, each followed by fdatasync(2) (fsync(2) outside Linux),
              as raft-boltdb's bbolt syncs every batch of log entries; each
              sample times the write and its sync. Reports min, p50, p99,
              max and mean in milliseconds. Like dd oflag=dsync, every
              append grows the file, the conservative case.
  throughput  --throughput-mib MiB written in 1 MiB blocks without syncing,
              then one fsync; MiB/s over the whole, fsync included (what
              a snapshot or a follower catching up needs).

Verdict: "ok" when the fdatasync p99 is under --max-p99 (default 10ms,
etcd's rule of thumb for a Raft log disk: slower syncs slow every commit and,
on a leader, can delay heartbeats into elections), else "slow". The
throughput is reported, not judged.

Without -o json it prints a table and the verdict. -o json prints one object:
{data_dir, verdict, detail, max_p99_ms, fdatasync: {method, count,
size_bytes, min_ms, p50_ms, p99_ms, max_ms, mean_ms}, throughput: {bytes,
block_bytes, seconds, sync_ms, mib_per_sec}, stopped_early}.

--timeout (default 15s) bounds the whole measurement: when it runs out the
check stops writing and judges the writes it made (stopped_early: true).

Exit status: 0 ok; 3 slow (the check ran and the disk is too slow, as
rctl operator health's 3 for an unhealthy cluster); 2 a usage mistake,
DIR missing or not a directory; 1 DIR not writable, too little free space,
or a write failed.`,
		Example: `  rctl operator check-disk --data-dir /var/lib/rctl
  sudo -u rctl rctl operator check-disk --data-dir /var/lib/rctl -o json
  rctl operator check-disk --data-dir /mnt/raft --sync-count 2000 --throughput-mib 256`,
		Args: exactArgs(0, "no arguments (the directory goes in --data-dir)"),
		RunE: func(*cobra.Command, []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return runCheckDisk(g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "directory to measure, on the disk that holds (or will hold) rctl serve's --data-dir; it must exist and be writable (required; env RCTL_DATA_DIR, as for rctl serve)")
	f.IntVar(&o.syncCount, "sync-count", 500, fmt.Sprintf("how many small appends to time, each followed by fdatasync (%d-%d; with --sync-size at most 1 GiB in all); more gives a steadier p99 and takes longer", minSyncCount, maxSyncCount))
	f.IntVar(&o.syncSize, "sync-size", 4096, fmt.Sprintf("bytes per timed append (%d-%d); 4096 is one bbolt page, about one small batch of Raft entries", minSyncSize, maxSyncSize))
	f.IntVar(&o.throughputMiB, "throughput-mib", 64, fmt.Sprintf("MiB written sequentially for the throughput figure, in 1 MiB writes with one fsync at the end (1-%d)", maxThroughputMiB))
	f.DurationVar(&o.maxP99, "max-p99", etcdP99Rule, "the verdict is ok only when the fdatasync p99 is under this; 10ms is etcd's rule of thumb for a Raft log disk")
	return cmd
}

// validate checks the flags before anything touches the disk.
func (o *checkDiskOptions) validate() error {
	switch {
	case o.dataDir == "":
		return usagef("--data-dir is required: the directory whose disk to measure")
	case o.syncCount < minSyncCount || o.syncCount > maxSyncCount:
		return usagef("--sync-count must be %d-%d, got %d", minSyncCount, maxSyncCount, o.syncCount)
	case o.syncSize < minSyncSize || o.syncSize > maxSyncSize:
		return usagef("--sync-size must be %d-%d bytes, got %d", minSyncSize, maxSyncSize, o.syncSize)
	case o.throughputMiB < 1 || o.throughputMiB > maxThroughputMiB:
		return usagef("--throughput-mib must be 1-%d, got %d", maxThroughputMiB, o.throughputMiB)
	case o.maxP99 <= 0:
		return usagef("--max-p99 must be positive, got %s", o.maxP99)
	case int64(o.syncCount)*int64(o.syncSize) > maxSyncBytes:
		return usagef("--sync-count × --sync-size is %s; at most %s (fewer or smaller appends)", diskFmtBytes(int64(o.syncCount)*int64(o.syncSize)), diskFmtBytes(maxSyncBytes))
	}
	st, err := os.Stat(o.dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("--data-dir %s does not exist; create it first (check-disk creates nothing but its temporary file)", o.dataDir)
	case err != nil:
		return fmt.Errorf("--data-dir %s: %w", o.dataDir, err)
	case !st.IsDir():
		return usagef("--data-dir %s is not a directory", o.dataDir)
	}
	return nil
}

// checkFreeSpace refuses a check that would take more than half of the
// free space in dir: it must never fill a server's data disk. The two
// test files exist one after the other.
func (o *checkDiskOptions) checkFreeSpace(dir string) error {
	need := max(int64(o.syncCount)*int64(o.syncSize), int64(o.throughputMiB)*throughputBlock)
	if free, ok := freeBytes(dir); ok && uint64(need) > free/2 {
		return fmt.Errorf("--data-dir %s has %s free; check-disk would write %s and takes at most half of what is free: lower --throughput-mib or --sync-count", dir, diskFmtBytes(int64(free)), diskFmtBytes(need))
	}
	return nil
}

// runCheckDisk measures, prints the report and returns exit 3 when slow.
func runCheckDisk(g *globals, o checkDiskOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	r, err := measureDisk(ctx, o)
	if err != nil {
		return err
	}
	if err := printDiskReport(g, r); err != nil {
		return err
	}
	if r.Verdict != "ok" {
		return exitError{ExitUnhealthy, fmt.Errorf("disk too slow for a Raft log: %s; every commit waits for such a sync, so put --data-dir on a faster disk (local SSD or NVMe, no burst credits, no network filesystem)", r.Detail)}
	}
	return nil
}

// errDiskInterrupted ends a measurement cut short by a signal.
var errDiskInterrupted = errors.New("check-disk interrupted; its temporary file was removed")

// measureDisk runs both tests in temporary files inside o.dataDir and
// removes them. When ctx's deadline passes it stops and judges what it
// measured (StoppedEarly); when ctx is cancelled otherwise (a signal) it
// fails with errDiskInterrupted.
func measureDisk(ctx context.Context, o checkDiskOptions) (*diskReport, error) {
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", o.dataDir, err)
	}
	r := &diskReport{DataDir: dir, MaxP99MS: diskMS(o.maxP99)}

	// The first file proves DIR writable before anything else is said.
	f, remove, err := diskTempFile(dir)
	if err != nil {
		return nil, err
	}
	if err := o.checkFreeSpace(dir); err != nil {
		remove()
		return nil, err
	}
	samples, stopped, err := timeSyncs(ctx, f, o.syncCount, o.syncSize)
	remove()
	if err != nil {
		return nil, err
	}
	r.StoppedEarly = stopped
	r.Sync = summarizeSyncs(samples, o.syncSize)

	tp, stopped, err := timeThroughput(ctx, dir, int64(o.throughputMiB)*throughputBlock)
	if err != nil {
		return nil, err
	}
	r.StoppedEarly = r.StoppedEarly || stopped
	r.Throughput = tp

	p99 := time.Duration(r.Sync.P99MS * float64(time.Millisecond))
	if p99 < o.maxP99 {
		r.Verdict = "ok"
		r.Detail = fmt.Sprintf("%s p99 %s is under %s", syncMethod, diskFmtMS(r.Sync.P99MS), o.maxP99)
	} else {
		r.Verdict = "slow"
		r.Detail = fmt.Sprintf("%s p99 %s is not under %s", syncMethod, diskFmtMS(r.Sync.P99MS), o.maxP99)
	}
	if r.StoppedEarly {
		r.Detail += fmt.Sprintf(" (stopped early by --timeout after %d of %d appends and %d of %d MiB)",
			r.Sync.Count, o.syncCount, r.Throughput.Bytes/throughputBlock, o.throughputMiB)
	}
	return r, nil
}

// diskTempFile creates check-disk's file in dir; remove closes and deletes it.
func diskTempFile(dir string) (f *os.File, remove func(), err error) {
	f, err = os.CreateTemp(dir, ".rctl-check-disk-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, fmt.Errorf("cannot create a file in --data-dir %s: %w; run check-disk as a user who may write there (e.g. the rctl user)", dir, err)
	}
	return f, func() { f.Close(); os.Remove(f.Name()) }, nil
}

// diskCtxStop reports whether a measurement loop should stop: (false, nil) go
// on; (true, nil) the deadline passed; (true, errDiskInterrupted) a signal.
func diskCtxStop(ctx context.Context) (bool, error) {
	switch err := ctx.Err(); {
	case err == nil:
		return false, nil
	case errors.Is(err, context.DeadlineExceeded):
		return true, nil
	default:
		return true, errDiskInterrupted
	}
}

// timeSyncs times count appends of size bytes to f, each followed by
// datasync. At least one append is always timed.
func timeSyncs(ctx context.Context, f *os.File, count, size int) (samples []time.Duration, stopped bool, err error) {
	buf := make([]byte, size)
	rand.Read(buf) // not zeros: compressing or deduplicating filesystems would skip them
	samples = make([]time.Duration, 0, count)
	for i := 0; i < count; i++ {
		if i > 0 {
			if stop, err := diskCtxStop(ctx); stop {
				return samples, err == nil, err
			}
		}
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, false, fmt.Errorf("write to %s: %w", f.Name(), err)
		}
		if err := datasync(f); err != nil {
			return nil, false, err
		}
		samples = append(samples, time.Since(start))
	}
	return samples, false, nil
}

// timeThroughput writes total bytes in throughputBlock writes and fsyncs
// once. At least one block is always written.
func timeThroughput(ctx context.Context, dir string, total int64) (r diskThroughputReport, stopped bool, err error) {
	f, remove, err := diskTempFile(dir)
	if err != nil {
		return r, false, err
	}
	defer remove()
	buf := make([]byte, throughputBlock)
	rand.Read(buf)
	r.BlockBytes = throughputBlock
	start := time.Now()
	for r.Bytes < total {
		if r.Bytes > 0 {
			if stop, err := diskCtxStop(ctx); stop {
				if err != nil {
					return r, false, err
				}
				stopped = true
				break
			}
		}
		n, err := f.Write(buf)
		r.Bytes += int64(n)
		if err != nil {
			return r, false, fmt.Errorf("write to %s: %w", f.Name(), err)
		}
	}
	syncStart := time.Now()
	if err := f.Sync(); err != nil {
		return r, false, fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	end := time.Now()
	took := end.Sub(start)
	r.Seconds = diskRound3(took.Seconds())
	r.SyncMS = diskMS(end.Sub(syncStart))
	r.MiBPerSec = diskRound3(float64(r.Bytes) / (1 << 20) / took.Seconds())
	return r, stopped, nil
}

// summarizeSyncs computes the report's figures from the samples.
func summarizeSyncs(samples []time.Duration, size int) diskSyncReport {
	s := slices.Clone(samples)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	r := diskSyncReport{Method: syncMethod, Count: len(s), SizeBytes: size}
	if len(s) == 0 {
		return r
	}
	r.MinMS, r.MaxMS = diskMS(s[0]), diskMS(s[len(s)-1])
	r.P50MS, r.P99MS = diskMS(diskPercentile(s, 0.50)), diskMS(diskPercentile(s, 0.99))
	r.MeanMS = diskMS(sum / time.Duration(len(s)))
	return r
}

// diskPercentile is the nearest-rank diskPercentile of sorted (not empty): the
// smallest sample with at least p of the samples at or below it.
func diskPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// diskMS is d in milliseconds, rounded to the microsecond.
func diskMS(d time.Duration) float64 { return diskRound3(float64(d) / float64(time.Millisecond)) }

func diskRound3(x float64) float64 { return math.Round(x*1000) / 1000 }

// diskFmtMS renders milliseconds with microsecond precision, e.g. "0.412ms".
func diskFmtMS(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) + "ms" }

// diskFmtBytes renders a size such as 4096 as "4 KiB" and 1048576 as
// "1 MiB"; other sizes from 1 MiB up as "12.3 MiB", smaller ones in bytes.
func diskFmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// printDiskReport prints r as a table (or JSON with -o json).
func printDiskReport(g *globals, r *diskReport) error {
	if g.json() {
		return g.printJSON(r)
	}
	w := g.stdout
	fmt.Fprintf(w, "data dir: %s\n", termsafe.Field(r.DataDir))
	t := newTable(w, "TEST", "WRITES", "SIZE", "P50", "P99", "MAX", "THROUGHPUT")
	t.row(r.Sync.Method, strconv.Itoa(r.Sync.Count), diskFmtBytes(int64(r.Sync.SizeBytes)),
		diskFmtMS(r.Sync.P50MS), diskFmtMS(r.Sync.P99MS), diskFmtMS(r.Sync.MaxMS), "-")
	t.row("sequential", strconv.FormatInt(r.Throughput.Bytes/int64(max(r.Throughput.BlockBytes, 1)), 10),
		diskFmtBytes(int64(r.Throughput.BlockBytes)), "-", "-", "-",
		fmt.Sprintf("%.1f MiB/s (final fsync %s)", r.Throughput.MiBPerSec, diskFmtMS(r.Throughput.SyncMS)))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "verdict: %s: %s\n", r.Verdict, r.Detail)
	return nil
}
