package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report renders one network's run as markdown: when, where, what was
// compared with which settings, the tables and the charts.
func report(b *Bench, bins binaries, cfg runConfig, fsync50, fsync99 time.Duration, runErr error) string {
	var s strings.Builder
	fmt.Fprintf(&s, "\n## %s — %s vs %s, %s, %s run\n\n", time.Now().Format("2006-01-02 15:04"), b.names[0], b.names[1], b.label(), cfg.mode)
	fmt.Fprintf(&s, "Machine: %s. Go %s.  \n", machine(), runtime.Version())
	var run []string
	for _, sys := range b.Systems {
		run = append(run, bins.describe(sys))
	}
	fmt.Fprintf(&s, "%s.  \n", strings.Join(run, "; "))
	fmt.Fprintf(&s, "Network: %s.  \n", netNote(b.Net))
	fmt.Fprintf(&s, "fdatasync of the data disk (4 KiB appends): p50 %s, p99 %s.  \n", fmtDur(fsync50), fmtDur(fsync99))
	if b.Security == secTLS {
		s.WriteString(securityNote(b.systemNames()))
	}
	s.WriteString(writesNote(b.systemNames()))
	fmt.Fprintf(&s, "Command: `%s` (from bench/peer).\n\n", cfg.command)
	for _, t := range b.Tables {
		s.WriteString(t.Markdown())
		s.WriteString("\n")
	}
	if len(b.Failover) > 0 {
		fmt.Fprintf(&s, "![failover, %[1]s](%[2]s)\n", b.label(), chartName("failover", b))
	}
	if len(b.Throughput) > 0 {
		fmt.Fprintf(&s, "![throughput, %[1]s](%[2]s)\n", b.label(), chartName("throughput", b))
	}
	if runErr != nil {
		fmt.Fprintf(&s, "\nErrors: %s\n", strings.ReplaceAll(runErr.Error(), "\n", "; "))
	}
	return s.String()
}

// describe names a system's build and settings for the report's header.
func (bins binaries) describe(sys System) string {
	if sys.Name() == sysEtcd {
		return fmt.Sprintf("etcd %s (go.etcd.io/etcd/server/v3 embedded, bench/peer/cmd/etcd), `%s`", bins.etcdVersion, sys.Timing())
	}
	r := bins.rctlOf(sys.Name())
	return fmt.Sprintf("%s %s (hashicorp/raft %s), `%s`", sys.Name(), r.version, r.raft, sys.Timing())
}

// securityNote is the header's line on TLS: how each kind of system run
// uses it (rctl's part for any rctl build, etcd's only if etcd runs).
func securityNote(systems []string) string {
	n := "Security: mutual TLS on both (one CA; server certificates with IP SANs; clients present an operator certificate)."
	if slices.ContainsFunc(systems, isRCTL) {
		n += " rctl: TLS 1.3 on its one port, clients also send the management token from ACL.Bootstrap (done once the cluster has a leader; in cold start the first write includes it)."
	}
	if slices.Contains(systems, sysEtcd) {
		n += " etcd: client and peer TLS with client certificate auth, its own auth off."
	}
	return n + "  \n"
}

// writesNote is the header's line on what one write is, for the kinds of
// system run.
func writesNote(systems []string) string {
	var parts []string
	if slices.ContainsFunc(systems, isRCTL) {
		parts = append(parts, "rctl Task.Add (msgpack RPC, one connection per client)")
	}
	if slices.Contains(systems, sysEtcd) {
		parts = append(parts, fmt.Sprintf("etcd Put of a %d-byte value (clientv3, one gRPC connection per client)", len(etcdValue)))
	}
	return "Writes: " + strings.Join(parts, "; ") + ".  \n"
}

func chartName(kind string, b *Bench) string {
	return fmt.Sprintf("peer-%s-%s%s.png", kind, b.Net.Name(), b.suffix())
}

// writeCharts draws the failover and throughput charts of a run, where
// the run measured them.
func writeCharts(b *Bench, dir string) error {
	order := b.names[:]
	if len(b.Failover) > 0 {
		p := filepath.Join(dir, chartName("failover", b))
		title := fmt.Sprintf("Failover, %s: kill -9 leader -> first committed write (%d rounds each)", b.label(), b.Plan.FailoverRounds)
		if err := failoverChart(p, title, order, b.Failover, failoverWithin); err != nil {
			return err
		}
		log.Printf("wrote %s", p)
	}
	if len(b.Throughput) > 0 {
		p := filepath.Join(dir, chartName("throughput", b))
		title := fmt.Sprintf("Throughput vs concurrent clients, %s (committed writes/s)", b.label())
		if err := throughputChart(p, title, order, b.Plan.Clients, b.Throughput); err != nil {
			return err
		}
		log.Printf("wrote %s", p)
	}
	return nil
}

// machine describes the machine: cores, CPU model, memory, kernel.
func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d cores (%s), %s, Linux %s", runtime.NumCPU(), model, mem, kernel)
}

// netNote describes the network and its measured round trips.
func netNote(nw Network) string {
	if nw.Name() == "loopback" {
		c := nw.Client()
		d, err := nw.RTT(c, c)
		if err != nil {
			return "loopback"
		}
		return fmt.Sprintf("every server and the client on 127.0.0.1 (TCP RTT %s)", fmtDur(d))
	}
	hosts, err := nw.Hosts(5)
	if err != nil {
		return nw.Name()
	}
	aws1, aws2, gcp1, gcp2 := hosts[0], hosts[1], hosts[3], hosts[4]
	pairs := []struct {
		label string
		a, b  Host
	}{{"client→aws", nw.Client(), aws1}, {"aws↔aws", aws1, aws2}, {"aws↔gcp", aws1, gcp1}, {"gcp↔gcp", gcp1, gcp2}, {"client→gcp", nw.Client(), gcp1}}
	var parts []string
	for _, p := range pairs {
		d, err := nw.RTT(p.a, p.b)
		if err != nil {
			parts = append(parts, p.label+" ?")
			continue
		}
		parts = append(parts, p.label+" "+fmtDur(d))
	}
	return "emulated two-cloud network (package fault: one namespace per server, user-space switch), 3 AWS + 2 GCP servers (3-server clusters: 2 AWS + 1 GCP), client in AWS; measured TCP RTT " + strings.Join(parts, ", ")
}
