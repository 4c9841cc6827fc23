package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPct(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {1, 10}, {0.1, 1}, {0, 1}} {
		if got := pct(ds, tc.p); got != tc.want {
			t.Errorf("pct(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if pct(nil, .5) != 0 {
		t.Error("pct of nothing is not 0")
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		236 * time.Microsecond: "236 µs", 1690 * time.Microsecond: "1.69 ms",
		55 * time.Millisecond: "55 ms", 2250 * time.Millisecond: "2.25 s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	if got := ratio(1, 2); got != "0.50×" {
		t.Errorf("ratio(1, 2) = %q", got)
	}
	if got := ratio(1, 0); got != "—" {
		t.Errorf("ratio(1, 0) = %q", got)
	}
	tb := &Table{Title: "T", Notes: []string{"n"}}
	tb.DurRow("p50", time.Second, 2*time.Second, 0)
	tb.RateRow("1 client, writes/s", 100, 50)
	md := tb.Markdown()
	for _, want := range []string{"### T", "| p50 | 1.00 s | 2.00 s | 0.50× | — |", "| 1 client, writes/s | 100 /s | 50 /s | 2.00× | — |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestCharts draws both charts and decodes them back.
func TestCharts(t *testing.T) {
	dir := t.TempDir()
	order := []string{"rctl", "etcd"}
	fo := filepath.Join(dir, "f.png")
	err := failoverChart(fo, "failover", order, map[string][]time.Duration{
		"rctl": {time.Second, 1200 * time.Millisecond, 900 * time.Millisecond},
		"etcd": {3 * time.Second, 3500 * time.Millisecond, time.Minute},
	}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(dir, "t.png")
	err = throughputChart(tp, "throughput", order, []int{1, 16, 64, 256},
		map[string][]float64{"rctl": {500, 2000, 4000, 6000}, "etcd": {700, 2200, 5000, 6400}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fo, tp} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if img.Bounds().Dx() < 800 {
			t.Errorf("%s: %v wide", p, img.Bounds().Dx())
		}
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct {
		max  float64
		n    int
		want float64
	}{{4.5, 8, 1}, {7000, 6, 2000}, {1.3, 8, 0.2}} {
		if got := niceStep(tc.max, tc.n); got != tc.want {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tc.max, tc.n, got, tc.want)
		}
	}
}

// TestPlansFitTheirBudgets keeps the round counts the issue asks for.
func TestPlansFitTheirBudgets(t *testing.T) {
	for _, wan := range []bool{false, true} {
		if p := planFor("full", wan); p.FailoverRounds < 20 {
			t.Errorf("full plan (wan %v): %d failover rounds, want ≥ 20", wan, p.FailoverRounds)
		}
		if p := planFor("quick", wan); p.FailoverRounds > 5 || p.ThroughputDur > 2*time.Second {
			t.Errorf("quick plan (wan %v) too long: %+v", wan, p)
		}
	}
}
