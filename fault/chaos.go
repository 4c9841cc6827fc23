//go:build linux

package fault

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// ChaosConfig shapes a randomized nemesis session (Nemesis.Chaos).
type ChaosConfig struct {
	// Duration of the session: no new fault starts after it. Required.
	Duration time.Duration
	// Each fault is held for a random time in [MinHold, MaxHold]; default
	// 2 s and 10 s.
	MinHold, MaxHold time.Duration
	// After a fault is healed and the cluster settled, the session waits a
	// random time in [MinGap, MaxGap]; default 1 s and 5 s.
	MinGap, MaxGap time.Duration
	// SettleTimeout bounds the wait for a stable cluster after each heal;
	// default 30 s. A fault after which the cluster does not settle is
	// recorded with an error and the session goes on.
	SettleTimeout time.Duration
	// Logf, if set, is told about every fault as it happens.
	Logf func(format string, args ...any)
}

func (c *ChaosConfig) fill() {
	if c.MinHold == 0 {
		c.MinHold = 2 * time.Second
	}
	if c.MaxHold < c.MinHold {
		c.MaxHold = max(c.MinHold, 10*time.Second)
	}
	if c.MinGap == 0 {
		c.MinGap = time.Second
	}
	if c.MaxGap < c.MinGap {
		c.MaxGap = max(c.MinGap, 5*time.Second)
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 30 * time.Second
	}
}

// FaultRecord is one fault of a chaos session.
type FaultRecord struct {
	Kind   string // e.g. "kill-leader", "bridge", "loss"
	Detail string // what exactly, e.g. "kill -9 aws2 (the leader)"
	// Start is when the fault was injected, End when it was healed (for a
	// kill: the restart).
	Start, End time.Time
	// Settled is how long after End the cluster was stable again (one
	// leader followed and caught up by every running server), or -1.
	Settled time.Duration
	// Err says why the cluster did not settle, if it did not.
	Err string
	// Writes is filled by the caller: what writes did during the fault.
	Writes string
}

// chaosFault injects one fault and returns its description and the
// function that heals it.
type chaosFault struct {
	kind   string
	weight int
	inject func(n *Nemesis) (detail string, heal func())
}

// ChaosKinds lists the faults a chaos session chooses from, with their
// relative weights.
func ChaosKinds() map[string]int {
	out := map[string]int{}
	for _, f := range chaosFaults {
		out[f.kind] = f.weight
	}
	return out
}

var chaosFaults = []chaosFault{
	{"kill-leader", 6, func(n *Nemesis) (string, func()) {
		sv := n.leaderOrRandom()
		n.Kill(sv)
		return "kill -9 " + sv.Name + n.role(sv), func() { n.Restart(sv) }
	}},
	{"kill-follower", 3, func(n *Nemesis) (string, func()) {
		sv := n.randomFollower()
		n.Kill(sv)
		return "kill -9 " + sv.Name + n.role(sv), func() { n.Restart(sv) }
	}},
	{"pause-leader", 4, func(n *Nemesis) (string, func()) {
		sv := n.leaderOrRandom()
		_ = n.Pause(sv)
		return "SIGSTOP " + sv.Name + n.role(sv), func() { _ = n.Resume(sv) }
	}},
	{"pause-random", 2, func(n *Nemesis) (string, func()) {
		sv := n.Random()
		_ = n.Pause(sv)
		return "SIGSTOP " + sv.Name + n.role(sv), func() { _ = n.Resume(sv) }
	}},
	{"isolate-leader", 4, func(n *Nemesis) (string, func()) {
		sv := n.leaderOrRandom()
		n.Isolate(sv)
		return "isolate " + sv.Name + n.role(sv), n.Heal
	}},
	{"isolate-random", 2, func(n *Nemesis) (string, func()) {
		sv := n.Random()
		n.Isolate(sv)
		return "isolate " + sv.Name + n.role(sv), n.Heal
	}},
	{"partition", 4, func(n *Nemesis) (string, func()) {
		svs := n.shuffled()
		k := (len(svs) - 1) / 2 // a minority
		a, b := n.withOthers(svs[:k], svs[k:])
		n.Partition(a, b)
		return fmt.Sprintf("partition %v | %v", a, b), n.Heal
	}},
	{"cloud-split", 2, func(n *Nemesis) (string, func()) {
		n.CloudSplit()
		return "cloud split", n.Heal
	}},
	{"bridge", 4, func(n *Nemesis) (string, func()) {
		svs := n.shuffled()
		bridge, rest := svs[0], svs[1:]
		a, b := n.withOthers(rest[:len(rest)/2], rest[len(rest)/2:])
		n.Bridge(bridge.Name, a, b)
		return fmt.Sprintf("bridge %s%s between %v and %v", bridge.Name, n.role(bridge), a, b), n.Heal
	}},
	{"loss", 4, func(n *Nemesis) (string, func()) {
		p := float64(5+n.rng.IntN(11)) / 100 // 5–15 %
		nodes := n.NodeNames()
		n.LinkLoss(p, nodes...)
		return fmt.Sprintf("%.0f%% loss per link, everywhere", 100*p), func() { n.LinkLoss(0, nodes...) }
	}},
	{"spike", 4, func(n *Nemesis) (string, func()) {
		d := time.Duration(100+n.rng.IntN(501)) * time.Millisecond // +100–600 ms one way
		var nodes []string
		var on string
		switch n.rng.IntN(3) {
		case 0:
			sv := n.leaderOrRandom()
			nodes, on = []string{sv.Name}, sv.Name+n.role(sv)
		case 1:
			sv := n.Random()
			nodes, on = []string{sv.Name}, sv.Name+n.role(sv)
		default:
			cloud := []string{"aws", "gcp"}[n.rng.IntN(2)]
			nodes, on = append(Names(InCloud(n.C.Servers, cloud)), "c-"+cloud), "the "+cloud+" cloud"
		}
		n.Spike(d, nodes...)
		return fmt.Sprintf("+%s one way on %s", d, on), func() { n.Spike(0, nodes...) }
	}},
	{"kill-agent", 2, func(n *Nemesis) (string, func()) {
		if len(n.C.Agents) == 0 {
			return "no agents: nothing killed", func() {}
		}
		a := n.C.Agents[n.rng.IntN(len(n.C.Agents))]
		n.Mon.Note("nemesis: kill -9 agent %s", a.Name)
		a.Kill()
		return "kill -9 agent " + a.Name, func() {
			n.Mon.Note("nemesis: restart agent %s", a.Name)
			n.C.StartAgent(a)
		}
	}},
	{"restart-all", 1, func(n *Nemesis) (string, func()) {
		for _, sv := range n.C.Servers {
			n.Kill(sv)
		}
		return "kill -9 every server", func() {
			for _, sv := range n.C.Servers {
				n.Restart(sv)
			}
		}
	}},
}

