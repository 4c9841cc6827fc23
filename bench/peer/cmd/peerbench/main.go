// Command peerbench runs rctl and etcd side by side through the same
// scenarios — cold start, failover, commit latency, throughput — with real
// server processes, and prints one table per scenario with rctl, etcd,
// their ratio and the physical floor where one exists (issue 6).
//
// It builds both servers itself: rctl from the repository root, etcd from
// this module's cmd/etcd (go.etcd.io/etcd/server/v3/embed). The network is
// pluggable (net.go): "loopback" runs everything on 127.0.0.1 with rctl
// --timing lan against etcd's default timeouts (heartbeat 100 ms, election
// 1000 ms); "wan" puts every server in its own namespace on package fault's
// emulated two-cloud network (3 AWS + 2 GCP, client in AWS; needs root)
// with rctl --timing wan against etcd's documented WAN tuning (heartbeat
// 250 ms, election 2500 ms).
//
// The same scenarios compare two rctl builds with --systems rctl,rctl-base
// and --rctl-base-bin OLD: rctl-base is rctl (same code, same timing)
// started from the binary OLD, e.g. a build of an earlier commit.
//
// Usage, from bench/peer:
//
//	go run ./cmd/peerbench [--mode quick|full] [--net all|loopback|wan]
//	    [--scenarios cold,failover,freeze,silent,latency,throughput] [--security plain|tls|plain,tls]
//	    [--systems rctl,etcd|rctl,rctl-base|…] [--rctl-base-bin PATH]
//	    [--out ../RESULTS.md] [--charts DIR]
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

