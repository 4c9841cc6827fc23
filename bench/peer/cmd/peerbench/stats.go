package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// pct returns the p-quantile (0 ≤ p ≤ 1) of ds by the nearest-rank
// method; p = 1 is the maximum. It returns 0 for no samples.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// fmtDur prints a duration with three significant figures in a unit that
// suits it.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—" // no measurement: a system not run
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// ratio prints a/b as "1.23×", or "—" when b is zero.
func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// Table is one scenario's figures: a row per measure with the two
// systems compared (Names: rctl and etcd, or rctl and rctl-base, …), the
// first ÷ the second and the physical floor where one exists.
type Table struct {
	Title string
	// Names are the systems of the two figure columns, in order; zero
	// means rctl, etcd.
	Names [2]string
	Notes []string // printed under the title: what better means, load
	Rows  [][5]string
	// Key names the scenario (set by Bench.run); Raw keeps the figures
	// of DurRow and RateRow, so that two runs of a scenario (plaintext and
	// TLS) can be compared row by row (costTable).
	Key string
	Raw []RawRow
	// After holds markdown printed under the rows (more tables, per-round
	// detail), a blank line before it.
	After []string
}

// RawRow is one row's figures before formatting: durations in
// nanoseconds or rates per second; 0 where a system did not run. First
// and Second are the columns of Table.Names[0] and [1].
type RawRow struct {
	Measure       string
	Rate          bool // writes/s (higher is better), else a duration
	First, Second float64
}

// names returns the table's two systems, rctl and etcd unless set.
func (t *Table) names() [2]string {
	if t.Names == ([2]string{}) {
		return defaultPair
	}
	return t.Names
}

// pair picks the two columns' entries from a map by system name (zero
// for a system not run), in column order.
func pair[V any](m map[string]V, names [2]string) (V, V) {
	return m[names[0]], m[names[1]]
}

// DurRow adds a row of durations: the first and the second system's.
func (t *Table) DurRow(measure string, first, second, floor time.Duration) {
	f := "—"
	if floor > 0 {
		f = fmtDur(floor)
	}
	t.Rows = append(t.Rows, [5]string{measure, fmtDur(first), fmtDur(second), ratio(float64(first), float64(second)), f})
	t.Raw = append(t.Raw, RawRow{Measure: measure, First: float64(first), Second: float64(second)})
}

// RateRow adds a row of rates (per second).
func (t *Table) RateRow(measure string, first, second float64) {
	t.Rows = append(t.Rows, [5]string{measure, fmtPerSec(first), fmtPerSec(second), ratio(first, second), "—"})
	t.Raw = append(t.Raw, RawRow{Measure: measure, Rate: true, First: first, Second: second})
}

func fmtPerSec(r float64) string {
	if r == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f /s", r)
}

// Markdown renders the table as GitHub markdown.
func (t *Table) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.Title)
	for _, n := range t.Notes {
		fmt.Fprintf(&b, "%s  \n", n)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
	}
	n := t.names()
	fmt.Fprintf(&b, "| measure | %[1]s | %[2]s | %[1]s ÷ %[2]s | floor |\n|---|---:|---:|---:|---:|\n", n[0], n[1])
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r[:], " | "))
	}
	for _, a := range t.After {
		fmt.Fprintf(&b, "\n%s", a)
		if !strings.HasSuffix(a, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// costTable compares two runs of the same scenarios on one network, base
// (plaintext) and other (TLS): for every row both runs measured, each
// system's figure in both and other ÷ base. Durations: above 1× is the
// cost; rates: below 1× is. names are the systems of the runs' columns.
func costTable(title string, names [2]string, notes []string, base, other []*Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", title)
	for _, n := range notes {
		fmt.Fprintf(&b, "%s  \n", n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| scenario | measure | %[1]s plain | %[1]s TLS | %[1]s TLS ÷ plain | %[2]s plain | %[2]s TLS | %[2]s TLS ÷ plain |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
		names[0], names[1])
	for _, bt := range base {
		var ot *Table
		for _, t := range other {
			if t.Key == bt.Key {
				ot = t
			}
		}
		if ot == nil {
			continue
		}
		for _, br := range bt.Raw {
			for _, or := range ot.Raw {
				if or.Measure != br.Measure || or.Rate != br.Rate {
					continue
				}
				f := func(v float64) string {
					if br.Rate {
						return fmtPerSec(v)
					}
					return fmtDur(time.Duration(v))
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", bt.Key, br.Measure,
					f(br.First), f(or.First), ratio(or.First, br.First), f(br.Second), f(or.Second), ratio(or.Second, br.Second))
			}
		}
	}
	return b.String()
}
