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
	return b.failoverScenario(false)
}

// FreezeScenario is FailoverScenario with the leader frozen (SIGSTOP)
// instead of killed: no connection closes and no port refuses, so the
// survivors learn of the failure only by their timeouts, as with a hung
// host or a partition. The frozen leader is killed and restarted after
// the round.
func (b *Bench) FreezeScenario() (*Table, error) {
	return b.failoverScenario(true)
}

func (b *Bench) failoverScenario(freeze bool) (*Table, error) {
	var t *Table
	if freeze {
		t = b.table(fmt.Sprintf("Failover, leader frozen: SIGSTOP the leader → first committed write (%s, 5 servers, %d rounds)", b.label(), b.Plan.FailoverRounds),
			"As above, but the leader is frozen, not killed: its connections stay open and its port accepts, as with a hung host or a partition, so no server learns of the failure before its timeouts. The frozen leader is killed and restarted after each round. Lower is better.")
	} else {
		t = b.table(fmt.Sprintf("Failover: kill -9 the leader → first committed write (%s, 5 servers, %d rounds)", b.label(), b.Plan.FailoverRounds),
			"A write is tried through every survivor every 50 ms from the kill on; the victim restarts between rounds. Lower is better.")
	}
	res := map[string]*failoverRun{}
	for _, sys := range b.Systems {
		r, err := b.failover(sys, freeze)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sys.Name(), err)
		}
		res[sys.Name()] = r
		if !freeze {
			b.Failover[sys.Name()] = r.took
		}
	}
	var x, y []time.Duration
	if fr := res[b.names[0]]; fr != nil {
		x = fr.took
	}
	if fr := res[b.names[1]]; fr != nil {
		y = fr.took
	}
	t.DurRow("p50", pct(x, .5), pct(y, .5), 0)
	t.DurRow("p99", pct(x, .99), pct(y, .99), 0)
	t.DurRow("max", pct(x, 1), pct(y, 1), 0)
	stuck := func(name string) int {
		if fr := res[name]; fr != nil {
			return fr.stuck
		}
		return 0
	}
	if xs, ys := stuck(b.names[0]), stuck(b.names[1]); xs+ys > 0 {
		t.Rows = append(t.Rows, [5]string{fmt.Sprintf("rounds with no write within %s (counted as %s)", fmtDur(failoverWithin), fmtDur(failoverWithin)),
			fmt.Sprint(xs), fmt.Sprint(ys), "—", "—"})
	}
	if b.Net.Name() != "loopback" {
		for _, sys := range b.Systems {
			fr := res[sys.Name()]
			t.Notes = append(t.Notes, fmt.Sprintf("%s: victims by cloud %s; new leader by cloud %s.", sys.Name(), fmtCounts(fr.victims), fmtCounts(fr.newLeader)))
		}
	}
	return t, nil
}

func (b *Bench) failover(sys System, freeze bool) (_ *failoverRun, err error) {
	verb, kind := "kill -9", "kill"
	if freeze {
		verb, kind = "SIGSTOP", "freeze"
	}
	c, err := b.start(sys, 5, StartOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { b.stop(c, err) }()
	fr := &failoverRun{victims: map[string]int{}, newLeader: map[string]int{}}
	procs := c.Procs()
	for round := range b.Plan.FailoverRounds {
		l, ws, err := b.roundStart(c, round, 2*failoverWithin)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		log.Printf("  %s failover round %d: %s %s at %s", sys.Name(), round+1, verb, procs[l].Host.Name, t0.Format("15:04:05.000"))
		if freeze {
			if err := procs[l].Freeze(); err != nil {
				closeAll(ws)
				return nil, err
			}
		} else {
			procs[l].Kill()
		}
		d, err := firstWrite(ws, t0, b.Plan.Attempt, failoverWithin)
		closeAll(ws)
		if err != nil {
			log.Printf("  %s failover round %d: %v", sys.Name(), round+1, err)
			b.keepLogs(c, fmt.Sprintf("%s-failover-round%d", sys.Name(), round+1))
			d = failoverWithin
			fr.stuck++
		}
		if err == nil && b.KeepSlow > 0 && d > b.KeepSlow {
			b.keepLogs(c, fmt.Sprintf("%s-slow-%s-round%d", sys.Name(), kind, round+1))
		}
		fr.took = append(fr.took, d)
		fr.victims[procs[l].Host.Cloud]++
		procs[l].Kill() // a frozen leader (a killed one is gone already): it must not hold up the status polls below
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

// warmWrite makes one write through w, retrying (a leadership change may
// be under way, e.g. leader placement) until within has passed.
// roundStart readies a failover-style round: every server caught up
// (within caughtUp), the settle pause, the leader found, and a writer to
// each survivor whose connection is warmed with a write, as a client that
// has been running would have. The caller closes the writers.
func (b *Bench) roundStart(c Cluster, round int, caughtUp time.Duration) (leader int, ws []Writer, err error) {
	if err := waitCaughtUp(c, caughtUp); err != nil {
		return 0, nil, fmt.Errorf("round %d: %w", round+1, err)
	}
	time.Sleep(b.Plan.Settle)
	l, err := waitLeader(c, 10*time.Second)
	if err != nil {
		return 0, nil, fmt.Errorf("round %d: %w", round+1, err)
	}
	if ws, err = writers(c, others(len(c.Procs()), l)); err != nil {
		return 0, nil, err
	}
	for _, w := range ws {
		if err := warmWrite(w, 10*time.Second); err != nil {
			closeAll(ws)
			return 0, nil, fmt.Errorf("round %d: warm-up write: %w", round+1, err)
		}
	}
	return l, ws, nil
}

func warmWrite(w Writer, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
		err := w.Write(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
