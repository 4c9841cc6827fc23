package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/rctl-dev/rctl/fault"
)

// Host is a place one server process runs: a name (also the server's id),
// its cloud ("" on loopback) and the IP address it binds.
type Host struct {
	Name, Cloud, IP string
}

// Network places server processes and the benchmark's client. Both systems
// run on the same Network in one benchmark run, so they see the same
// delays. Loopback (below) runs everything on 127.0.0.1; wan (netwan.go)
// puts every server in its own namespace on the emulated two-cloud network
// of package fault. Another network is one more implementation.
type Network interface {
	// Name is "loopback" or "wan"; it labels tables and charts.
	Name() string
	// Hosts returns the hosts of an n-server cluster.
	Hosts(n int) ([]Host, error)
	// Client is where the benchmark's client runs (a VM in AWS on wan).
	Client() Host
	// Addr returns a host:port to listen on at h. port is used where each
	// host has an address of its own; loopback picks a free port instead.
	Addr(h Host, port int) (string, error)
	// Command returns a command that runs bin on h.
	Command(h Host, bin string, args ...string) *exec.Cmd
	// ClientDial dials from the client's place: its connections see the
	// emulated delays.
	ClientDial(ctx context.Context, addr string) (net.Conn, error)
	// ControlDial dials from the harness's own place (no delay, never
	// cut): for finding the leader and checking health, never for
	// measured calls.
	ControlDial(ctx context.Context, addr string) (net.Conn, error)
	// RTT measures the TCP round trip from a to b (hosts, or Client()).
	RTT(a, b Host) (time.Duration, error)
	// Close removes whatever the network created.
	Close() error
}

// hostCutter is a Network that can cut a host off completely: every packet
// to or from it dropped, both ways, with no RST or FIN, so its connections
// stay open and nobody learns of the cut but by silence (a VM whose
// network died). Heal lifts every cut. The harness's control network
// (ControlDial) is never cut. wan has it; loopback (one host) has not.
type hostCutter interface {
	Isolate(h Host) error
	Heal() error
}

// loopback is the Network of one machine: every process on 127.0.0.1.
type loopback struct {
	once sync.Once
	rtt  time.Duration
	err  error
}

func newLoopback() *loopback { return &loopback{} }

func (*loopback) Name() string { return "loopback" }

func (*loopback) Hosts(n int) ([]Host, error) {
	hosts := make([]Host, n)
	for i := range hosts {
		hosts[i] = Host{Name: fmt.Sprintf("s%d", i+1), IP: "127.0.0.1"}
	}
	return hosts, nil
}

func (*loopback) Client() Host { return Host{Name: "client", IP: "127.0.0.1"} }

// Addr picks a free port. Another process could take it before the server
// binds it; on this otherwise idle loopback that has not been seen.
func (*loopback) Addr(h Host, _ int) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(h.IP, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Command starts bin in its own process group; it gets SIGKILL if the
// benchmark dies.
func (*loopback) Command(_ Host, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (*loopback) ClientDial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (l *loopback) ControlDial(ctx context.Context, addr string) (net.Conn, error) {
	return l.ClientDial(ctx, addr)
}

// RTT is the same between any two places: measured once.
func (l *loopback) RTT(_, _ Host) (time.Duration, error) {
	l.once.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			l.err = err
			return
		}
		defer ln.Close()
		_, _, l.rtt, _, l.err = fault.EchoRTT(ln, func() (net.Conn, error) {
			return net.Dial("tcp", ln.Addr().String())
		}, 200)
	})
	return l.rtt, l.err
}

func (*loopback) Close() error { return nil }
