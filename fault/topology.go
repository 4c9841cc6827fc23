//go:build linux

package fault

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// NetConfig describes the emulated network. Delays are round trips: each
// direction of a link gets half.
type NetConfig struct {
	// IntraRTT is the round trip between two nodes of one cloud. Default
	// 25 ms, as measured inside AWS and inside GCP.
	IntraRTT time.Duration
	// CrossRTT is the round trip between the clouds. Default 243 ms, as
	// measured between AWS and GCP.
	CrossRTT time.Duration
	// IntraJitter and CrossJitter spread each one-way delay uniformly by
	// ± this much (order within one direction of a link is kept).
	// Defaults 1 ms and 5 ms.
	IntraJitter, CrossJitter time.Duration
	// Seed makes jitter and loss reproducible. Default 1.
	Seed uint64
}

// DefaultNet is the two-cloud network of DESIGN.md: RTT 25 ms within a
// cloud, 243 ms between AWS and GCP.
func DefaultNet() NetConfig {
	return NetConfig{IntraRTT: 25 * time.Millisecond, CrossRTT: 243 * time.Millisecond,
		IntraJitter: time.Millisecond, CrossJitter: 5 * time.Millisecond, Seed: 1}
}

// Validate reports the first invalid field.
func (c NetConfig) Validate() error {
	switch {
	case c.IntraRTT < 0:
		return errors.New("net config: IntraRTT must not be negative")
	case c.CrossRTT < 0:
		return errors.New("net config: CrossRTT must not be negative")
	case c.IntraJitter < 0 || 2*c.IntraJitter > c.IntraRTT:
		return errors.New("net config: IntraJitter must be within [0, IntraRTT/2]")
	case c.CrossJitter < 0 || 2*c.CrossJitter > c.CrossRTT:
		return errors.New("net config: CrossJitter must be within [0, CrossRTT/2]")
	}
	return nil
}

// Link is the base link between two clouds.
func (c NetConfig) Link(srcCloud, dstCloud string) Link {
	if srcCloud == dstCloud {
		return Link{Delay: c.IntraRTT / 2, Jitter: c.IntraJitter}
	}
	return Link{Delay: c.CrossRTT / 2, Jitter: c.CrossJitter}
}

// NodeSpec names one node (a network namespace) and its cloud.
type NodeSpec struct {
	Name  string // short, unique: "aws1", "c-gcp"; at most 20 characters
	Cloud string // "aws", "gcp", …: nodes of one cloud share a /24
}

// Node is one network namespace on the emulated network, with one
// interface (eth0, a TAP device on the harness's switch) and one address.
type Node struct {
	Name, Cloud string
	IP          netip.Addr
	*Netns
	mac string
}

// ObserverName is the node every Network adds for the harness itself: its
// links have no delay and are never cut, like a management network, so
// the harness can watch servers whatever the faults.
const ObserverName = "ops"

// Network is a set of namespaces joined by one emulated switch. Addresses
// are 10.77.<cloud>.<host>/16: the first cloud named gets 10.77.1.0/24,
// the next 10.77.2.0/24 (so "aws" first, "gcp" second in the usual
// specs); the observer is 10.77.0.2. Every network lives entirely in its
// own namespaces and a user-space switch, so concurrent runs reuse the
// same addresses without meeting.
type Network struct {
	Config NetConfig
	Prefix string // namespace name prefix, NamePrefix<pid>-<n>-
	Switch *Switch

	mu    sync.Mutex
	nodes map[string]*Node
	order []*Node
	clds  map[string]int
	hosts map[int]int
}

var netSeq atomic.Int64

