package main

import (
	"strings"
	"testing"
)

// Recorded `go test -run='^$' -bench=… -benchtime=1x ./bench/` output, the
// benchmarks' own lines included (the figures are shortened).
const baseOut = `goos: linux
goarch: amd64
pkg: github.com/rctl-dev/rctl/bench
cpu: AMD EPYC 7B13
# bench-compare: BenchmarkTaskAdd, base build (/work/main/bin/rctl-base), 16:43:30
task add, 3 servers, lan,  1 clients: 628 writes/s, latency n=3140 p50=1ms p99=3ms max=9ms
BenchmarkTaskAdd/clients=1-2         	       1	5000123456 ns/op	       628.0 writes/s
task add, 3 servers, lan, 32 clients: 4120 writes/s, latency n=20600 p50=7ms p99=19ms max=31ms
BenchmarkTaskAdd/clients=32-2        	       1	5001234567 ns/op	      4120 writes/s
metrics scrape off/on, 1 and 32 clients
BenchmarkTaskAddMetrics-2            	       1	40012345678 ns/op	       610.0 writes/s-metrics-off-c1	      4010 writes/s-metrics-off-c32	       590.0 writes/s-metrics-on-c1	      3950 writes/s-metrics-on-c32
BenchmarkRetention-2                 	       1	95000000000 ns/op	        41.20 retire-s	         0.3100 snapshot-ratio
BenchmarkFailover-2                  	       1	61000000000 ns/op	        25.00 ms-failover-p50
PASS
ok  	github.com/rctl-dev/rctl/bench	215.812s
`

const headOut = `goos: linux
goarch: amd64
pkg: github.com/rctl-dev/rctl/bench
cpu: AMD EPYC 7B13
task add, 3 servers, lan,  1 clients: 534 writes/s, latency n=2670 p50=2ms p99=4ms max=11ms
BenchmarkTaskAdd/clients=1-2         	       1	5000223456 ns/op	       534.0 writes/s
task add, 3 servers, lan, 32 clients: 3928 writes/s, latency n=19640 p50=8ms p99=20ms max=35ms
BenchmarkTaskAdd/clients=32-2        	       1	5001334567 ns/op	      3928 writes/s
BenchmarkTaskAddMetrics-2            	       1	40012345678 ns/op	       610.0 writes/s-metrics-off-c1	      4411 writes/s-metrics-off-c32	       590.0 writes/s-metrics-on-c1	      3950 writes/s-metrics-on-c32
BenchmarkRetention-2                 	       1	95000000000 ns/op	        41.20 retire-s	         0.3100 snapshot-ratio
BenchmarkColdStart/servers=3-2       	       1	4100000000 ns/op	       612.0 ms-to-leader-p50
PASS
ok  	github.com/rctl-dev/rctl/bench	220.001s
`

func mustParse(t *testing.T, s string) *result {
	t.Helper()
	r, err := parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func render(t *testing.T, base, head string) string {
	t.Helper()
	var b strings.Builder
	table(&b, mustParse(t, base), mustParse(t, head), "base 489cced", "head 143da5a")
	return b.String()
}

func TestParseSeveralCustomMetrics(t *testing.T) {
	r := mustParse(t, baseOut)
	var names []string
	for _, b := range r.benches {
		names = append(names, b.name)
	}
	want := "BenchmarkTaskAdd/clients=1-2 BenchmarkTaskAdd/clients=32-2 BenchmarkTaskAddMetrics-2 BenchmarkRetention-2 BenchmarkFailover-2"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("benchmarks:\n got %s\nwant %s", got, want)
	}
	m := r.byName["BenchmarkTaskAddMetrics-2"]
	var units []string
	for _, x := range m.metrics {
		units = append(units, x.unit)
	}
	if got := strings.Join(units, " "); got != "ns/op writes/s-metrics-off-c1 writes/s-metrics-off-c32 writes/s-metrics-on-c1 writes/s-metrics-on-c32" {
		t.Fatalf("units: %s", got)
	}
	if v := m.metric("writes/s-metrics-on-c32").mean(); v != 3950 {
		t.Fatalf("writes/s-metrics-on-c32 = %v", v)
	}
	if v := r.byName["BenchmarkRetention-2"].metric("snapshot-ratio").mean(); v != 0.31 {
		t.Fatalf("snapshot-ratio = %v", v)
	}
}

func TestTable(t *testing.T) {
	got := render(t, baseOut, headOut)
	want := `| benchmark | metric | base 489cced | head 143da5a | change |
|---|---|---:|---:|---:|
| BenchmarkTaskAdd/clients=1 | ns/op | 5,000,123,456 | 5,000,223,456 | 0.0 % |
| BenchmarkTaskAdd/clients=1 | writes/s | 628 | 534 | −15.0 % |
| BenchmarkTaskAdd/clients=32 | ns/op | 5,001,234,567 | 5,001,334,567 | 0.0 % |
| BenchmarkTaskAdd/clients=32 | writes/s | 4,120 | 3,928 | −4.7 % |
| BenchmarkTaskAddMetrics | ns/op | 40,012,345,678 | 40,012,345,678 | 0.0 % |
| BenchmarkTaskAddMetrics | writes/s-metrics-off-c1 | 610 | 610 | 0.0 % |
| BenchmarkTaskAddMetrics | writes/s-metrics-off-c32 | 4,010 | 4,411 | +10.0 % |
| BenchmarkTaskAddMetrics | writes/s-metrics-on-c1 | 590 | 590 | 0.0 % |
| BenchmarkTaskAddMetrics | writes/s-metrics-on-c32 | 3,950 | 3,950 | 0.0 % |
| BenchmarkRetention | ns/op | 95,000,000,000 | 95,000,000,000 | 0.0 % |
| BenchmarkRetention | retire-s | 41.2 | 41.2 | 0.0 % |
| BenchmarkRetention | snapshot-ratio | 0.31 | 0.31 | 0.0 % |
| BenchmarkFailover | ns/op | 61,000,000,000 | — | — |
| BenchmarkFailover | ms-failover-p50 | 25 | — | — |
| BenchmarkColdStart/servers=3 | ns/op | — | 4,100,000,000 | — |
| BenchmarkColdStart/servers=3 | ms-to-leader-p50 | — | 612 | — |
`
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
}

