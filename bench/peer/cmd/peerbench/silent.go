package main

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"
)

// SilentScenario (issue 16): the leader's host is cut off by the network,
// not killed. Each round the current leader's host is isolated on the
// emulated network (every packet to and from it dropped, both ways; no
// RST, no FIN: its connections stay open, as for a VM whose network died)
// and the figure is the time to the first write acknowledged to the client
// in AWS through the live servers, as in failover and freeze. Then the
// host is healed and the round waits until every server, the old leader
// included, follows one leader and has caught up (that time is reported
// too) before the next round. Only on a Network that can cut a host
// (wan); RunOne skips it elsewhere.
func (b *Bench) SilentScenario() (*Table, error) {
	cut, ok := b.Net.(hostCutter)
	if !ok {
		return nil, fmt.Errorf("the %s network cannot cut a host off", b.Net.Name())
	}
	res := map[string]*silentRun{}
	var order []string
	timing := map[string]string{}
	for _, sys := range b.Systems {
		r, err := b.silent(sys, cut)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sys.Name(), err)
		}
		res[sys.Name()] = r
		order = append(order, sys.Name())
		timing[sys.Name()] = sys.Timing()
	}
	t := silentTable(b.label(), b.Plan.FailoverRounds, order, timing, res)
	return t, nil
}

// silentRound is one round of the silent scenario for one system.
type silentRound struct {
	Victim, VictimCloud string
	// Took: cut → first acknowledged write; failoverWithin when none came
	// (Stuck).
	Took  time.Duration
	Stuck bool
	// NewLeader is the server that led after the write (a survivor), ""
	// when none was seen within newLeaderWithin.
	NewLeader, NewCloud string
	// Rejoin: heal → every server (the old leader included) follows one
	// leader and has applied its commit index; 0 when that did not happen
	// within rejoinWithin.
	Rejoin time.Duration
	// Relead: the old leader was the leader again when the cluster had
	// caught up after the heal (it did not stay a follower).
	Relead bool
}

// silentRun is what one system did in the silent scenario.
type silentRun struct {
	Rounds []silentRound
	// Aborted says why the rounds stopped early ("" if they did not).
	Aborted string
}

const (
	newLeaderWithin = 10 * time.Second
	rejoinWithin    = 2 * failoverWithin
)

// took lists the rounds' times to the first write.
func (r *silentRun) took() []time.Duration {
	var out []time.Duration
	for _, rd := range r.Rounds {
		out = append(out, rd.Took)
	}
	return out
}

// counts tallies the rounds: stuck (no write), no new leader seen, the
// victims and the new leaders by cloud, the rejoin times and how often the
// old leader led again.
func (r *silentRun) counts() (stuck, leaderless int, victims, newLeader map[string]int, rejoin []time.Duration, relead int) {
	victims, newLeader = map[string]int{}, map[string]int{}
	for _, rd := range r.Rounds {
		victims[rd.VictimCloud]++
		if rd.Stuck {
			stuck++
		}
		if rd.NewLeader == "" {
			leaderless++
		} else {
			newLeader[rd.NewCloud]++
		}
		if rd.Rejoin > 0 {
			rejoin = append(rejoin, rd.Rejoin)
		}
		if rd.Relead {
			relead++
		}
	}
	return
}

// cell prints one round for the per-round table: "aws1 → aws2, 1.57 s".
func (rd silentRound) cell() string {
	nl := rd.NewLeader
	if nl == "" {
		nl = "none seen"
	}
	took := fmtDur(rd.Took)
	if rd.Stuck {
		took = "no write within " + fmtDur(failoverWithin)
	}
	s := fmt.Sprintf("%s → %s, %s", rd.Victim, nl, took)
	switch {
	case rd.Rejoin == 0:
		s += "; old leader not back"
	case rd.Relead:
		s += "; old leader led again"
	}
	return s
}

