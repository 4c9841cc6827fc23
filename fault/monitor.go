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
	// unsettled lists every observation of a server without a leader
	// (a follower that knows none, a candidate), for StatsSince.
	unsettled []Event
	// contacts lists follower observations whose last contact with the
	// leader was older than slowContact.
	contacts []contact
	polls    int
	cancel   context.CancelFunc
	done     chan struct{}
}

// view is one server's state as last observed.
type view struct {
	at          time.Time
	ok          bool
	state       string
	term        uint64
	leaderID    string
	applied     uint64
	lastContact time.Duration // follower's last contact with the leader
}

type contact struct {
	at     time.Time
	server string
	age    time.Duration
}

// slowContact: follower observations with an older last contact are kept
// for StatsSince (a healthy follower hears from the leader every
// heartbeat timeout / 10 plus one way of the link).
const slowContact = 150 * time.Millisecond

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

// Start is when the monitor started: Timeline's times count from it.
func (m *Monitor) Start() time.Time { return m.start }

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
	m.record(sv.Name, view{at: now, ok: true, state: st.State, term: st.Term, leaderID: st.LeaderID, applied: st.AppliedIndex,
		lastContact: time.Duration(st.LastContactMS) * time.Millisecond})
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
	m.polls++
	if v.ok && v.state == "follower" && v.leaderID == "" {
		m.lost[name]++
	}
	if v.ok && (v.state == "candidate" || v.state == "follower" && v.leaderID == "") {
		m.unsettled = append(m.unsettled, Event{At: v.at, Server: name, What: v.state})
	}
	if v.ok && v.state == "follower" && v.lastContact > slowContact {
		m.contacts = append(m.contacts, contact{at: v.at, server: name, age: v.lastContact})
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

// Election is a leader seen for the first time in a term.
type Election struct {
	Term   uint64
	Leader string
	At     time.Time
}

// ElectionsSince lists, in term order, the leaders first seen at or after
// t: every one is a leader change (or the first leader).
func (m *Monitor) ElectionsSince(t time.Time) []Election {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Election
	for term, ls := range m.leaders {
		for name, at := range ls {
			if !at.Before(t) {
				out = append(out, Election{Term: term, Leader: name, At: at})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Term != out[j].Term {
			return out[i].Term < out[j].Term
		}
		return out[i].At.Before(out[j].At)
	})
	return out
}

// Stability sums up what the monitor saw in a time window.
type Stability struct {
	Elections []Election
	// Unsettled counts observations of a server without a leader: a
	// follower that knew none ("follower lost its leader", which pre-vote
	// hides from the term) or a candidate, by server.
	Unsettled map[string]int
	// MaxContact is, by follower, the oldest last contact with the leader
	// observed (only ages above 150 ms are kept; absent means below).
	MaxContact map[string]time.Duration
	Polls      int // all polls since the monitor started
}

// Quiet reports whether nothing unsettled happened: no election and no
// server seen without a leader.
func (s Stability) Quiet() bool { return len(s.Elections) == 0 && len(s.Unsettled) == 0 }

func (s Stability) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d elections", len(s.Elections))
	for _, e := range s.Elections {
		fmt.Fprintf(&b, " [term %d %s]", e.Term, e.Leader)
	}
	n := 0
	for _, c := range s.Unsettled {
		n += c
	}
	fmt.Fprintf(&b, ", %d observations of a server without a leader %v", n, s.Unsettled)
	if len(s.MaxContact) > 0 {
		fmt.Fprintf(&b, ", oldest follower last contact %v", s.MaxContact)
	}
	return b.String()
}

// StabilitySince sums up the window from t to now.
func (m *Monitor) StabilitySince(t time.Time) Stability {
	st := Stability{Elections: m.ElectionsSince(t), Unsettled: map[string]int{}, MaxContact: map[string]time.Duration{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	st.Polls = m.polls
	for _, e := range m.unsettled {
		if !e.At.Before(t) {
			st.Unsettled[e.Server]++
		}
	}
	for _, c := range m.contacts {
		if !c.at.Before(t) && c.age > st.MaxContact[c.server] {
			st.MaxContact[c.server] = c.age.Round(time.Millisecond)
		}
	}
	if len(st.Unsettled) == 0 {
		st.Unsettled = nil
	}
	return st
}

// Leaderless returns the longest stretch within [from, to] during which no
// running server was seen leading (by the latest observation of each
// server), and the total of such stretches.
func (m *Monitor) Leaderless(from, to time.Time) (longest, total time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Replay the timeline's per-server state changes.
	state := map[string]bool{} // server → leading
	var gapStart time.Time
	leading := func() bool {
		for _, l := range state {
			if l {
				return true
			}
		}
		return false
	}
	account := func(end time.Time) {
		if gapStart.IsZero() {
			return
		}
		s := gapStart
		if s.Before(from) {
			s = from
		}
		if end.After(to) {
			end = to
		}
		if d := end.Sub(s); d > 0 {
			total += d
			longest = max(longest, d)
		}
	}
	for _, e := range m.events {
		if e.Server == "*" {
			continue
		}
		if e.At.After(to) {
			break
		}
		was := leading()
		state[e.Server] = strings.HasPrefix(e.What, "leader ")
		now := leading()
		switch {
		case was && !now:
			gapStart = e.At
		case !was && now:
			account(e.At)
			gapStart = time.Time{}
		}
	}
	if !leading() {
		if gapStart.IsZero() {
			gapStart = from
		}
		account(to)
	}
	return longest, total
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