// With -benchtime above 1x (or -count), testing prints the name before the
// timed run, so a benchmark's own output lands between its name and its
// figures; a name printed twice is averaged.
func TestOutputBetweenNameAndFigures(t *testing.T) {
	out := "BenchmarkTaskAdd/clients=1-2         \ttask add, 3 servers, lan,  1 clients: 600 writes/s, latency n=3000 p50=1ms\n" +
		"       2\t5000000000 ns/op\t       600.0 writes/s\n" +
		"BenchmarkTaskAdd/clients=1-2         \ttask add, 3 servers, lan,  1 clients: 700 writes/s, latency n=3500 p50=1ms max=4ms       2\t5000000000 ns/op\t       700.0 writes/s\n"
	r := mustParse(t, out)
	if len(r.benches) != 1 {
		t.Fatalf("benchmarks: %d", len(r.benches))
	}
	m := r.benches[0].metric("writes/s")
	if m == nil || m.n != 2 || m.mean() != 650 {
		t.Fatalf("writes/s: %+v", m)
	}
	if c := cell(m, false); c != "650 (mean of 2)" {
		t.Fatalf("cell: %q", c)
	}
}

func TestFailures(t *testing.T) {
	base := "--- FAIL: BenchmarkTaskAdd\n" +
		"    --- FAIL: BenchmarkTaskAdd/clients=1\n" +
		"        core_test.go:292: rpc: unknown flag --insecure\n" +
		"BenchmarkFailover-2   \t--- FAIL: BenchmarkFailover-2\n" +
		"    core_test.go:233: round 3: context deadline exceeded\n" +
		"BenchmarkRetention-2 \t       1\t95000000000 ns/op\t        41.20 retire-s\n" +
		"FAIL\n"
	head := "BenchmarkTaskAdd/clients=1-2 \t       1\t5000223456 ns/op\t       534.0 writes/s\n" +
		"BenchmarkTaskAdd/clients=32-2 \t       1\t5001334567 ns/op\t      3928 writes/s\n" +
		"--- FAIL: BenchmarkFailover-2\n" +
		"BenchmarkRetention-2 \t       1\t95000000000 ns/op\t        40.00 retire-s\n"
	got := render(t, base, head)
	for _, line := range []string{
		"| BenchmarkRetention | retire-s | 41.2 | 40 | −2.9 % |",
		"| BenchmarkTaskAdd/clients=1 | writes/s | FAIL | 534 | — |",
		"| BenchmarkTaskAdd/clients=32 | writes/s | FAIL | 3,928 | — |",
		"| BenchmarkFailover | — | FAIL | FAIL | — |",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
	if strings.Contains(got, "| BenchmarkTaskAdd |") {
		t.Errorf("the failed parent has a row of its own although its sub-benchmarks show it:\n%s", got)
	}
}

func TestProcsSuffixKeptWhenNotShared(t *testing.T) {
	// GOMAXPROCS=1: no suffix, and a sub-benchmark's name ending in -100
	// must stay as it is.
	r := mustParse(t, "BenchmarkBatch/size-100 \t       1\t100 ns/op\n"+
		"BenchmarkBatch/size-1000 \t       1\t100 ns/op\n")
	if s := procsSuffix(r); s != "" {
		t.Fatalf("suffix %q", s)
	}
}

func TestNotFigures(t *testing.T) {
	for _, line := range []string{
		"task add, 3 servers, lan, 32 clients: 4120 writes/s, latency n=20600 p50=7ms",
		"ok  \tgithub.com/rctl-dev/rctl/bench\t215.812s",
		"BenchmarkTaskAdd/clients=1-2         \t",
		"cold start\t3 servers\t1",
		"pkg: github.com/rctl-dev/rctl/bench",
	} {
		if p, ok := figures(line, strings.HasPrefix(line, "Benchmark")); ok {
			t.Errorf("%q read as figures %+v", line, p)
		}
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 4.21: "4.21", 0.2745: "0.275", 56.34: "56.3", 100: "100", 1234567.6: "1,234,568",
		-4.5: "−4.5", -1234: "−1,234", 999.5: "1,000",
	} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
	m := func(v float64) *metric { return &metric{sum: v, n: 1} }
	for _, c := range []struct {
		base, head *metric
		want       string
	}{
		{m(100), m(112), "+12.0 %"}, {m(100), m(85), "−15.0 %"}, {m(100), m(100.01), "0.0 %"},
		{m(0), m(0), "0.0 %"}, {m(0), m(3), "n/a"}, {nil, m(3), "—"}, {m(3), nil, "—"},
	} {
		if got := change(c.base, c.head); got != c.want {
			t.Errorf("change(%v, %v) = %q, want %q", c.base, c.head, got, c.want)
		}
	}
}
