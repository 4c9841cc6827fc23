package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"
	"time"
)

// failoverRun is what one system did in the failover scenario.
type failoverRun struct {
	took               []time.Duration // a round without a write counts as failoverWithin
	stuck              int             // rounds without a write within failoverWithin
	victims, newLeader map[string]int  // by cloud
}

// failoverWithin bounds one failover round. A round that sees no write by
// then is counted (at this value) and the scenario goes on.
const failoverWithin = 60 * time.Second

// FailoverScenario: kill -9 the leader of 5 servers, time until a write
// is acknowledged through the survivors; the victim is restarted and the
// cluster caught up between rounds.
func (b *Bench) FailoverScenario() (*Table, error) {
	t := &Table{Title: fmt.Sprintf("Failover: kill -9 the leader → first committed write (%s, 5 servers, %d rounds)", b.Net.Name(), b.Plan.FailoverRounds),
		Notes: []string{"A write is tried through every survivor every 50 ms from the kill on; the victim restarts between rounds. Lower is better."}}
	res := map[string]*failoverRun{}
	for _, sys := range b.Systems {
		r, err := b.failover(sys)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sys.Name(), err)
		}
		res[sys.Name()] = r
		b.Failover[sys.Name()] = r.took
	}
	var r, e []time.Duration
	if fr := res["rctl"]; fr != nil {
		r = fr.took
	}
	if fr := res["etcd"]; fr != nil {
		e = fr.took
	}
	t.DurRow("p50", pct(r, .5), pct(e, .5), 0)
	t.DurRow("p99", pct(r, .99), pct(e, .99), 0)
	t.DurRow("max", pct(r, 1), pct(e, 1), 0)
	stuck := func(name string) int {
		if fr := res[name]; fr != nil {
			return fr.stuck
		}
		return 0
	}
	if rs, es := stuck("rctl"), stuck("etcd"); rs+es > 0 {
		t.Rows = append(t.Rows, [5]string{fmt.Sprintf("rounds with no write within %s (counted as %s)", fmtDur(failoverWithin), fmtDur(failoverWithin)),
			fmt.Sprint(rs), fmt.Sprint(es), "—", "—"})
	}
	if b.Net.Name() != "loopback" {
		for _, sys := range b.Systems {
			fr := res[sys.Name()]
			t.Notes = append(t.Notes, fmt.Sprintf("%s: victims by cloud %s; new leader by cloud %s.", sys.Name(), fmtCounts(fr.victims), fmtCounts(fr.newLeader)))
		}
	}
	return t, nil
}

func (b *Bench) failover(sys System) (_ *failoverRun, err error) {
	c, err := b.start(sys, 5, StartOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { b.stop(c, err) }()
	fr := &failoverRun{victims: map[string]int{}, newLeader: map[string]int{}}
	procs := c.Procs()
	for round := range b.Plan.FailoverRounds {
		if err := waitCaughtUp(c, 2*failoverWithin); err != nil {
			return nil, fmt.Errorf("round %d: %w", round+1, err)
		}
		time.Sleep(b.Plan.Settle)
		l, err := waitLeader(c, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", round+1, err)
		}
		ws, err := writers(c, others(len(procs), l))
		if err != nil {
			return nil, err
		}
		// Warm every survivor's connection with a write, as a client
		// that has been running would have.
		for _, w := range ws {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := w.Write(ctx)
			cancel()
			if err != nil {
				closeAll(ws)
				return nil, fmt.Errorf("round %d: warm-up write: %w", round+1, err)
			}
		}
		t0 := time.Now()
		log.Printf("  %s failover round %d: kill -9 %s at %s", sys.Name(), round+1, procs[l].Host.Name, t0.Format("15:04:05.000"))
		procs[l].Kill()
		d, err := firstWrite(ws, t0, b.Plan.Attempt, failoverWithin)
		closeAll(ws)
		if err != nil {
			log.Printf("  %s failover round %d: %v", sys.Name(), round+1, err)
			b.keepLogs(c, fmt.Sprintf("%s-failover-round%d", sys.Name(), round+1))
			d = failoverWithin
			fr.stuck++
		}
		if err == nil && b.KeepSlow > 0 && d > b.KeepSlow {
			b.keepLogs(c, fmt.Sprintf("%s-slow-round%d", sys.Name(), round+1))
		}
		fr.took = append(fr.took, d)
		fr.victims[procs[l].Host.Cloud]++
		if nl, err := waitLeader(c, 10*time.Second); err == nil {
			fr.newLeader[procs[nl].Host.Cloud]++
		}
		log.Printf("  %s failover round %d/%d: first write after %s", sys.Name(), round+1, b.Plan.FailoverRounds, fmtDur(d))
		if err := procs[l].Start(); err != nil {
			return nil, err
		}
	}
	return fr, nil
}

// fmtCounts prints {"aws": 3, "gcp": 1} as "aws 3, gcp 1".
func fmtCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
