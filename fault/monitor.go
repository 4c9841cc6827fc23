//go:build linux

package fault

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Monitor polls every server's Status.Get over the observer's link and
// keeps what it saw: who claimed leadership in which term, and a
// timeline of changes. It answers "who leads now" for the nemesis and
// checks that no term ever had two leaders.
type Monitor struct {
	c        *Cluster
	interval time.Duration
	start    time.Time

	mu      sync.Mutex
	cond    chan struct{} // closed and replaced on every new observation
	last    map[string]view
	leaders map[uint64]map[string]time.Time // term → leader → first seen
	events  []Event
	lost    map[string]int // observations of a follower without a leader
	cancel  context.CancelFunc
	done    chan struct{}
}

// view is one server's state as last observed.
type view struct {
	at       time.Time
	ok       bool
	state    string
	term     uint64
	leaderID string
	applied  uint64
}

// Event is one line of the monitor's timeline.
type Event struct {
	At     time.Time
	Server string
	What   string
}

// StartMonitor polls every interval (50 ms is a good default: fine enough
// to time failovers, light on the servers) until the test ends.
func (c *Cluster) StartMonitor(interval time.Duration) *Monitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{c: c, interval: interval, start: time.Now(), cond: make(chan struct{}),
		last: map[string]view{}, leaders: map[uint64]map[string]time.Time{}, lost: map[string]int{},
		cancel: cancel, done: make(chan struct{})}
	go m.run(ctx)
	c.T.Cleanup(m.Stop)
	return m
}

// Stop ends polling.
func (m *Monitor) Stop() {
	m.cancel()
	<-m.done
}

func (m *Monitor) run(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		var wg sync.WaitGroup
		for _, sv := range m.c.Servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.poll(ctx, sv)
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *Monitor) poll(ctx context.Context, sv *Server) {
	if !sv.Running() || sv.Paused() {
		m.record(sv.Name, view{at: time.Now()})
		return
	}
	cctx, cancel := context.WithTimeout(ctx, max(m.interval*4, 200*time.Millisecond))
	defer cancel()
	st, err := m.c.Status(cctx, sv)
	now := time.Now()
	if err != nil {
		m.record(sv.Name, view{at: now})
		return
	}
	m.record(sv.Name, view{at: now, ok: true, state: st.State, term: st.Term, leaderID: st.LeaderID, applied: st.AppliedIndex})
}

func (m *Monitor) record(name string, v view) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, seen := m.last[name]
	m.last[name] = v
	if v.ok && v.state == "leader" {
		byLeader := m.leaders[v.term]
		if byLeader == nil {
			byLeader = map[string]time.Time{}
			m.leaders[v.term] = byLeader
		}
		if _, ok := byLeader[name]; !ok {
			byLeader[name] = v.at
		}
	}
	if v.ok && v.state == "follower" && v.leaderID == "" {
		m.lost[name]++
	}
	if !seen || old.ok != v.ok || old.state != v.state || old.term != v.term || old.leaderID != v.leaderID {
		what := "down or unreachable"
		if v.ok {
			what = fmt.Sprintf("%s term %d leader %q", v.state, v.term, v.leaderID)
		}
		m.events = append(m.events, Event{At: v.at, Server: name, What: what})
	}
	close(m.cond)
	m.cond = make(chan struct{})
}

// Leader returns the server that last claimed leadership with the highest
// term among those that answered within the last few polls, or "".
func (m *Monitor) Leader() (string, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaderLocked(time.Now())
}

func (m *Monitor) leaderLocked(now time.Time) (string, uint64) {
	best, term := "", uint64(0)
	for name, v := range m.last {
		if v.ok && v.state == "leader" && now.Sub(v.at) < 4*m.interval+200*time.Millisecond && v.term >= term {
			best, term = name, v.term
		}
	}
	return best, term
}

