package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

// wanNet is the emulated two-cloud network of package fault: every server
// in its own network namespace behind a user-space switch that delays
// frames (RTT 25 ms within a cloud, 243 ms between AWS and GCP). The nodes
// are aws1–aws3, gcp1–gcp2 and the client "c-aws"; the switch runs in this
// process. Needs root, ip(8) and /dev/net/tun (fault.Requirements).
type wanNet struct {
	tb     *harnessTB
	net    *fault.Network
	closed atomic.Bool

	mu   sync.Mutex
	rtts map[[2]string]time.Duration
}

// wanClient is the client's namespace: a VM in AWS.
const wanClient = "c-aws"

// newWAN builds the network; Close removes it (namespaces, switch).
func newWAN() (w *wanNet, err error) {
	if err := fault.Requirements(); err != nil {
		return nil, err
	}
	tb := &harnessTB{}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(harnessFatal)
			if !ok {
				panic(r)
			}
			tb.runCleanups()
			w, err = nil, fmt.Errorf("emulated network: %s", string(f))
		}
	}()
	specs := append(fault.Shape(3, 2), fault.NodeSpec{Name: wanClient, Cloud: "aws"})
	n := fault.NewNetwork(tb, fault.DefaultNet(), specs...)
	return &wanNet{tb: tb, net: n, rtts: map[[2]string]time.Duration{}}, nil
}

func (*wanNet) Name() string { return "wan" }

// Hosts: 5 servers are the recommended 3 AWS + 2 GCP; 3 servers are
// 2 AWS + 1 GCP, so both sizes span the clouds.
func (w *wanNet) Hosts(n int) ([]Host, error) {
	var names []string
	switch n {
	case 5:
		names = []string{"aws1", "aws2", "aws3", "gcp1", "gcp2"}
	case 3:
		names = []string{"aws1", "aws2", "gcp1"}
	default:
		return nil, fmt.Errorf("wan network: %d servers: have layouts for 3 and 5", n)
	}
	hosts := make([]Host, len(names))
	for i, name := range names {
		hosts[i] = w.host(name)
	}
	return hosts, nil
}

func (w *wanNet) host(name string) Host {
	node := w.net.Node(name)
	return Host{Name: node.Name, Cloud: node.Cloud, IP: node.IP.String()}
}

func (w *wanNet) Client() Host { return w.host(wanClient) }

func (*wanNet) Addr(h Host, port int) (string, error) {
	return net.JoinHostPort(h.IP, strconv.Itoa(port)), nil
}

// errWANClosed: the network was torn down (the benchmark is stopping).
var errWANClosed = errors.New("emulated network closed")

// node returns a node, or nil once the network is closed.
func (w *wanNet) node(name string) *fault.Node {
	if w.closed.Load() {
		return nil
	}
	return w.net.Node(name)
}

func (w *wanNet) Command(h Host, bin string, args ...string) *exec.Cmd {
	n := w.node(h.Name)
	if n == nil {
		return &exec.Cmd{Path: bin, Err: errWANClosed}
	}
	return n.Command(bin, args...)
}

func (w *wanNet) ClientDial(ctx context.Context, addr string) (net.Conn, error) {
	return w.dial(ctx, wanClient, addr)
}

func (w *wanNet) ControlDial(ctx context.Context, addr string) (net.Conn, error) {
	return w.dial(ctx, fault.ObserverName, addr)
}

func (w *wanNet) dial(ctx context.Context, from, addr string) (net.Conn, error) {
	n := w.node(from)
	if n == nil {
		return nil, errWANClosed
	}
	return n.Dial(ctx, addr)
}

// RTT measures the median of 5 TCP echoes between the two namespaces, once
// per pair.
func (w *wanNet) RTT(a, b Host) (time.Duration, error) {
	key := [2]string{a.Name, b.Name}
	w.mu.Lock()
	d, ok := w.rtts[key]
	w.mu.Unlock()
	if ok {
		return d, nil
	}
	na, nb := w.node(a.Name), w.node(b.Name)
	if na == nil || nb == nil {
		return 0, errWANClosed
	}
	r, err := fault.MeasureRTT(na, nb, 5)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	w.rtts[key] = r.Median
	w.mu.Unlock()
	return r.Median, nil
}

// Isolate cuts h off from every other node of the emulated network, both
// ways (fault.Switch.Isolate, as fault.Nemesis.Isolate does in
// TestLeaderIsolated): the switch drops every frame to or from h,
// including those already in flight, and sends nothing in their place, so
// TCP connections stay open and retransmit into the void. The observer
// (ControlDial) is exempt from cuts, so the harness still sees h.
func (w *wanNet) Isolate(h Host) error {
	if w.closed.Load() {
		return errWANClosed
	}
	if w.net.Node(h.Name) == nil {
		return fmt.Errorf("wan network: no node %q", h.Name)
	}
	w.net.Switch.Isolate(h.Name)
	return nil
}

// Heal removes every cut (fault.Switch.Heal).
func (w *wanNet) Heal() error {
	if w.closed.Load() {
		return errWANClosed
	}
	w.net.Switch.Heal()
	return nil
}

func (w *wanNet) Close() error {
	w.closed.Store(true)
	w.tb.runCleanups()
	if w.tb.Failed() {
		return fmt.Errorf("emulated network: teardown reported errors (see log)")
	}
	return nil
}
