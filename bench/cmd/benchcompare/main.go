// Command benchcompare reads the output of two `go test -bench` runs (the
// base build's and the head build's) and prints one Markdown table with
// every benchmark's metrics side by side and the change in per cent. It is
// the table half of `make bench-compare` (bench/compare.sh runs the
// benchmarks).
//
//	benchcompare [-base LABEL] [-head LABEL] base.txt head.txt
//
// It understands the standard result lines (name, iterations, then pairs
// of value and unit, custom units from b.ReportMetric included), also when
// a benchmark printed text of its own between its name and its figures, as
// the ./bench/ benchmarks do. A benchmark that appears more than once in a
// file is shown as the mean of its runs, with the count. A benchmark or
// metric present in one file only shows "—" for the other; one that failed
// there shows "FAIL".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// metric is one unit's values for one benchmark in one file.
type metric struct {
	unit string
	sum  float64
	n    int
}

func (m *metric) mean() float64 { return m.sum / float64(m.n) }

// bench is one benchmark's metrics in one file, in the order first seen.
type bench struct {
	name    string
	metrics []*metric
}

func (b *bench) metric(unit string) *metric {
	for _, m := range b.metrics {
		if m.unit == unit {
			return m
		}
	}
	return nil
}

// result is everything read from one file.
type result struct {
	benches []*bench // in the order first seen
	byName  map[string]*bench
	failed  map[string]bool // names as reported by "--- FAIL: "
	fails   []string        // the same, in order
}

func (r *result) add(name string, pairs []pair) {
	b := r.byName[name]
	if b == nil {
		b = &bench{name: name}
		r.byName[name] = b
		r.benches = append(r.benches, b)
	}
	for _, p := range pairs {
		m := b.metric(p.unit)
		if m == nil {
			m = &metric{unit: p.unit}
			b.metrics = append(b.metrics, m)
		}
		m.sum += p.value
		m.n++
	}
}

type pair struct {
	value float64
	unit  string
}

