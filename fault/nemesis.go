//go:build linux

package fault

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Nemesis injects faults into a cluster and notes each one on the
// monitor's timeline. Process faults: Kill (kill -9), Pause/Resume
// (SIGSTOP/SIGCONT), Restart (from the data dir). Network faults act on
// the switch: Isolate, Partition (any groups, including a bridge node in
// two groups), CloudSplit, Loss, Spike; Heal removes every cut.
type Nemesis struct {
	C   *Cluster
	Mon *Monitor
	rng *rand.Rand
}

// NewNemesis returns a nemesis whose random choices follow seed.
func NewNemesis(c *Cluster, m *Monitor, seed uint64) *Nemesis {
	return &Nemesis{C: c, Mon: m, rng: rand.New(rand.NewPCG(seed, 0xfa017))}
}

// Leader waits (up to within) for the current leader.
func (n *Nemesis) Leader(within time.Duration) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	name, err := n.Mon.WaitStable(ctx)
	if err != nil {
		return nil, err
	}
	return n.C.Server(name), nil
}

// Followers are the running servers other than the current leader.
func (n *Nemesis) Followers(leader *Server) []*Server {
	var out []*Server
	for _, sv := range n.C.Servers {
		if sv != leader && sv.Running() {
			out = append(out, sv)
		}
	}
	return out
}

// Random picks one running server.
func (n *Nemesis) Random() *Server {
	var live []*Server
	for _, sv := range n.C.Servers {
		if sv.Running() {
			live = append(live, sv)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[n.rng.IntN(len(live))]
}

// Kill kill -9s a server.
func (n *Nemesis) Kill(sv *Server) {
	n.Mon.Note("nemesis: kill -9 %s", sv.Name)
	sv.Kill()
}

// Restart starts a killed server again on its data dir.
func (n *Nemesis) Restart(sv *Server) {
	n.Mon.Note("nemesis: restart %s", sv.Name)
	n.C.Start(sv)
}

// Pause freezes a server with SIGSTOP.
func (n *Nemesis) Pause(sv *Server) error {
	n.Mon.Note("nemesis: SIGSTOP %s", sv.Name)
	return sv.Pause()
}

// Resume thaws a paused server with SIGCONT.
func (n *Nemesis) Resume(sv *Server) error {
	n.Mon.Note("nemesis: SIGCONT %s", sv.Name)
	return sv.Resume()
}

// Isolate cuts one server off from every server and client.
func (n *Nemesis) Isolate(sv *Server) {
	n.Mon.Note("nemesis: isolate %s", sv.Name)
	n.C.Net.Switch.Isolate(sv.Name)
}

// Partition cuts the network into groups of node names (servers and
// clients); see Switch.Partition for nodes in no group or in two.
func (n *Nemesis) Partition(groups ...[]string) {
	n.Mon.Note("nemesis: partition %v", groups)
	n.C.Net.Switch.Partition(groups...)
}

// CloudSplit cuts every link between clouds, for servers and clients.
func (n *Nemesis) CloudSplit() {
	byCloud := map[string][]string{}
	for _, node := range n.C.Net.Nodes() {
		if node.Name != ObserverName {
			byCloud[node.Cloud] = append(byCloud[node.Cloud], node.Name)
		}
	}
	clouds := make([]string, 0, len(byCloud))
	for c := range byCloud {
		clouds = append(clouds, c)
	}
	sort.Strings(clouds)
	var groups [][]string
	for _, c := range clouds {
		groups = append(groups, byCloud[c])
	}
	n.Mon.Note("nemesis: cloud split %v", groups)
	n.C.Net.Switch.Partition(groups...)
}

// Heal removes every cut (delay spikes and loss stay until cleared).
func (n *Nemesis) Heal() {
	n.Mon.Note("nemesis: heal")
	n.C.Net.Switch.Heal()
}

// Loss drops frames to and from the named nodes with probability p (0
// clears it).
func (n *Nemesis) Loss(p float64, nodes ...string) {
	n.Mon.Note("nemesis: loss %.0f%% on %v", 100*p, nodes)
	n.C.Net.Switch.SetLoss(p, nodes...)
}

// Spike adds d to the one-way delay of every frame to or from the named
// nodes (0 clears it).
func (n *Nemesis) Spike(d time.Duration, nodes ...string) {
	n.Mon.Note("nemesis: latency spike +%s on %v", d, nodes)
	n.C.Net.Switch.AddDelay(d, nodes...)
}

// LinkSpike adds d to the one-way delay of the one link between nodes a
// and b, both ways (0 clears it).
func (n *Nemesis) LinkSpike(d time.Duration, a, b string) {
	n.Mon.Note("nemesis: latency spike +%s on the link %s ↔ %s", d, a, b)
	n.C.Net.Switch.AddLinkDelay(d, a, b)
}

// LinkLoss makes every link between two of the named nodes lose frames
// with probability target, each way (a link's loss compounds the loss
// of both its ends, so each node gets 1-√(1-target)); 0 clears it.
func (n *Nemesis) LinkLoss(target float64, nodes ...string) {
	p := 0.0
	if target > 0 {
		p = 1 - math.Sqrt(1-target)
	}
	n.Mon.Note("nemesis: loss %.1f%% per link among %v", 100*target, nodes)
	n.C.Net.Switch.SetLoss(p, nodes...)
}

// Bridge cuts sides a and b apart while bridge (a server) keeps talking
// to both: it alone sees the whole cluster.
func (n *Nemesis) Bridge(bridge string, a, b []string) {
	n.Mon.Note("nemesis: bridge partition %v | %s | %v", a, bridge, b)
	n.C.Net.Switch.Partition(append(slices.Clone(a), bridge), append(slices.Clone(b), bridge))
}

// NodeNames lists every node of the network but the observer: servers,
// clients and agents.
func (n *Nemesis) NodeNames() []string {
	var out []string
	for _, node := range n.C.Net.Nodes() {
		if node.Name != ObserverName {
			out = append(out, node.Name)
		}
	}
	return out
}

// Side returns the names of the servers in svs plus extra node names, as
// one partition group.
func Side(svs []*Server, extra ...string) []string {
	return append(Names(svs), extra...)
}

// Without returns svs minus the given servers.
func Without(svs []*Server, drop ...*Server) []*Server {
	var out []*Server
	for _, sv := range svs {
		if !slices.Contains(drop, sv) {
			out = append(out, sv)
		}
	}
	return out
}

// InCloud returns the servers of one cloud.
func InCloud(svs []*Server, cloud string) []*Server {
	var out []*Server
	for _, sv := range svs {
		if sv.Cloud == cloud {
			out = append(out, sv)
		}
	}
	return out
}

func (n *Nemesis) String() string { return fmt.Sprintf("nemesis on %d servers", len(n.C.Servers)) }