// silentTable renders the scenario: the usual rows of the two columns'
// systems (columns(order)) and their ratio, then the per-system
// table (with each system's timing settings and the new leader's cloud)
// and one line per round. order lists the systems run, in order.
func silentTable(label string, rounds int, order []string, timing map[string]string, res map[string]*silentRun) *Table {
	names := columns(order)
	t := &Table{Names: names, Title: fmt.Sprintf("Failover, leader cut off: isolate the leader's host on the network → first committed write (%s, 5 servers, %d rounds)", label, rounds),
		Notes: []string{"Each round the leader's host is cut off the emulated network: every packet to or from it dropped, both ways, with no RST or FIN, so its connections stay open (a VM whose network died); the process runs on. A write is tried through every live server every 50 ms from the cut on, from the client in AWS; the first acknowledged one ends the round. Then the host is healed and the next round waits until the old leader follows and every server has caught up. Lower is better."}}
	get := func(name string) *silentRun {
		if r := res[name]; r != nil {
			return r
		}
		return &silentRun{}
	}
	x, y := get(names[0]), get(names[1])
	xt, yt := x.took(), y.took()
	t.DurRow("p50", pct(xt, .5), pct(yt, .5), 0)
	t.DurRow("p99", pct(xt, .99), pct(yt, .99), 0)
	t.DurRow("max", pct(xt, 1), pct(yt, 1), 0)
	xs, xl, _, _, xj, _ := x.counts()
	ys, yl, _, _, yj, _ := y.counts()
	if xs+ys > 0 {
		t.Rows = append(t.Rows, [5]string{fmt.Sprintf("rounds with no write within %s (counted as %s)", fmtDur(failoverWithin), fmtDur(failoverWithin)),
			fmt.Sprint(xs), fmt.Sprint(ys), "—", "—"})
	}
	if xl+yl > 0 {
		t.Rows = append(t.Rows, [5]string{fmt.Sprintf("rounds with no new leader seen within %s", fmtDur(newLeaderWithin)),
			fmt.Sprint(xl), fmt.Sprint(yl), "—", "—"})
	}
	t.DurRow("heal → old leader following, all caught up, p50", pct(xj, .5), pct(yj, .5), 0)
	t.DurRow("heal → old leader following, all caught up, max", pct(xj, 1), pct(yj, 1), 0)

	var sum strings.Builder
	sum.WriteString("| system | p50 | p99 | max | new leader's cloud | victims' cloud | old leader back as follower |\n|---|---:|---:|---:|---|---|---|\n")
	for _, name := range order {
		run := get(name)
		took := run.took()
		_, _, victims, newLeader, rejoin, relead := run.counts()
		back := fmt.Sprintf("%d of %d rounds", len(rejoin)-relead, len(run.Rounds))
		if len(rejoin) > 0 {
			back += fmt.Sprintf(" (heal → caught up p50 %s, max %s)", fmtDur(pct(rejoin, .5)), fmtDur(pct(rejoin, 1)))
		}
		if relead > 0 {
			back += fmt.Sprintf("; led again in %d", relead)
		}
		sys := name
		if tm := timing[name]; tm != "" {
			sys = fmt.Sprintf("%s, `%s`", name, tm)
		}
		fmt.Fprintf(&sum, "| %s | %s | %s | %s | %s | %s | %s |\n", sys, fmtDur(pct(took, .5)), fmtDur(pct(took, .99)), fmtDur(pct(took, 1)),
			orDash(fmtCounts(newLeader)), orDash(fmtCounts(victims)), back)
	}
	if len(order) == 2 {
		fmt.Fprintf(&sum, "| %s ÷ %s | %s | %s | %s | | | |\n", names[0], names[1], ratio(float64(pct(xt, .5)), float64(pct(yt, .5))),
			ratio(float64(pct(xt, .99)), float64(pct(yt, .99))), ratio(float64(pct(xt, 1)), float64(pct(yt, 1))))
	}
	t.After = append(t.After, sum.String())

	n := 0
	for _, name := range order {
		n = max(n, len(get(name).Rounds))
	}
	if n > 0 {
		var per strings.Builder
		per.WriteString("Per round: old leader → new leader, cut → first committed write.\n\n| round |")
		for _, name := range order {
			per.WriteString(" " + name + " |")
		}
		per.WriteString("\n|---:|")
		for range order {
			per.WriteString("---|")
		}
		per.WriteString("\n")
		for i := range n {
			fmt.Fprintf(&per, "| %d |", i+1)
			for _, name := range order {
				c := "—"
				if rds := get(name).Rounds; i < len(rds) {
					c = rds[i].cell()
				}
				per.WriteString(" " + c + " |")
			}
			per.WriteString("\n")
		}
		t.After = append(t.After, per.String())
	}
	for _, name := range order {
		if a := get(name).Aborted; a != "" {
			t.Notes = append(t.Notes, fmt.Sprintf("%s: rounds stopped early: %s.", name, a))
		}
	}
	return t
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// silent runs the rounds of the silent scenario for one system on a fresh
// 5-server cluster.
func (b *Bench) silent(sys System, cut hostCutter) (_ *silentRun, err error) {
	c, err := b.start(sys, 5, StartOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if herr := cut.Heal(); herr != nil && err == nil {
			err = herr
		}
		b.stop(c, err)
	}()
	run := &silentRun{}
	procs := c.Procs()
	for round := range b.Plan.FailoverRounds {
		l, ws, err := b.roundStart(c, round, rejoinWithin)
		if err != nil {
			return nil, err
		}
		victim := procs[l].Host
		rd := silentRound{Victim: victim.Name, VictimCloud: victim.Cloud}
		t0 := time.Now()
		log.Printf("  %s silent round %d: cut %s off at %s", sys.Name(), round+1, victim.Name, t0.Format("15:04:05.000"))
		if err := cut.Isolate(victim); err != nil {
			closeAll(ws)
			return nil, err
		}
		d, werr := firstWrite(ws, t0, b.Plan.Attempt, failoverWithin)
		closeAll(ws)
		if werr != nil {
			log.Printf("  %s silent round %d: %v", sys.Name(), round+1, werr)
			b.keepLogs(c, fmt.Sprintf("%s-silent-round%d", sys.Name(), round+1))
			d, rd.Stuck = failoverWithin, true
		} else if b.KeepSlow > 0 && d > b.KeepSlow {
			b.keepLogs(c, fmt.Sprintf("%s-slow-silent-round%d", sys.Name(), round+1))
		}
		rd.Took = d
		if nl, err := waitLeaderOther(c, l, newLeaderWithin); err == nil {
			rd.NewLeader, rd.NewCloud = procs[nl].Host.Name, procs[nl].Host.Cloud
		} else {
			log.Printf("  %s silent round %d: no new leader among the survivors: %v", sys.Name(), round+1, err)
		}
		if err := cut.Heal(); err != nil {
			return nil, err
		}
		healed := time.Now()
		if err := waitCaughtUp(c, rejoinWithin); err != nil {
			log.Printf("  %s silent round %d: after the heal: %v", sys.Name(), round+1, err)
			b.keepLogs(c, fmt.Sprintf("%s-silent-rejoin-round%d", sys.Name(), round+1))
			run.Rounds = append(run.Rounds, rd)
			run.Aborted = fmt.Sprintf("round %d: %s did not rejoin after the heal (%v)", round+1, victim.Name, err)
			return run, nil
		}
		rd.Rejoin = time.Since(healed)
		if nl, err := waitLeader(c, 10*time.Second); err == nil && nl == l {
			rd.Relead = true
		}
		run.Rounds = append(run.Rounds, rd)
		log.Printf("  %s silent round %d/%d: %s → %s, first write after %s; healed, all caught up after %s",
			sys.Name(), round+1, b.Plan.FailoverRounds, rd.Victim, orDash(rd.NewLeader), fmtDur(d), fmtDur(rd.Rejoin))
	}
	return run, nil
}

// waitLeaderOther polls Leader until a server other than old leads (the
// old leader, cut off, may still say it leads in its old term until it
// steps down; Leader prefers the highest term) or within passes.
func waitLeaderOther(c Cluster, old int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		l, err := c.Leader(ctx)
		cancel()
		if err == nil && l != old {
			return l, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("only the old leader says it leads")
			}
			return -1, fmt.Errorf("no other leader within %s: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