// parse reads `go test -bench` output. testing prints a result as the
// name padded and a tab, then (after the benchmark has run, so after
// anything it printed itself) "%8d" iterations and "\t<value> <unit>" per
// metric. The figures are therefore taken from the end of a line, by tab,
// and belong to the last name seen when the line does not start with one.
func parse(rd io.Reader) (*result, error) {
	r := &result{byName: map[string]*bench{}, failed: map[string]bool{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	pending := ""
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \r")
		// A failure is reported on a line of its own, or right after the
		// name when the benchmark failed in its timed run.
		if _, f, ok := strings.Cut(line, "--- FAIL: "); ok {
			if fs := strings.Fields(f); len(fs) > 0 && !r.failed[fs[0]] {
				r.failed[fs[0]] = true
				r.fails = append(r.fails, fs[0])
			}
			pending = ""
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "--- ") {
			pending = ""
			continue
		}
		name := ""
		if strings.HasPrefix(line, "Benchmark") {
			name = strings.Fields(line)[0]
		}
		pairs, ok := figures(line, name != "")
		switch {
		case ok && name != "":
			r.add(name, pairs)
			pending = ""
		case ok && pending != "":
			r.add(pending, pairs)
			pending = ""
		case name != "" && strings.Contains(line, "\t"):
			pending = name // its figures come after its own output
		}
	}
	return r, sc.Err()
}

// figures returns the metric pairs at the end of line: the tab-separated
// fields "<value> <unit>" after one whose last word is the iteration
// count. With named, the line starts with the benchmark's name, which
// must not be taken for the iteration count.
func figures(line string, named bool) ([]pair, bool) {
	segs := strings.Split(line, "\t")
	i := len(segs) - 1
	var rev []pair
	for ; i >= 0; i-- {
		f := strings.Fields(segs[i])
		if len(f) != 2 {
			break
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || isNumber(f[1]) {
			break
		}
		rev = append(rev, pair{v, f[1]})
	}
	if len(rev) == 0 || i < 0 || (named && i == 0) {
		return nil, false
	}
	f := strings.Fields(segs[i])
	if len(f) == 0 {
		return nil, false
	}
	if _, err := strconv.ParseUint(f[len(f)-1], 10, 64); err != nil {
		return nil, false
	}
	pairs := make([]pair, len(rev))
	for j, p := range rev {
		pairs[len(rev)-1-j] = p
	}
	return pairs, true
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// procsSuffix returns the "-N" GOMAXPROCS suffix that every name ends
// with, or "" if they do not all share one (go test leaves it off at
// GOMAXPROCS=1, and a sub-benchmark's own name may end in -N).
func procsSuffix(rs ...*result) string {
	suffix, seen := "", false
	for _, r := range rs {
		for _, b := range r.benches {
			i := strings.LastIndexByte(b.name, '-')
			if i < 0 {
				return ""
			}
			if _, err := strconv.Atoi(b.name[i+1:]); err != nil {
				return ""
			}
			if seen && b.name[i:] != suffix {
				return ""
			}
			suffix, seen = b.name[i:], true
		}
	}
	return suffix
}

// row is one line of the table.
type row struct {
	bench, unit string
	base, head  *metric
	baseFailed  bool
	headFailed  bool
}

func rows(base, head *result) []row {
	suffix := procsSuffix(base, head)
	show := func(name string) string { return strings.TrimSuffix(name, suffix) }
	// failed: the benchmark, or a parent of it, failed in r (failures
	// are reported with and without the GOMAXPROCS suffix).
	failed := func(r *result, name string) bool {
		if r.failed[name] {
			return true
		}
		n := show(name)
		for {
			if r.failed[n] || r.failed[n+suffix] {
				return true
			}
			i := strings.LastIndexByte(n, '/')
			if i < 0 {
				return false
			}
			n = n[:i]
		}
	}
	var out []row
	done := map[string]bool{}
	emit := func(name string) {
		if done[show(name)] {
			return
		}
		done[show(name)] = true
		bb, hb := base.byName[name], head.byName[name]
		var units []string
		seen := map[string]bool{}
		for _, b := range []*bench{bb, hb} {
			if b == nil {
				continue
			}
			for _, m := range b.metrics {
				if !seen[m.unit] {
					seen[m.unit] = true
					units = append(units, m.unit)
				}
			}
		}
		for _, u := range units {
			rw := row{bench: show(name), unit: u, baseFailed: failed(base, name), headFailed: failed(head, name)}
			if bb != nil {
				rw.base = bb.metric(u)
			}
			if hb != nil {
				rw.head = hb.metric(u)
			}
			out = append(out, rw)
		}
	}
	for _, b := range base.benches {
		emit(b.name)
	}
	for _, b := range head.benches {
		emit(b.name)
	}
	// A benchmark that failed without figures on either side gets a row
	// of its own, unless a row of one of its sub-benchmarks shows it.
	for _, r := range []*result{base, head} {
		for _, name := range r.fails {
			n := show(name)
			covered := false
			for d := range done {
				if d == n || strings.HasPrefix(d, n+"/") {
					covered = true
				}
			}
			if !covered {
				done[n] = true
				out = append(out, row{bench: n, unit: "—", baseFailed: failed(base, n), headFailed: failed(head, n)})
			}
		}
	}
	return out
}

// formatValue prints large figures as integers with thousands separators
// and small ones with three significant digits.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100 || v == math.Trunc(v):
		s := strconv.FormatInt(int64(math.Round(a)), 10)
		var b strings.Builder
		if v < 0 {
			b.WriteString("−")
		}
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case a >= 10:
		return strings.Replace(strconv.FormatFloat(v, 'f', 1, 64), "-", "−", 1)
	default:
		return strings.Replace(strconv.FormatFloat(v, 'g', 3, 64), "-", "−", 1)
	}
}

func cell(m *metric, failed bool) string {
	switch {
	case m != nil && m.n > 1:
		return fmt.Sprintf("%s (mean of %d)", formatValue(m.mean()), m.n)
	case m != nil:
		return formatValue(m.mean())
	case failed:
		return "FAIL"
	default:
		return "—"
	}
}

func change(base, head *metric) string {
	if base == nil || head == nil {
		return "—"
	}
	b, h := base.mean(), head.mean()
	if b == 0 {
		if h == 0 {
			return "0.0 %"
		}
		return "n/a"
	}
	p := (h - b) / math.Abs(b) * 100
	s := strconv.FormatFloat(p, 'f', 1, 64)
	switch {
	case s == "0.0" || s == "-0.0":
		return "0.0 %"
	case p < 0:
		return "−" + s[1:] + " %"
	default:
		return "+" + s + " %"
	}
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// table writes the Markdown table comparing base with head.
func table(w io.Writer, base, head *result, baseLabel, headLabel string) {
	fmt.Fprintf(w, "| benchmark | metric | %s | %s | change |\n", escape(baseLabel), escape(headLabel))
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	for _, r := range rows(base, head) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", escape(r.bench), escape(r.unit),
			cell(r.base, r.baseFailed), cell(r.head, r.headFailed), change(r.base, r.head))
	}
}

func readFile(path string) (*result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func main() {
	baseLabel := flag.String("base", "base", "column heading of the first file's figures")
	headLabel := flag.String("head", "head", "column heading of the second file's figures")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: benchcompare [-base LABEL] [-head LABEL] base.txt head.txt")
		fmt.Fprintln(flag.CommandLine.Output(), "Prints a Markdown table of two `go test -bench` outputs side by side.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	base, err := readFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
	head, err := readFile(flag.Arg(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
	if len(base.benches) == 0 && len(head.benches) == 0 {
		fmt.Fprintf(os.Stderr, "benchcompare: no benchmark results in %s or %s\n", flag.Arg(0), flag.Arg(1))
		os.Exit(1)
	}
	table(os.Stdout, base, head, *baseLabel, *headLabel)
}