// Requirements returns why fault tests cannot run here, or nil: they need
// root, ip(8) and /dev/net/tun.
func Requirements() error {
	if os.Geteuid() != 0 {
		return errors.New("fault tests need root (network namespaces, TAP devices); run them as root, e.g. in .ci/run")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("fault tests need ip(8) from iproute2 (apt-get install iproute2)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return errors.New("fault tests need /dev/net/tun (kernel TUN/TAP support)")
	}
	return nil
}

// SkipUnlessCapable skips t unless Requirements holds.
func SkipUnlessCapable(t testing.TB) {
	t.Helper()
	if err := Requirements(); err != nil {
		t.Skip("skipping: " + err.Error())
	}
}

// NewNetwork builds the emulated network with the observer plus nodes,
// and removes everything (switch, TAP devices, namespaces and any process
// left inside them) when t ends, failed or not. It first removes
// leftovers of crashed runs.
func NewNetwork(t testing.TB, cfg NetConfig, nodes ...NodeSpec) *Network {
	t.Helper()
	SkipUnlessCapable(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if removed, err := CleanupLeftovers(); err != nil {
		t.Logf("fault: cleaning leftovers of earlier runs: %v", err)
	} else if len(removed) > 0 {
		t.Logf("fault: removed %d namespaces left by crashed runs: %v", len(removed), removed)
	}
	n := &Network{
		Config: cfg,
		Prefix: fmt.Sprintf("%s%d-%d-", NamePrefix, os.Getpid(), netSeq.Add(1)),
		Switch: NewSwitch(cfg.Link, cfg.Seed),
		nodes:  map[string]*Node{},
		clds:   map[string]int{},
		hosts:  map[int]int{},
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("fault: tearing the network down: %v", err)
		}
	})
	if _, err := n.add(NodeSpec{Name: ObserverName, Cloud: ObserverName}, true); err != nil {
		t.Fatal(err)
	}
	for _, s := range nodes {
		if _, err := n.add(s, false); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// AddNode adds one more node to a running network.
func (n *Network) AddNode(t testing.TB, s NodeSpec) *Node {
	t.Helper()
	node, err := n.add(s, false)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

func (n *Network) add(s NodeSpec, exempt bool) (*Node, error) {
	if s.Name == "" || len(s.Name) > 20 {
		return nil, fmt.Errorf("node name %q: want 1 to 20 characters", s.Name)
	}
	n.mu.Lock()
	if _, dup := n.nodes[s.Name]; dup {
		n.mu.Unlock()
		return nil, fmt.Errorf("node %s added twice", s.Name)
	}
	ci := 0
	if !exempt {
		var ok bool
		if ci, ok = n.clds[s.Cloud]; !ok {
			ci = len(n.clds) + 1
			n.clds[s.Cloud] = ci
		}
	}
	seq := n.hosts[ci] + 1
	n.hosts[ci] = seq
	host := seq + 10 // 10.77.<c>.11, .12, …
	if ci == 0 {
		host = seq + 1 // the observer, 10.77.0.2
	}
	n.mu.Unlock()
	if ci > 250 || host > 250 {
		return nil, errors.New("network: too many clouds or nodes")
	}
	ip := netip.AddrFrom4([4]byte{10, 77, byte(ci), byte(host)})

	ns, err := createNetns(n.Prefix + s.Name)
	if err != nil {
		return nil, err
	}
	node := &Node{Name: s.Name, Cloud: s.Cloud, IP: ip, Netns: ns}
	n.mu.Lock()
	n.nodes[s.Name] = node
	n.order = append(n.order, node)
	n.mu.Unlock()

	tmp := fmt.Sprintf("%s%dt%d", NamePrefix, os.Getpid(), tapSeq.Add(1))
	tap, err := openTap(tmp)
	if err != nil {
		return nil, err
	}
	if err := runIP("link", "set", tmp, "netns", ns.Name); err != nil {
		tap.Close()
		return nil, err
	}
	mac := fmt.Sprintf("02:77:00:00:%02x:%02x", ci, host)
	err = runIPBatch([]string{"-n", ns.Name}, []string{
		"link set " + tmp + " name eth0",
		"link set eth0 address " + mac + " addrgenmode none",
		"addr add " + ip.String() + "/16 dev eth0",
		"link set eth0 up",
	})
	if err != nil {
		tap.Close()
		return nil, err
	}
	if err := n.Switch.AddPort(s.Name, s.Cloud, exempt, tap); err != nil {
		tap.Close()
		return nil, err
	}
	node.mac = mac
	return node, n.addNeighbors(node)
}

// addNeighbors gives the new node a permanent ARP entry for every other
// node and every other node one for it. Without ARP a partition is a
// silent drop, as in a cloud VPC, instead of "no route to host" once the
// kernel's neighbour entry fails.
func (n *Network) addNeighbors(node *Node) error {
	neigh := func(o *Node) string {
		return "neigh replace " + o.IP.String() + " lladdr " + o.mac + " dev eth0 nud permanent"
	}
	var mine []string
	for _, o := range n.Nodes() {
		if o == node {
			continue
		}
		mine = append(mine, neigh(o))
		if err := runIPBatch([]string{"-n", o.Netns.Name}, []string{neigh(node)}); err != nil {
			return err
		}
	}
	if len(mine) == 0 {
		return nil
	}
	return runIPBatch([]string{"-n", node.Netns.Name}, mine)
}

var tapSeq atomic.Int64

// Node returns the named node, or nil.
func (n *Network) Node(name string) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[name]
}

// Observer is the harness's own node (no delay, never cut).
func (n *Network) Observer() *Node { return n.Node(ObserverName) }

// Nodes lists the nodes in the order they were added, observer first.
func (n *Network) Nodes() []*Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.order)
}

// Close stops the switch (its TAP devices vanish with it) and deletes
// every namespace, killing any process still inside. It is idempotent.
func (n *Network) Close() error {
	n.Switch.Close()
	n.mu.Lock()
	nodes := n.order
	n.order, n.nodes = nil, map[string]*Node{}
	n.mu.Unlock()
	var errs []error
	for _, node := range nodes {
		if err := node.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
