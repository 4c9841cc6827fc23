package main

import (
	"fmt"
	"time"
)

// The scenarios, one file each: coldstart.go, failover.go (kill -9 and
// SIGSTOP), silent.go (the leader's host cut off the network), latency.go
// (with leader placement), throughput.go. Bench.RunAll (bench.go) runs them.

// ColdStart: processes started → first committed write, for fresh
// clusters of 3 and 5 servers.
func (b *Bench) ColdStart() (*Table, error) {
	t := &Table{Title: fmt.Sprintf("Cold start → first committed write (%s, %d rounds)", b.label(), b.Plan.ColdRounds),
		Notes: []string{"From starting the server processes to the first acknowledged write (a write is tried through every server every 50 ms). Lower is better."}}
	if b.Security == secTLS {
		t.Notes = append(t.Notes, "TLS: rctl's first write is ACL.Bootstrap (a Raft write) then Task.Add with the new token, as an operator's first use of a fresh secure cluster; etcd's is a Put.")
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
		r, e := res["rctl"], res["etcd"]
		t.DurRow(fmt.Sprintf("%d servers, p50", n), pct(r, .5), pct(e, .5), 0)
		t.DurRow(fmt.Sprintf("%d servers, max", n), pct(r, 1), pct(e, 1), 0)
	}
	return t, nil
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
