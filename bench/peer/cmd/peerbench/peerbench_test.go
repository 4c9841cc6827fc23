package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
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

func TestChooseSecurity(t *testing.T) {
	got, err := chooseSecurity("plain,tls,plain")
	if err != nil || len(got) != 2 || got[0] != secPlain || got[1] != secTLS {
		t.Errorf("chooseSecurity(plain,tls,plain) = %v, %v", got, err)
	}
	if _, err := chooseSecurity("mtls"); err == nil {
		t.Error("chooseSecurity(mtls) accepted")
	}
}

// TestCostTable matches rows of two runs by scenario and measure.
func TestCostTable(t *testing.T) {
	plain := &Table{Key: "commit latency"}
	plain.DurRow("p50", 2*time.Millisecond, 4*time.Millisecond, 0)
	plain.RateRow("16 clients, writes/s", 1000, 800)
	tls := &Table{Key: "commit latency"}
	tls.DurRow("p50", 3*time.Millisecond, 4*time.Millisecond, 0)
	tls.RateRow("16 clients, writes/s", 900, 0)
	other := &Table{Key: "throughput"}
	other.DurRow("p50", time.Second, time.Second, 0)
	md := costTable("T", [2]string{"rctl", "etcd"}, nil, []*Table{plain}, []*Table{other, tls})
	for _, want := range []string{
		"| commit latency | p50 | 2.00 ms | 3.00 ms | 1.50× | 4.00 ms | 4.00 ms | 1.00× |",
		"| commit latency | 16 clients, writes/s | 1000 /s | 900 /s | 0.90× | 800 /s | — | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("cost table lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "1.00 s") {
		t.Errorf("cost table matched another scenario's row:\n%s", md)
	}
}

// TestPKI makes the run's certificates as rctl and etcd get them: a
// server certificate per host (made once), loadable by rctl's own pki,
// and the etcd client's TLS config.
func TestPKI(t *testing.T) {
	p, err := newPKI(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if id := p.opTLS.Identity(); id.Role != "operator" {
		t.Errorf("operator certificate names %v", id)
	}
	if len(p.secret) < 16 {
		t.Errorf("secret %q too short for ACL.Bootstrap", p.secret)
	}
	h := Host{Name: "aws1", IP: "10.0.0.1"}
	f, err := p.server(h)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := p.server(h); err != nil || again != f {
		t.Errorf("second server(%v) = %v, %v; want the same files", h, again, err)
	}
	st, err := pki.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if id := st.Identity(); id.Role != pki.RoleServer || id.Name != "aws1" {
		t.Errorf("server certificate names %v", id)
	}
	if _, err := p.etcdClientTLS(); err != nil {
		t.Fatal(err)
	}
}

// TestSilentTable: the silent scenario's bookkeeping and table — the
// usual rows, the per-system table with each system's timing and
// the new leader's cloud, and one line per round, with rounds that had no
// write, no new leader or no rejoin.
func TestSilentTable(t *testing.T) {
	s := time.Second
	rctl := &silentRun{Rounds: []silentRound{
		{Victim: "aws1", VictimCloud: "aws", Took: 1500 * time.Millisecond, NewLeader: "aws2", NewCloud: "aws", Rejoin: s},
		{Victim: "aws2", VictimCloud: "aws", Took: 1600 * time.Millisecond, NewLeader: "aws3", NewCloud: "aws", Rejoin: 2 * s},
		{Victim: "aws3", VictimCloud: "aws", Took: 1700 * time.Millisecond, NewLeader: "aws1", NewCloud: "aws", Rejoin: 3 * s, Relead: true},
	}}
	etcd := &silentRun{Rounds: []silentRound{
		{Victim: "gcp1", VictimCloud: "gcp", Took: 3 * s, NewLeader: "aws1", NewCloud: "aws", Rejoin: s},
		{Victim: "aws1", VictimCloud: "aws", Took: failoverWithin, Stuck: true},
	}, Aborted: "round 2: aws1 did not rejoin after the heal"}
	stuck, leaderless, victims, newLeader, rejoin, relead := etcd.counts()
	if stuck != 1 || leaderless != 1 || victims["gcp"] != 1 || victims["aws"] != 1 || newLeader["aws"] != 1 || len(rejoin) != 1 || relead != 0 {
		t.Errorf("etcd counts: stuck %d, leaderless %d, victims %v, new leader %v, rejoin %v, relead %d", stuck, leaderless, victims, newLeader, rejoin, relead)
	}
	tb := silentTable("wan", 3, []string{"rctl", "etcd"},
		map[string]string{"rctl": "--timing wan", "etcd": "--heartbeat-interval 250 --election-timeout 2500"},
		map[string]*silentRun{"rctl": rctl, "etcd": etcd})
	md := tb.Markdown()
	for _, want := range []string{
		"| p50 | 1.60 s | 3.00 s | 0.53× | — |",
		"| max | 1.70 s | 60.00 s | 0.03× | — |",
		"| rounds with no write within 60.00 s (counted as 60.00 s) | 0 | 1 | — | — |",
		"| rounds with no new leader seen within 10.00 s | 0 | 1 | — | — |",
		"| heal → old leader following, all caught up, max | 3.00 s | 1.00 s | 3.00× | — |",
		"| system | p50 | p99 | max | new leader's cloud | victims' cloud | old leader back as follower |",
		"| rctl, `--timing wan` | 1.60 s | 1.70 s | 1.70 s | aws 3 | aws 3 | 2 of 3 rounds (heal → caught up p50 2.00 s, max 3.00 s); led again in 1 |",
		"| etcd, `--heartbeat-interval 250 --election-timeout 2500` | 3.00 s | 60.00 s | 60.00 s | aws 1 | aws 1, gcp 1 | 1 of 2 rounds (heal → caught up p50 1.00 s, max 1.00 s) |",
		"| rctl ÷ etcd | 0.53× | 0.03× | 0.03× | | | |",
		"| round | rctl | etcd |",
		"| 1 | aws1 → aws2, 1.50 s | gcp1 → aws1, 3.00 s |",
		"| 2 | aws2 → aws3, 1.60 s | aws1 → none seen, no write within 60.00 s; old leader not back |",
		"| 3 | aws3 → aws1, 1.70 s; old leader led again | — |",
		"etcd: rounds stopped early: round 2: aws1 did not rejoin after the heal.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("silent table lacks %q:\n%s", want, md)
		}
	}
	// One system run: its column and its row only.
	md = silentTable("wan", 3, []string{"rctl"}, nil, map[string]*silentRun{"rctl": rctl}).Markdown()
	if strings.Contains(md, "\n| rctl ÷ etcd |") || !strings.Contains(md, "| p50 | 1.60 s | — | — | — |") {
		t.Errorf("rctl-only silent table:\n%s", md)
	}
}
