package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The systems --systems can name. rctl-base is rctl (the same code, the
// same timing settings) started from another build, --rctl-base-bin: to
// show a new build's scenarios beside an older one's.
const (
	sysRCTL     = "rctl"
	sysRCTLBase = "rctl-base"
	sysEtcd     = "etcd"
)

var knownSystems = []string{sysRCTL, sysEtcd, sysRCTLBase}

// defaultPair is the comparison the benchmark was made for: the columns of
// a table that names none (Table.Names zero).
var defaultPair = [2]string{sysRCTL, sysEtcd}

// isRCTL reports whether the system is an rctl build (rctl or rctl-base).
func isRCTL(name string) bool { return name == sysRCTL || name == sysRCTLBase }

// columns returns the tables' two columns for the systems run, in the
// order run. One system alone keeps the pair it belongs to, so that the
// other column shows —: rctl or etcd that of rctl vs etcd (as before
// rctl-base existed), rctl-base rctl vs rctl-base.
func columns(run []string) [2]string {
	switch {
	case len(run) == 2:
		return [2]string{run[0], run[1]}
	case len(run) == 1 && !slices.Contains(defaultPair[:], run[0]):
		return [2]string{sysRCTL, run[0]}
	}
	return defaultPair
}

// System is one of the systems compared: an rctl build (rctl.go) or etcd
// (etcd.go). Everything a scenario does goes through this interface and
// Cluster, so every system runs exactly the same code.
type System interface {
	// Name is the system's --systems name: rctl, rctl-base or etcd.
	Name() string
	// Timing describes the timing settings in use, for the report.
	Timing() string
	// Start starts one server per host, with fresh data dirs under dir,
	// and returns without waiting for a leader.
	Start(nw Network, hosts []Host, dir string, opt StartOptions) (Cluster, error)
}

// StartOptions vary a cluster for one scenario.
type StartOptions struct {
	// PinLeader keeps the leader where TransferLeader put it: rctl's
	// automatic leader placement is turned off. (etcd has none.)
	PinLeader bool
}

// Cluster is a running cluster of one system.
type Cluster interface {
	// Procs are the server processes, in the order of the hosts.
	Procs() []*Proc
	// Leader asks every running server (over the control network) and
	// returns the index of the one that says it leads.
	Leader(ctx context.Context) (int, error)
	// Writer returns a client that talks to server i only, from the
	// client's place, over one connection of its own.
	Writer(i int) (Writer, error)
	// TransferLeader moves leadership to server i and waits until it leads.
	TransferLeader(ctx context.Context, i int) error
	// CaughtUp reports whether every server runs, agrees on the leader and
	// has applied everything the leader had committed when asked.
	CaughtUp(ctx context.Context) (bool, error)
	// Stop kills every server and removes the data dirs.
	Stop()
}

// Writer makes committed writes: Task.Add for rctl, Put for etcd.
type Writer interface {
	// Write makes one write with a fresh key and returns once it is
	// committed (acknowledged), or the error.
	Write(ctx context.Context) error
	Close()
}

// errNoLeader: no running server says it leads.
var errNoLeader = errors.New("no leader")

// waitLeader polls Leader until one answers or within passes.
func waitLeader(c Cluster, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		l, err := c.Leader(ctx)
		cancel()
		if err == nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no leader within %s: %w", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCaughtUp polls CaughtUp until it holds or within passes.
func waitCaughtUp(c Cluster, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := c.CaughtUp(ctx)
		cancel()
		if ok {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		return fmt.Errorf("cluster not caught up within %s: %w", within, last)
	}
	return fmt.Errorf("cluster not caught up within %s", within)
}

// waitFor polls cond every 20 ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// statusView is how the cluster-wide questions below read one system's
// per-server status S.
type statusView[S any] struct {
	procs  []*Proc
	status func(ctx context.Context, i int) (S, error)
	// leads reports whether a server says it leads, and in which term.
	leads func(st S) (bool, uint64)
	// behind is nil when st follows the leader whose status is lst and
	// has applied what it committed, and says how st is behind otherwise.
	behind func(st, lst S) error
}

// leader returns the running server that says it leads (the highest term
// wins if two do, for a moment, after a partition).
func (v statusView[S]) leader(ctx context.Context) (int, error) {
	best, term := -1, uint64(0)
	for i, p := range v.procs {
		if !p.Running() {
			continue
		}
		st, err := v.status(ctx, i)
		if err != nil {
			continue
		}
		if ok, t := v.leads(st); ok && (best < 0 || t > term) {
			best, term = i, t
		}
	}
	if best < 0 {
		return -1, errNoLeader
	}
	return best, nil
}

// caughtUp: every server is running, knows the same leader and has
// applied what the leader committed.
func (v statusView[S]) caughtUp(ctx context.Context) (bool, error) {
	l, err := v.leader(ctx)
	if err != nil {
		return false, err
	}
	lst, err := v.status(ctx, l)
	if err != nil {
		return false, err
	}
	for i, p := range v.procs {
		if !p.Running() {
			return false, fmt.Errorf("%s is not running", p.Name)
		}
		st, err := v.status(ctx, i)
		if err != nil {
			return false, err
		}
		if err := v.behind(st, lst); err != nil {
			return false, fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return true, nil
}
