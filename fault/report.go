//go:build linux

package fault

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CheckResult is the verdict of one check of a session.
type CheckResult struct {
	Name   string
	OK     bool
	Detail string
}

// ChaosReport is what a chaos session writes: what it did, what the
// cluster did, and what the checks found.
type ChaosReport struct {
	Seed     uint64
	Shape    string // e.g. "3 aws + 2 gcp"
	Duration time.Duration
	Net      NetConfig
	Binary   string
	Agents   []string
	// Started is the monitor's start: every time in the report is an
	// offset from it.
	Started   time.Time
	Faults    []FaultRecord
	Elections []Election
	Checks    []CheckResult
	// Figures are free lines (workload counts, write latencies, …).
	Figures []string
	// Timeline is the monitor's timeline (Monitor.Timeline).
	Timeline string
	// Files names what the session left next to the report.
	Files []string
}

// Passed reports whether every check passed.
func (r *ChaosReport) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

func (r *ChaosReport) at(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return fmt.Sprintf("%.1f", t.Sub(r.Started).Seconds())
}

// Markdown renders the report.
func (r *ChaosReport) Markdown() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "# rctl chaos report: seed %d — %s\n\n", r.Seed, verdict)
	fmt.Fprintf(&b, "- started %s, ran %s of faults (%d injected), %d elections seen\n",
		r.Started.Format(time.RFC3339), r.Duration.Round(time.Second), len(r.Faults), len(r.Elections))
	fmt.Fprintf(&b, "- servers: %s, timing wan; network: RTT %s within a cloud, %s across (±%s/±%s jitter)\n",
		r.Shape, r.Net.IntraRTT, r.Net.CrossRTT, r.Net.IntraJitter, r.Net.CrossJitter)
	if len(r.Agents) > 0 {
		fmt.Fprintf(&b, "- node agents: %s\n", strings.Join(r.Agents, ", "))
	} else {
		fmt.Fprintf(&b, "- node agents: none\n")
	}
	if r.Binary != "" {
		fmt.Fprintf(&b, "- rctl: %s\n", r.Binary)
	}
	fmt.Fprintf(&b, "- reproduce the choice of faults: `make chaos SEED=%d DURATION=%s`\n", r.Seed, r.Duration.Round(time.Second))
	fmt.Fprintf(&b, "- times below are seconds since the session's monitor started\n\n")

	b.WriteString("## Checks\n\n")
	for _, c := range r.Checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "- **%s** %s: %s\n", mark, c.Name, oneLine(c.Detail))
	}
	b.WriteString("\n## Faults\n\n")
	b.WriteString("| # | start | healed | fault | what | settled after heal | writes during the fault |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for i, f := range r.Faults {
		settled := f.Settled.Round(time.Millisecond).String()
		if f.Settled < 0 {
			settled = "**not settled**: " + oneLine(f.Err)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", i+1, r.at(f.Start), r.at(f.End), f.Kind,
			cell(f.Detail), cell(settled), cell(f.Writes))
	}
	b.WriteString("\n## Elections (first observation of each term's leader)\n\n")
	b.WriteString("| term | leader | seen at | during fault |\n|---|---|---|---|\n")
	for _, e := range r.Elections {
		during := ""
		for i, f := range r.Faults {
			if !e.At.Before(f.Start) && (e.At.Before(f.End.Add(max(f.Settled, 0))) || f.Settled < 0 && e.At.Before(f.End.Add(time.Minute))) {
				during = fmt.Sprintf("#%d %s", i+1, f.Kind)
				break
			}
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", e.Term, e.Leader, r.at(e.At), during)
	}
	if len(r.Figures) > 0 {
		b.WriteString("\n## Figures\n\n")
		for _, f := range r.Figures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	if len(r.Files) > 0 {
		b.WriteString("\n## Files\n\n")
		for _, f := range r.Files {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	b.WriteString("\n## Timeline (monitor: state changes of every server, and the nemesis)\n\n```\n")
	b.WriteString(r.Timeline)
	b.WriteString("```\n")
	return b.String()
}

// Write writes the Markdown report to path, creating its directory.
func (r *ChaosReport) Write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(r.Markdown()), 0o644)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell makes s safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", "\\|") }
