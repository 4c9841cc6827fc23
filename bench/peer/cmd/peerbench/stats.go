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

// Table is one scenario's figures: a row per measure with rctl, etcd,
// rctl ÷ etcd and the physical floor where one exists.
type Table struct {
	Title string
	Notes []string // printed under the title: what better means, load
	Rows  [][5]string
}

// DurRow adds a row of durations.
func (t *Table) DurRow(measure string, rctl, etcd, floor time.Duration) {
	f := "—"
	if floor > 0 {
		f = fmtDur(floor)
	}
	t.Rows = append(t.Rows, [5]string{measure, fmtDur(rctl), fmtDur(etcd), ratio(float64(rctl), float64(etcd)), f})
}

// RateRow adds a row of rates (per second).
func (t *Table) RateRow(measure string, rctl, etcd float64) {
	rate := func(r float64) string {
		if r == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f /s", r)
	}
	t.Rows = append(t.Rows, [5]string{measure, rate(rctl), rate(etcd), ratio(rctl, etcd), "—"})
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
	b.WriteString("| measure | rctl | etcd | rctl ÷ etcd | floor |\n|---|---:|---:|---:|---:|\n")
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r[:], " | "))
	}
	return b.String()
}