func main() {
	mode := flag.String("mode", "full", "quick (a few rounds, < 5 min) or full (≥ 20 failover rounds, < 30 min)")
	nets := flag.String("net", "all", "networks to run: loopback, wan, or all (loopback, and wan where it can be built: root, ip, /dev/net/tun)")
	scen := flag.String("scenarios", "cold,failover,freeze,latency,throughput", "scenarios to run, comma-separated (freeze: failover with the leader frozen by SIGSTOP instead of killed; silent, not run by default: with the leader's host cut off the network, wan only, skipped on loopback)")
	out := flag.String("out", "", "append the report (markdown) to this file")
	charts := flag.String("charts", "", "directory for the PNG charts (default: that of --out, else bench/peer/out)")
	rctlBin := flag.String("rctl-bin", os.Getenv("RCTL_BIN"), "rctl binary to use instead of building one")
	rctlBaseBin := flag.String("rctl-base-bin", "", "rctl binary of another build (e.g. an older commit) to run as system rctl-base, beside rctl")
	etcdBin := flag.String("etcd-bin", os.Getenv("ETCD_BIN"), "etcd binary (built from cmd/etcd) to use instead of building one")
	work := flag.String("work", "", "parent directory of the servers' data dirs (default: the system temp dir)")
	systems := flag.String("systems", "rctl,etcd", "systems to run, comma-separated, at most two, in the tables' column order: rctl, etcd, rctl-base (needs --rctl-base-bin); with one, the other column shows —")
	rctlLog := flag.String("rctl-log-level", "warn", "--log-level of the rctl servers (their logs are kept with --keep-slow and on failures)")
	security := flag.String("security", secPlain, "plain, tls, or plain,tls: run every scenario with plaintext and/or with mutual TLS for both systems (rctl: TLS + ACL token; etcd: client and peer TLS with client cert auth); with both, a TLS-cost table compares them")
	keepSlow := flag.Duration("keep-slow", 0, "keep the server logs of every failover round slower than this (0: only of failed rounds)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *mode != "quick" && *mode != "full" {
		log.Fatalf("--mode %q: use quick or full", *mode)
	}
	netList, err := chooseNets(*nets)
	if err != nil {
		log.Fatal(err)
	}
	// Before the work dir exists: a usage error leaves nothing behind.
	sysList, err := chooseSystems(*systems, *rctlBaseBin)
	if err != nil {
		log.Fatal(err)
	}
	if *rctlBaseBin != "" && !slices.Contains(sysList, sysRCTLBase) {
		log.Printf("--rctl-base-bin %s unused: add rctl-base to --systems to run it", *rctlBaseBin)
	}

	workDir, err := os.MkdirTemp(*work, "peerbench-")
	if err != nil {
		log.Fatal(err)
	}
	var network Network
	var netMu sync.Mutex
	setNet := func(n Network) {
		netMu.Lock()
		defer netMu.Unlock()
		network = n
	}
	cleanup := func() {
		killLive()
		_ = os.RemoveAll(workDir)
		netMu.Lock()
		defer netMu.Unlock()
		if network != nil {
			_ = network.Close()
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		log.Printf("%s: stopping servers and removing %s", s, workDir)
		cleanup()
		os.Exit(130)
	}()
	secList, err := chooseSecurity(*security)
	if err != nil {
		log.Fatal(err)
	}
	code := run(runConfig{mode: *mode, nets: netList, systems: sysList, security: secList, keepSlow: *keepSlow, rctlLog: *rctlLog, scenarios: strings.Split(*scen, ","), out: *out,
		charts: *charts, rctlBin: *rctlBin, rctlBaseBin: *rctlBaseBin, etcdBin: *etcdBin, work: workDir, command: strings.Join(os.Args, " ")},
		setNet)
	cleanup()
	os.Exit(code)
}

// chooseNets resolves --net.
func chooseNets(s string) ([]string, error) {
	switch s {
	case "loopback", "wan":
		return []string{s}, nil
	case "all":
		if err := fault.Requirements(); err != nil {
			log.Printf("wan skipped: %v", err)
			return []string{"loopback"}, nil
		}
		return []string{"loopback", "wan"}, nil
	}
	return nil, fmt.Errorf("--net %q: use loopback, wan or all", s)
}

// chooseSystems resolves --systems: the systems to run, in the order
// given, which is also the order of the tables' columns. A table compares
// two columns, so at most two systems run at once; rctl-base runs the
// binary of --rctl-base-bin (rctlBaseBin), which it needs.
func chooseSystems(s, rctlBaseBin string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(knownSystems, name) {
			return nil, fmt.Errorf("--systems: unknown system %q; use two of rctl, etcd, rctl-base (or one)", name)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if len(out) > 2 {
		return nil, fmt.Errorf("--systems %s: at most two systems at once (a table compares two columns); e.g. rctl,etcd or rctl,rctl-base", s)
	}
	if slices.Contains(out, sysRCTLBase) && rctlBaseBin == "" {
		return nil, fmt.Errorf("--systems %s: rctl-base needs --rctl-base-bin PATH, the rctl binary to run as rctl-base (e.g. a build of an older commit)", s)
	}
	return out, nil
}

type runConfig struct {
	mode            string
	systems         []string // in the order of --systems: the tables' columns
	security        []string // plain and/or tls, in the order run
	keepSlow        time.Duration
	rctlLog         string
	nets, scenarios []string
	out, charts     string
	rctlBin         string
	rctlBaseBin     string // --rctl-base-bin: the binary of system rctl-base
	etcdBin         string
	work, command   string
}

// run builds the binaries and runs every network in turn; it returns the
// exit code. setNet tells main which network to tear down on a signal.
func run(cfg runConfig, setNet func(Network)) int {
	t0 := time.Now()
	bins, err := buildBinaries(cfg)
	if err != nil {
		log.Print(err)
		return 1
	}
	if cfg.charts == "" {
		cfg.charts = filepath.Join(bins.peerDir, "out") // ignored by git
		if cfg.out != "" {
			cfg.charts = filepath.Dir(cfg.out)
		}
	}
	if err := os.MkdirAll(cfg.charts, 0o755); err != nil {
		log.Print(err)
		return 1
	}
	p50, p99, err := measureFsync(cfg.work, 200)
	if err != nil {
		log.Printf("fdatasync probe: %v", err)
		return 1
	}
	log.Printf("fdatasync on %s: p50 %s, p99 %s", dataDisk(cfg.work), fmtDur(p50), fmtDur(p99))
	var pk *pkiSet
	if slices.Contains(cfg.security, secTLS) {
		if pk, err = newPKI(filepath.Join(cfg.work, "pki")); err != nil {
			log.Printf("certificates: %v", err)
			return 1
		}
	}
	code := 0
	for _, name := range cfg.nets {
		nw, err := openNet(name)
		if err != nil {
			log.Printf("%s: %v", name, err)
			code = 1
			continue
		}
		setNet(nw)
		// One bench per security mode; each scenario runs in every mode
		// before the next scenario, so the modes see the same machine.
		var benches []*Bench
		for _, sec := range cfg.security {
			b := newBench(nw, bins, cfg, p50)
			b.Security = sec
			if sec == secTLS {
				b.useTLS(pk)
			}
			benches = append(benches, b)
		}
		runErrs := make([]error, len(benches))
		for _, s := range cfg.scenarios {
			for i, b := range benches {
				runErrs[i] = errors.Join(runErrs[i], b.RunOne(s))
			}
		}
		var rep strings.Builder
		for i, b := range benches {
			if runErrs[i] != nil {
				code = 1
			}
			rep.WriteString(report(b, bins, cfg, p50, p99, runErrs[i]))
			if err := writeCharts(b, cfg.charts); err != nil {
				log.Printf("charts: %v", err)
				code = 1
			}
		}
		if len(benches) == 2 {
			plain, tls := benches[0], benches[1]
			if plain.Security == secTLS {
				plain, tls = tls, plain
			}
			cost := tlsCost(plain, tls)
			fmt.Println(cost)
			rep.WriteString("\n" + cost)
		}
		if cfg.out != "" {
			if err := appendFile(cfg.out, rep.String()); err != nil {
				log.Printf("--out: %v", err)
				code = 1
			}
		}
		if err := nw.Close(); err != nil {
			log.Printf("%s: %v", name, err)
		}
		setNet(nil)
	}
	log.Printf("done in %s", time.Since(t0).Round(time.Second))
	return code
}

func openNet(name string) (Network, error) {
	if name == "wan" {
		return newWAN()
	}
	return newLoopback(), nil
}

// newBench makes the systems of cfg, in its order, with the timing
// settings that match on this network.
func newBench(nw Network, bins binaries, cfg runConfig, fsync time.Duration) *Bench {
	wan := nw.Name() == "wan"
	var systems []System
	for _, name := range cfg.systems {
		systems = append(systems, newSystem(name, bins, cfg.rctlLog, wan))
	}
	return &Bench{Net: nw, Systems: systems, names: columns(cfg.systems), KeepSlow: cfg.keepSlow, Plan: planFor(cfg.mode, wan), Work: cfg.work, Keep: cfg.charts,
		Fsync: fsync, Failover: map[string][]time.Duration{}, Throughput: map[string][]float64{}}
}

// newSystem makes the system of a --systems name: every rctl build with
// the same --timing (lan, or wan on wan), etcd with its default timeouts
// or, on wan, its documented WAN tuning.
func newSystem(name string, bins binaries, logLevel string, wan bool) System {
	if name == sysEtcd {
		etcd := &etcdSystem{bin: bins.etcd, heartbeatMs: 100, electMs: 1000}
		if wan {
			etcd.heartbeatMs, etcd.electMs = 250, 2500
		}
		return etcd
	}
	rctl := &rctlSystem{name: name, bin: bins.rctlOf(name).bin, timing: "lan", logLevel: logLevel}
	if wan {
		rctl.timing = "wan"
	}
	return rctl
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// useTLS switches the systems of b to mutual TLS with the certificates
// of pk.
func (b *Bench) useTLS(pk *pkiSet) {
	for _, sys := range b.Systems {
		switch s := sys.(type) {
		case *rctlSystem:
			s.pki = pk
		case *etcdSystem:
			s.pki = pk
		}
	}
}

// tlsCost is the table comparing a plaintext run (plain) with a TLS run
// (tls) of the same scenarios on one network.
func tlsCost(plain, tls *Bench) string {
	return costTable(fmt.Sprintf("TLS cost: mutual TLS ÷ plaintext (%s, same run)", plain.Net.Name()), plain.names,
		[]string{"Each system against itself: its figure with TLS ÷ without. Durations: above 1.00× is what TLS costs; writes/s: below 1.00× is. The plaintext and TLS runs of a scenario ran back to back, in the order of --security (see each table's load averages)."},
		plain.Tables, tls.Tables)
}