// Chaos injects random faults, one at a time, until cfg.Duration has
// passed: each is chosen from ChaosKinds by the nemesis's seed, held for
// a random time, healed, and followed by a wait for a stable cluster and
// a random pause. Faults are noted on the monitor's timeline. It returns
// the record of every fault. The choices (which fault, which role, which
// parameters) follow the seed; which server has a role (the leader)
// depends on the run.
func (n *Nemesis) Chaos(cfg ChaosConfig) []FaultRecord {
	cfg.fill()
	total := 0
	for _, f := range chaosFaults {
		total += f.weight
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var out []FaultRecord
	deadline := time.Now().Add(cfg.Duration)
	for time.Now().Before(deadline) {
		f := n.pick(total)
		hold := n.between(cfg.MinHold, cfg.MaxHold)
		rec := FaultRecord{Kind: f.kind, Start: time.Now()}
		detail, heal := f.inject(n)
		rec.Detail = fmt.Sprintf("%s, held %s", detail, hold.Round(100*time.Millisecond))
		logf("chaos: %s: %s", f.kind, rec.Detail)
		time.Sleep(hold)
		heal()
		rec.End = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), cfg.SettleTimeout)
		_, err := n.Mon.WaitStable(ctx)
		cancel()
		rec.Settled = time.Since(rec.End)
		if err != nil {
			rec.Settled, rec.Err = -1, err.Error()
			logf("chaos: %s: not settled %s after the heal: %v", f.kind, cfg.SettleTimeout, err)
		} else {
			logf("chaos: %s healed, settled after %s", f.kind, rec.Settled.Round(time.Millisecond))
		}
		out = append(out, rec)
		gap := n.between(cfg.MinGap, cfg.MaxGap)
		time.Sleep(min(gap, max(time.Until(deadline), 0)))
	}
	return out
}

// Calm undoes every fault the nemesis can leave behind: cuts, loss,
// spikes, paused and killed servers, killed agents.
func (n *Nemesis) Calm() {
	n.Heal()
	nodes := n.NodeNames()
	n.C.Net.Switch.SetLoss(0, nodes...)
	n.C.Net.Switch.AddDelay(0, nodes...)
	n.C.Net.Switch.ClearLinkDelays()
	for _, sv := range n.C.Servers {
		if sv.Paused() {
			_ = n.Resume(sv)
		}
		if !sv.Running() {
			n.Restart(sv)
		}
	}
	for _, a := range n.C.Agents {
		if !a.Running() {
			n.C.StartAgent(a)
		}
	}
}

func (n *Nemesis) pick(total int) chaosFault {
	r := n.rng.IntN(total)
	for _, f := range chaosFaults {
		if r < f.weight {
			return f
		}
		r -= f.weight
	}
	return chaosFaults[0]
}

func (n *Nemesis) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)+1))
}

// leaderOrRandom is the current leader, or a random running server when
// none is stable within 5 s.
func (n *Nemesis) leaderOrRandom() *Server {
	if l, err := n.Leader(5 * time.Second); err == nil && l != nil {
		return l
	}
	return n.Random()
}

func (n *Nemesis) randomFollower() *Server {
	l, _ := n.Mon.Leader()
	var fs []*Server
	for _, sv := range n.C.Servers {
		if sv.Name != l && sv.Running() {
			fs = append(fs, sv)
		}
	}
	if len(fs) == 0 {
		return n.Random()
	}
	return fs[n.rng.IntN(len(fs))]
}

// role says " (leader)" for the current leader.
func (n *Nemesis) role(sv *Server) string {
	if l, _ := n.Mon.Leader(); l == sv.Name {
		return " (leader)"
	}
	return ""
}

// shuffled returns the servers in a seed-determined order.
func (n *Nemesis) shuffled() []*Server {
	svs := slices.Clone(n.C.Servers)
	n.rng.Shuffle(len(svs), func(i, j int) { svs[i], svs[j] = svs[j], svs[i] })
	return svs
}

// withOthers turns two groups of servers into partition groups and puts
// every other node (clients, agents) on a random side.
func (n *Nemesis) withOthers(a, b []*Server) ([]string, []string) {
	ga, gb := Names(a), Names(b)
	for _, node := range n.NodeNames() {
		if n.C.Server(node) != nil {
			continue
		}
		if n.rng.IntN(2) == 0 {
			ga = append(ga, node)
		} else {
			gb = append(gb, node)
		}
	}
	return ga, gb
}
