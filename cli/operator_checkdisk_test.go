package cli

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// dirEntries lists dir's names (nil when dir does not exist).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestCheckDiskRefusesBadFlagsAndDirs: every mistake is one line on
// stderr with the right exit code, and nothing is created anywhere.
func TestCheckDiskRefusesBadFlagsAndDirs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	// A directory no one may create files in. Root ignores permission
	// bits, so as root use /sys (sysfs refuses new files even to root).
	unwritable := filepath.Join(dir, "read-only")
	if os.Geteuid() == 0 {
		unwritable = "/sys"
	} else if err := os.Mkdir(unwritable, 0o555); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(unwritable); err != nil || !st.IsDir() {
		t.Skipf("no unwritable directory to test with: %v", err)
	}
	before := dirEntries(t, dir)
	beforeUnwritable := dirEntries(t, unwritable)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no data dir", nil, ExitUsage, "--data-dir is required"},
		{"missing dir", []string{"--data-dir", missing}, ExitUsage, "does not exist"},
		{"a file, not a dir", []string{"--data-dir", file}, ExitUsage, "is not a directory"},
		{"unwritable dir", []string{"--data-dir", unwritable}, ExitError, "cannot create a file in --data-dir"},
		{"too few syncs", []string{"--data-dir", dir, "--sync-count", "9"}, ExitUsage, "--sync-count must be 10-100000"},
		{"too many syncs", []string{"--data-dir", dir, "--sync-count", "100001"}, ExitUsage, "--sync-count"},
		{"tiny writes", []string{"--data-dir", dir, "--sync-size", "100"}, ExitUsage, "--sync-size must be 512-1048576 bytes"},
		{"huge writes", []string{"--data-dir", dir, "--sync-size", "2000000"}, ExitUsage, "--sync-size"},
		{"no throughput", []string{"--data-dir", dir, "--throughput-mib", "0"}, ExitUsage, "--throughput-mib must be 1-4096"},
		{"too much to write", []string{"--data-dir", dir, "--sync-count", "100000", "--sync-size", "1048576"}, ExitUsage, "at most 1 GiB"},
		{"zero bound", []string{"--data-dir", dir, "--max-p99", "0s"}, ExitUsage, "--max-p99 must be positive"},
		{"not a number", []string{"--data-dir", dir, "--sync-count", "many"}, ExitUsage, "invalid argument"},
		{"an argument", []string{"--data-dir", dir, dir}, ExitUsage, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, nil, append([]string{"operator", "check-disk"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
			if n := strings.Count(errOut, "\n"); n != 1 || out != "" {
				t.Fatalf("want one line on stderr and nothing on stdout, got stderr %q stdout %q", errOut, out)
			}
		})
	}
	if got := dirEntries(t, dir); !slices.Equal(got, before) {
		t.Errorf("%s holds %v after refusals, want %v", dir, got, before)
	}
	if got := dirEntries(t, unwritable); !slices.Equal(got, beforeUnwritable) {
		t.Errorf("%s changed after a refusal: %v", unwritable, got)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s was created: %v", missing, err)
	}
}