// WaitLeader waits until a server other than those in not, in a term
// above minTerm, claims leadership, and returns it with the time it was
// first seen doing so.
func (m *Monitor) WaitLeader(ctx context.Context, minTerm uint64, not ...string) (string, uint64, time.Time, error) {
	for {
		m.mu.Lock()
		for name, v := range m.last {
			if v.ok && v.state == "leader" && v.term > minTerm && !slices.Contains(not, name) {
				at := m.leaders[v.term][name]
				m.mu.Unlock()
				return name, v.term, at, nil
			}
		}
		ch := m.cond
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", 0, time.Time{}, fmt.Errorf("%w after %s: %s", ErrNoLeader, time.Since(m.start).Round(time.Millisecond), m.Snapshot())
		}
	}
}

// WaitState waits until the named server answers in a state for which
// ok holds (e.g. no longer "leader") and returns the time of the
// observation that showed it. Start it right after the fault to time a
// transition: it looks at the latest observation, not the past.
func (m *Monitor) WaitState(ctx context.Context, name string, ok func(state string, term uint64) bool) (time.Time, error) {
	for {
		m.mu.Lock()
		v := m.last[name]
		ch := m.cond
		m.mu.Unlock()
		if v.ok && ok(v.state, v.term) {
			return v.at, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s never reached the awaited state: %s", name, m.Snapshot())
		}
	}
}

// WaitStable waits until one server leads, every running, unpaused server
// answers naming it in its term, and every one has applied at least what
// the leader had applied when first seen leading in this wait: the
// cluster is healthy and caught up. It returns the leader.
func (m *Monitor) WaitStable(ctx context.Context) (string, error) {
	var target uint64
	var targetOf string
	since := time.Now() // only observations made during the wait count
	for {
		m.mu.Lock()
		leader, term := m.leaderLocked(time.Now())
		ok := leader != "" && m.last[leader].at.After(since)
		if ok && leader != targetOf {
			targetOf, target = leader, m.last[leader].applied
		}
		for _, sv := range m.c.Servers {
			if !ok {
				break
			}
			if !sv.Running() || sv.Paused() {
				continue
			}
			v := m.last[sv.Name]
			if !v.ok || !v.at.After(since) || v.term != term || v.leaderID != leader || v.applied < target {
				ok = false
			}
		}
		ch := m.cond
		m.mu.Unlock()
		if ok {
			return leader, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("cluster not stable: %s", m.Snapshot())
		}
	}
}

// Snapshot describes every server's last observed state, for messages.
func (m *Monitor) Snapshot() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.last))
	for n := range m.last {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		v := m.last[n]
		if !v.ok {
			fmt.Fprintf(&b, "%s: down; ", n)
			continue
		}
		fmt.Fprintf(&b, "%s: %s term %d leader %q applied %d; ", n, v.state, v.term, v.leaderID, v.applied)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// CheckOneLeaderPerTerm returns an error naming every term in which two
// servers were seen claiming leadership.
func (m *Monitor) CheckOneLeaderPerTerm() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bad []string
	for term, ls := range m.leaders {
		if len(ls) > 1 {
			names := make([]string, 0, len(ls))
			for n := range ls {
				names = append(names, n)
			}
			sort.Strings(names)
			bad = append(bad, fmt.Sprintf("term %d: %s", term, strings.Join(names, ", ")))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("more than one leader in a term: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Terms returns the terms in which a leader was seen, with the leader.
func (m *Monitor) Terms() map[uint64]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64]string{}
	for term, ls := range m.leaders {
		for n := range ls {
			out[term] = n
		}
	}
	return out
}

// LostLeaderCount is how many polls found a follower that knew no leader
// (DESIGN.md: count these, not only term changes, to judge stability).
func (m *Monitor) LostLeaderCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.lost {
		n += c
	}
	return n
}

// Timeline renders the recorded changes relative to the monitor's start.
func (m *Monitor) Timeline() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, e := range m.events {
		fmt.Fprintf(&b, "%8.3fs %-6s %s\n", e.At.Sub(m.start).Seconds(), e.Server, e.What)
	}
	return b.String()
}

// Note adds a line (a fault, a phase) to the timeline.
func (m *Monitor) Note(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, Event{At: time.Now(), Server: "*", What: fmt.Sprintf(format, args...)})
}
