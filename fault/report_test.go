//go:build linux

package fault

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChaosReportMarkdown(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &ChaosReport{Seed: 42, Shape: "3 aws + 2 gcp", Duration: time.Minute, Net: DefaultNet(), Started: t0,
		Faults: []FaultRecord{
			{Kind: "kill-leader", Detail: "kill -9 aws1 (leader), held 2s", Start: t0.Add(10 * time.Second), End: t0.Add(12 * time.Second), Settled: 1500 * time.Millisecond, Writes: "a | b"},
			{Kind: "cloud-split", Detail: "cloud split", Start: t0.Add(20 * time.Second), End: t0.Add(25 * time.Second), Settled: -1, Err: "cluster not stable"},
		},
		Elections: []Election{{Term: 2, Leader: "aws1", At: t0.Add(time.Second)}, {Term: 3, Leader: "aws2", At: t0.Add(11 * time.Second)}},
		Checks:    []CheckResult{{Name: "linearizable", OK: true, Detail: "Ok"}, {Name: "converged", OK: false, Detail: "aws1 differs"}},
		Timeline:  "   1.000s aws1   leader term 2\n",
	}
	md := r.Markdown()
	for _, want := range []string{
		"seed 42 — FAIL", "**FAIL** converged: aws1 differs", "**PASS** linearizable: Ok",
		"| 1 | 10.0 | 12.0 | kill-leader | kill -9 aws1 (leader), held 2s | 1.5s | a \\| b |",
		"**not settled**: cluster not stable", "| 3 | aws2 | 11.0 | #1 kill-leader |", "make chaos SEED=42 DURATION=1m0s",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if r.Passed() {
		t.Error("Passed() with a failed check")
	}
	p := filepath.Join(t.TempDir(), "sub", "report.md")
	if err := r.Write(p); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != md {
		t.Fatalf("written report differs: %v", err)
	}
}