// checkDiskJSON runs check-disk -o json on dir and decodes its report.
func checkDiskJSON(t *testing.T, dir string, extra ...string) (diskReport, map[string]any, int, string) {
	t.Helper()
	args := append([]string{"operator", "check-disk", "--data-dir", dir, "-o", "json"}, extra...)
	out, errOut, code := run(t, nil, args...)
	var r diskReport
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d: stdout is not the JSON report: %v\n%s\nstderr: %s", code, err, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	return r, raw, code, errOut
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestCheckDiskJSONShapeAndFigures: the documented snake_case fields, all
// present; plausible figures; the temporary files gone; the exit code
// follows the verdict (0 ok, 3 slow).
func TestCheckDiskJSONShapeAndFigures(t *testing.T) {
	dir := t.TempDir()
	// A bound no disk misses and one every disk misses: both verdicts
	// and exit codes, whatever this machine's disk is like.
	r, raw, code, errOut := checkDiskJSON(t, dir, "--sync-count", "50", "--throughput-mib", "4", "--max-p99", "1h")
	if code != ExitOK || r.Verdict != "ok" || errOut != "" {
		t.Fatalf("--max-p99 1h: exit %d verdict %q stderr %q; want 0, ok, nothing", code, r.Verdict, errOut)
	}
	for key, want := range map[string][]string{
		"":           {"data_dir", "detail", "fdatasync", "max_p99_ms", "stopped_early", "throughput", "verdict"},
		"fdatasync":  {"count", "max_ms", "mean_ms", "method", "min_ms", "p50_ms", "p99_ms", "size_bytes"},
		"throughput": {"block_bytes", "bytes", "mib_per_sec", "seconds", "sync_ms"},
	} {
		m := raw
		if key != "" {
			m, _ = raw[key].(map[string]any)
		}
		if got := sortedKeys(m); !slices.Equal(got, want) {
			t.Errorf("JSON %q keys = %v, want %v", key, got, want)
		}
	}
	abs, _ := filepath.Abs(dir)
	s, tp := r.Sync, r.Throughput
	switch {
	case r.DataDir != abs:
		t.Errorf("data_dir = %q, want %q", r.DataDir, abs)
	case s.Method != syncMethod || s.Count != 50 || s.SizeBytes != 4096:
		t.Errorf("fdatasync = %+v, want %s, 50 writes of 4096 bytes", s, syncMethod)
	case !(0 < s.MinMS && s.MinMS <= s.P50MS && s.P50MS <= s.P99MS && s.P99MS <= s.MaxMS && s.MinMS <= s.MeanMS && s.MeanMS <= s.MaxMS):
		t.Errorf("fdatasync figures out of order: %+v", s)
	case s.MaxMS > 10_000:
		t.Errorf("an fdatasync of 4 KiB took %vms", s.MaxMS)
	case tp.Bytes != 4<<20 || tp.BlockBytes != 1<<20:
		t.Errorf("throughput wrote %d bytes in %d-byte blocks, want 4 MiB in 1 MiB", tp.Bytes, tp.BlockBytes)
	case !(tp.Seconds > 0 && tp.SyncMS >= 0 && tp.SyncMS <= tp.Seconds*1000+1):
		t.Errorf("throughput timings implausible: %+v", tp)
	case tp.MiBPerSec < 0.5 || tp.MiBPerSec > 1e6:
		t.Errorf("throughput %v MiB/s is implausible for any disk", tp.MiBPerSec)
	case r.MaxP99MS != 3.6e6 || r.StoppedEarly:
		t.Errorf("max_p99_ms %v stopped_early %v, want 3600000 and false", r.MaxP99MS, r.StoppedEarly)
	}
	// MiB/s agrees with bytes and seconds (both rounded to 3 decimals).
	if want := float64(tp.Bytes) / (1 << 20) / tp.Seconds; tp.MiBPerSec < want*0.9 || tp.MiBPerSec > want*1.1 {
		t.Errorf("mib_per_sec %v, but %d bytes in %vs is %v", tp.MiBPerSec, tp.Bytes, tp.Seconds, want)
	}

	r, _, code, errOut = checkDiskJSON(t, dir, "--sync-count", "10", "--throughput-mib", "1", "--max-p99", "1ns")
	if code != ExitUnhealthy || r.Verdict != "slow" || !strings.Contains(errOut, "disk too slow for a Raft log") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("--max-p99 1ns: exit %d verdict %q stderr %q; want 3, slow, one line", code, r.Verdict, errOut)
	}
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Errorf("temporary files left in %s: %v", dir, got)
	}
}

