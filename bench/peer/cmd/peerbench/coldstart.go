package main

import (
	"fmt"
	"slices"
	"time"
)

// The scenarios, one file each: coldstart.go, failover.go (kill -9 and
// SIGSTOP), silent.go (the leader's host cut off the network), latency.go
// (with leader placement), throughput.go. Bench.RunAll (bench.go) runs them.

// ColdStart: processes started → first committed write, for fresh
// clusters of 3 and 5 servers.
func (b *Bench) ColdStart() (*Table, error) {
	t := b.table(fmt.Sprintf("Cold start → first committed write (%s, %d rounds)", b.label(), b.Plan.ColdRounds),
		"From starting the server processes to the first acknowledged write (a write is tried through every server every 50 ms). Lower is better.")
	if n := coldTLSNote(b.systemNames()); b.Security == secTLS && n != "" {
		t.Notes = append(t.Notes, n)
	}
	for _, n := range []int{3, 5} {
		res := map[string][]time.Duration{}
		for _, sys := range b.Systems {
			for round := range b.Plan.ColdRounds {
				d, err := b.coldOnce(sys, n)
				if err != nil {
					return nil, fmt.Errorf("%s, %d servers, round %d: %w", sys.Name(), n, round+1, err)
				}
				res[sys.Name()] = append(res[sys.Name()], d)
			}
		}
		x, y := pair(res, b.names)
		t.DurRow(fmt.Sprintf("%d servers, p50", n), pct(x, .5), pct(y, .5), 0)
		t.DurRow(fmt.Sprintf("%d servers, max", n), pct(x, 1), pct(y, 1), 0)
	}
	return t, nil
}

// coldTLSNote says what the first write is with TLS for the systems run:
// rctl's has an extra Raft write (etcd's, a Put, is said only beside it).
func coldTLSNote(systems []string) string {
	if !slices.ContainsFunc(systems, isRCTL) {
		return ""
	}
	n := "TLS: rctl's first write is ACL.Bootstrap (a Raft write) then Task.Add with the new token, as an operator's first use of a fresh secure cluster"
	if slices.Contains(systems, sysEtcd) {
		n += "; etcd's is a Put"
	}
	return n + "."
}

func (b *Bench) coldOnce(sys System, n int) (d time.Duration, err error) {
	t0 := time.Now()
	c, err := b.start(sys, n, StartOptions{})
	if err != nil {
		return 0, err
	}
	defer func() { b.stop(c, err) }()
	ws, err := writers(c, others(n, -1))
	if err != nil {
		return 0, err
	}
	defer closeAll(ws)
	return firstWrite(ws, t0, b.Plan.Attempt, 60*time.Second)
}
