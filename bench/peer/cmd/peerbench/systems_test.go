package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChooseSystems: --systems keeps its order (the tables' columns),
// knows rctl, etcd and rctl-base, runs at most two, and rctl-base only
// with --rctl-base-bin; each usage error says what is wrong.
func TestChooseSystems(t *testing.T) {
	for _, tc := range []struct {
		systems, baseBin string
		want             []string
		err              string // substring of the error; "" for none
	}{
		{"rctl,etcd", "", []string{"rctl", "etcd"}, ""},
		{"etcd,rctl", "", []string{"etcd", "rctl"}, ""},
		{"rctl", "", []string{"rctl"}, ""},
		{"rctl,rctl", "", []string{"rctl"}, ""},
		{"rctl,rctl-base", "bin/rctl-base", []string{"rctl", "rctl-base"}, ""},
		{"rctl-base,rctl", "bin/rctl-base", []string{"rctl-base", "rctl"}, ""},
		{"rctl-base", "bin/rctl-base", []string{"rctl-base"}, ""},
		{"rctl,foo", "", nil, `unknown system "foo"`},
		{"", "", nil, `unknown system ""`},
		{"rctl,etcd,rctl-base", "bin/rctl-base", nil, "at most two systems"},
		{"rctl,rctl-base", "", nil, "rctl-base needs --rctl-base-bin"},
		{"rctl-base", "", nil, "rctl-base needs --rctl-base-bin"},
	} {
		got, err := chooseSystems(tc.systems, tc.baseBin)
		switch {
		case tc.err == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("chooseSystems(%q, %q) = %v, %v; want %v", tc.systems, tc.baseBin, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("chooseSystems(%q, %q) = %v, %v; want an error with %q", tc.systems, tc.baseBin, got, err, tc.err)
		}
	}
}

// TestColumns: two systems are the columns in their order; one alone
// keeps the pair it belongs to, so that the other column shows —.
func TestColumns(t *testing.T) {
	for _, tc := range []struct {
		run  []string
		want [2]string
	}{
		{[]string{"rctl", "etcd"}, [2]string{"rctl", "etcd"}},
		{[]string{"etcd", "rctl"}, [2]string{"etcd", "rctl"}},
		{[]string{"rctl", "rctl-base"}, [2]string{"rctl", "rctl-base"}},
		{[]string{"rctl-base", "rctl"}, [2]string{"rctl-base", "rctl"}},
		{[]string{"rctl"}, [2]string{"rctl", "etcd"}},
		{[]string{"etcd"}, [2]string{"rctl", "etcd"}},
		{[]string{"rctl-base"}, [2]string{"rctl", "rctl-base"}},
	} {
		if got := columns(tc.run); got != tc.want {
			t.Errorf("columns(%v) = %v, want %v", tc.run, got, tc.want)
		}
	}
}

// sampleTable is one table's rows, rendered with the given columns.
func sampleTable(names [2]string) *Table {
	tb := &Table{Title: "T", Names: names, Notes: []string{"n"}}
	tb.DurRow("p50", time.Second, 2*time.Second, 3*time.Millisecond)
	tb.RateRow("1 client, writes/s", 100, 50)
	tb.DurRow("max", time.Second, 0, 0)
	return tb
}

// TestTableDefaultUnchanged: rctl vs etcd (named, or by default) renders
// exactly as before the columns had names (bench/RESULTS-peer.md).
func TestTableDefaultUnchanged(t *testing.T) {
	const want = "### T\n\nn  \n\n" +
		"| measure | rctl | etcd | rctl ÷ etcd | floor |\n|---|---:|---:|---:|---:|\n" +
		"| p50 | 1.00 s | 2.00 s | 0.50× | 3.00 ms |\n" +
		"| 1 client, writes/s | 100 /s | 50 /s | 2.00× | — |\n" +
		"| max | 1.00 s | — | — | — |\n"
	for _, names := range [][2]string{{"rctl", "etcd"}, {}} {
		if got := sampleTable(names).Markdown(); got != want {
			t.Errorf("names %q:\n%s\nwant:\n%s", names, got, want)
		}
	}
}

// TestTableNames: the columns and the ratio are headed by the systems'
// names, the figures in the order of the columns.
func TestTableNames(t *testing.T) {
	const want = "### T\n\nn  \n\n" +
		"| measure | rctl | rctl-base | rctl ÷ rctl-base | floor |\n|---|---:|---:|---:|---:|\n" +
		"| p50 | 1.00 s | 2.00 s | 0.50× | 3.00 ms |\n" +
		"| 1 client, writes/s | 100 /s | 50 /s | 2.00× | — |\n" +
		"| max | 1.00 s | — | — | — |\n"
	tb := sampleTable([2]string{"rctl", "rctl-base"})
	if got := tb.Markdown(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if r := tb.Raw[0]; r.First != float64(time.Second) || r.Second != float64(2*time.Second) {
		t.Errorf("raw row %+v: want First 1 s, Second 2 s", r)
	}
	tb.Key = "failover"
	md := costTable("T", tb.Names, nil, []*Table{tb}, []*Table{tb})
	if !strings.Contains(md, "| scenario | measure | rctl plain | rctl TLS | rctl TLS ÷ plain | rctl-base plain | rctl-base TLS | rctl-base TLS ÷ plain |") {
		t.Errorf("cost table header:\n%s", md)
	}
}

// TestSilentTableNames: the silent scenario's tables name rctl-base too:
// the columns, the ratio row and the per-round columns.
func TestSilentTableNames(t *testing.T) {
	run := func(took time.Duration) *silentRun {
		return &silentRun{Rounds: []silentRound{{Victim: "aws1", VictimCloud: "aws", Took: took, NewLeader: "aws2", NewCloud: "aws", Rejoin: time.Second}}}
	}
	md := silentTable("wan", 1, []string{"rctl", "rctl-base"}, map[string]string{"rctl": "--timing wan", "rctl-base": "--timing wan"},
		map[string]*silentRun{"rctl": run(time.Second), "rctl-base": run(2 * time.Second)}).Markdown()
	for _, want := range []string{
		"| measure | rctl | rctl-base | rctl ÷ rctl-base | floor |",
		"| p50 | 1.00 s | 2.00 s | 0.50× | — |",
		"| rctl-base, `--timing wan` | 2.00 s | 2.00 s | 2.00 s | aws 1 | aws 1 |",
		"| rctl ÷ rctl-base | 0.50× | 0.50× | 0.50× | | | |",
		"| round | rctl | rctl-base |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("silent table lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "etcd") {
		t.Errorf("silent table of rctl vs rctl-base mentions etcd:\n%s", md)
	}
}

// stubNet is a Network with a name and nothing to measure, for the
// report's header.
type stubNet struct {
	Network
	name string
}

func (n stubNet) Name() string                       { return n.name }
func (stubNet) Client() Host                         { return Host{} }
func (stubNet) Hosts(int) ([]Host, error)            { return nil, errors.New("stub") }
func (stubNet) RTT(_, _ Host) (time.Duration, error) { return 0, errors.New("stub") }

// TestNewBenchRctlBase: rctl-base is an rctlSystem on its own binary with
// rctl's timing on that network; the bench's columns follow --systems.
func TestNewBenchRctlBase(t *testing.T) {
	bins := binaries{rctl: rctlBuild{bin: "/bin/new", version: "abc1234", raft: "v1.8.0"},
		rctlBase: rctlBuild{bin: "/bin/old", version: "0123456", raft: "v1.7.3"}}
	for _, nw := range []string{"loopback", "wan"} {
		b := newBench(stubNet{name: nw}, bins, runConfig{mode: "quick", systems: []string{"rctl-base", "rctl"}, rctlLog: "warn"}, time.Millisecond)
		if got := b.systemNames(); !slices.Equal(got, []string{"rctl-base", "rctl"}) || b.names != [2]string{"rctl-base", "rctl"} {
			t.Fatalf("%s: systems %v, columns %v", nw, got, b.names)
		}
		base, rctl := b.Systems[0].(*rctlSystem), b.Systems[1].(*rctlSystem)
		if base.bin != "/bin/old" || rctl.bin != "/bin/new" {
			t.Errorf("%s: rctl-base runs %s, rctl %s", nw, base.bin, rctl.bin)
		}
		if base.Timing() != rctl.Timing() || base.Timing() != "--timing "+map[string]string{"loopback": "lan", "wan": "wan"}[nw] {
			t.Errorf("%s: rctl-base %q, rctl %q", nw, base.Timing(), rctl.Timing())
		}
	}
}

// TestReportHeader: the heading names the two systems, the header
// describes rctl-base's build, and what only etcd has is said only when
// etcd runs; with rctl and etcd the lines are those of before.
func TestReportHeader(t *testing.T) {
	bins := binaries{rctl: rctlBuild{bin: "/bin/new", version: "abc1234", raft: "v1.8.0"},
		rctlBase: rctlBuild{bin: "/bin/old", version: "0123456", raft: "v1.7.3"}, etcd: "/bin/etcd", etcdVersion: "v3.6.8"}
	cfg := runConfig{mode: "quick", systems: []string{"rctl", "rctl-base"}, rctlLog: "warn", command: "peerbench"}
	b := newBench(stubNet{name: "wan"}, bins, cfg, time.Millisecond)
	b.Security = secTLS
	rep := report(b, bins, cfg, time.Millisecond, time.Millisecond, nil)
	for _, want := range []string{
		" — rctl vs rctl-base, wan, TLS, quick run\n",
		"rctl abc1234 (hashicorp/raft v1.8.0), `--timing wan`; rctl-base 0123456 (hashicorp/raft v1.7.3), `--timing wan`.  \n",
		"Writes: rctl Task.Add (msgpack RPC, one connection per client).  \n",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "etcd") {
		t.Errorf("report of rctl vs rctl-base mentions etcd:\n%s", rep)
	}
	if n := coldTLSNote(cfg.systems); strings.Contains(n, "etcd") || !strings.HasPrefix(n, "TLS: rctl's first write") {
		t.Errorf("cold start TLS note: %q", n)
	}

	def := []string{"rctl", "etcd"}
	for got, want := range map[string]string{
		writesNote(def):   "Writes: rctl Task.Add (msgpack RPC, one connection per client); etcd Put of a 128-byte value (clientv3, one gRPC connection per client).  \n",
		securityNote(def): "Security: mutual TLS on both (one CA; server certificates with IP SANs; clients present an operator certificate). rctl: TLS 1.3 on its one port, clients also send the management token from ACL.Bootstrap (done once the cluster has a leader; in cold start the first write includes it). etcd: client and peer TLS with client certificate auth, its own auth off.  \n",
		coldTLSNote(def):  "TLS: rctl's first write is ACL.Bootstrap (a Raft write) then Task.Add with the new token, as an operator's first use of a fresh secure cluster; etcd's is a Put.",
	} {
		if got != want {
			t.Errorf("rctl vs etcd:\n%q\nwant\n%q", got, want)
		}
	}
	b = newBench(stubNet{name: "wan"}, bins, runConfig{mode: "quick", systems: def}, time.Millisecond)
	if rep := report(b, bins, cfg, 0, 0, nil); !strings.Contains(rep, " — rctl vs etcd, wan, quick run\n") {
		t.Errorf("rctl vs etcd heading:\n%s", rep)
	}
}

// TestBinVersion: a prebuilt rctl's version is what `rctl version` says
// when a version was stamped in; "dev" or nothing falls back (here, to
// what it said, or "?": the scripts are no Go binaries).
func TestBinVersion(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ script, want string }{
		"stamped": {"echo 'rctl 0123456'", "0123456"},
		"dev":     {"echo 'rctl dev'", "dev"},
		"none":    {"exit 1", "?"},
	} {
		bin := filepath.Join(dir, name)
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+tc.script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := binVersion(bin); got != tc.want {
			t.Errorf("%s: binVersion = %q, want %q", name, got, tc.want)
		}
	}
}

// TestSysColors: every system has a colour of its own in the charts.
func TestSysColors(t *testing.T) {
	seen := map[any]string{}
	for _, name := range knownSystems {
		c, ok := sysColor[name]
		if !ok {
			t.Errorf("%s has no colour", name)
		}
		if other, dup := seen[c]; dup {
			t.Errorf("%s and %s share a colour", name, other)
		}
		seen[c] = name
	}
}