// TestCheckDiskTable: the table and the verdict line.
func TestCheckDiskTable(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := run(t, nil, "operator", "check-disk", "--data-dir", dir, "--sync-count", "10", "--throughput-mib", "1", "--max-p99", "1h")
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	for _, want := range []string{"data dir: ", "TEST", "P99", syncMethod + " ", "4 KiB", "sequential", "MiB/s", "verdict: ok: " + syncMethod + " p99 "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckDiskStopsAtTimeout: --timeout bounds the check; what was
// measured is judged and says so.
func TestCheckDiskStopsAtTimeout(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	r, _, code, _ := checkDiskJSON(t, dir, "--timeout", "1ns", "--sync-count", "100000", "--throughput-mib", "4096", "--max-p99", "1h")
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %s with --timeout 1ns", took)
	}
	if code != ExitOK || !r.StoppedEarly || r.Sync.Count < 1 || r.Sync.Count >= 100000 || !strings.Contains(r.Detail, "stopped early by --timeout") {
		t.Fatalf("exit %d, report %+v; want a judged partial run", code, r)
	}
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Errorf("temporary files left in %s: %v", dir, got)
	}
}

// TestCheckDiskHelpExplainsEveryFlag: --help names each flag with a
// sentence, and says it is local and who may run it.
func TestCheckDiskHelpExplainsEveryFlag(t *testing.T) {
	out, _, code := run(t, nil, "operator", "check-disk", "--help")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--data-dir", "--sync-count", "--sync-size", "--throughput-mib", "--max-p99",
		"local check", "Who may run it", "Exit status", "10ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// syncLoopP50 is the test's own measurement, apart from check-disk's
// code: n appends of size bytes to a fresh file in dir, each followed by
// os.File.Sync (fsync), timed one by one; it returns the median.
func syncLoopP50(t *testing.T, dir string, n, size int) time.Duration {
	t.Helper()
	f, err := os.CreateTemp(dir, "independent-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	rand.Read(buf)
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds[n/2]
}

// TestCheckDiskAgreesWithPlainSyncLoop: check-disk's p50 is within a
// generous factor of a plain write+Sync loop on the same directory, run
// before and after it. The machine is shared, so the bound only catches
// a measurement that is off by an order of magnitude.
func TestCheckDiskAgreesWithPlainSyncLoop(t *testing.T) {
	dir := t.TempDir()
	const n, factor = 200, 4.0
	a := syncLoopP50(t, dir, n, 4096)
	r, _, _, _ := checkDiskJSON(t, dir, "--sync-count", "200", "--throughput-mib", "1", "--timeout", "2m")
	b := syncLoopP50(t, dir, n, 4096)
	ours := time.Duration(r.Sync.P50MS * float64(time.Millisecond))
	lo, hi := min(a, b), max(a, b)
	t.Logf("p50 of 4 KiB append+sync: check-disk %s (%s); plain os.File.Sync loop %s before, %s after", ours, r.Sync.Method, a, b)
	// Below 50µs both are cache-speed figures (tmpfs, a disk that lies
	// about syncs): noise dominates any ratio.
	const floor = 50 * time.Microsecond
	if ours < floor && lo < floor {
		return
	}
	if float64(ours) < float64(lo)/factor || float64(ours) > float64(hi)*factor {
		t.Errorf("check-disk p50 %s is more than %.0fx away from the plain loop's %s..%s", ours, factor, lo, hi)
	}
}

// TestCheckDiskKeepsHalfTheFreeSpace: a check that would write more than
// half of the free space is refused before it writes.
func TestCheckDiskKeepsHalfTheFreeSpace(t *testing.T) {
	dir := t.TempDir()
	free, ok := freeBytes(dir)
	if !ok {
		t.Skip("free space is not known on this system")
	}
	o := checkDiskOptions{syncCount: 10, syncSize: 512, throughputMiB: int(free/(1<<20)*5/8) + 1}
	if err := o.checkFreeSpace(dir); err == nil || !strings.Contains(err.Error(), "at most half of what is free") {
		t.Errorf("%d MiB with %d MiB free: %v; want a refusal", o.throughputMiB, free>>20, err)
	}
	o.throughputMiB = 1
	if err := o.checkFreeSpace(dir); err != nil {
		t.Errorf("1 MiB with %d MiB free: %v", free>>20, err)
	}
}
