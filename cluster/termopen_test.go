package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// termOpenServer is a Server with only what openTerm uses: an in-memory
// log behind the timed store that fires logGrew.
func termOpenServer(t *testing.T, entries ...raft.Log) (*Server, raft.LogStore) {
	t.Helper()
	s := &Server{shutdownCh: make(chan struct{})}
	store := timedLogStore{LogStore: raft.NewInmemStore(), lat: &s.logSyncLat, grew: &s.logGrew}
	for i := range entries {
		if err := store.StoreLog(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	s.logs = store
	return s, store
}

// A log of term 1 (indexes 1–3), then term 2's no-op (4) and a write (5).
func termTwoLog() []raft.Log {
	return []raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("a")},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: []byte("b")},
		{Index: 4, Term: 2, Type: raft.LogNoop},
		{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("c")},
	}
}

func entryIndexes(req *raft.AppendEntriesRequest) []uint64 {
	var out []uint64
	for _, l := range req.Entries {
		out = append(out, l.Index)
	}
	return out
}

func TestOpensTermPicksANewLeadersFirstRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  raft.AppendEntriesRequest
		want bool
	}{
		{"first of term 2, no entries", raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 3, PrevLogTerm: 1}, true},
		{"heartbeat", raft.AppendEntriesRequest{Term: 2}, false},
		{"previous entry of the current term", raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 4, PrevLogTerm: 2}, false},
		{"carries entries already", raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 3, PrevLogTerm: 1, Entries: []*raft.Log{{Index: 4, Term: 2}}}, false},
		{"empty log", raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: 0}, false},
	} {
		if got := opensTerm(&tc.req); got != tc.want {
			t.Errorf("%s: opensTerm = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOpenTermSendsTheEntriesAfterThePreviousOne(t *testing.T) {
	s, _ := termOpenServer(t, termTwoLog()...)
	req := &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 3, PrevLogTerm: 1}
	s.openTerm(req)
	if got := entryIndexes(req); fmt.Sprint(got) != "[4 5]" {
		t.Fatalf("entries %v, want [4 5] (the no-op and the write after it)", got)
	}
	if req.PrevLogEntry != 3 || req.PrevLogTerm != 1 || req.Term != 2 {
		t.Fatalf("request changed beyond its entries: %+v", req)
	}
	// A follower found behind: the entries after an earlier previous one,
	// older terms included, as raft itself would send them.
	req = &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 1, PrevLogTerm: 1}
	s.openTerm(req)
	if got := entryIndexes(req); fmt.Sprint(got) != "[2 3 4 5]" {
		t.Fatalf("entries %v, want [2 3 4 5]", got)
	}
}

func TestOpenTermWaitsForTheNoOpOnItsWayToDisk(t *testing.T) {
	log := termTwoLog()
	s, store := termOpenServer(t, log[:3]...)
	go func() {
		time.Sleep(5 * time.Millisecond) // the no-op's log write, after the request is built
		if err := store.StoreLogs([]*raft.Log{&log[3]}); err != nil {
			t.Error(err)
		}
	}()
	req := &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 3, PrevLogTerm: 1}
	s.openTerm(req)
	if got := entryIndexes(req); fmt.Sprint(got) != "[4]" {
		t.Fatalf("entries %v, want [4] (the no-op, stored while openTerm waited)", got)
	}
}

func TestOpenTermSendsTheRequestAsBuiltWhenTheLogDoesNotGrow(t *testing.T) {
	s, _ := termOpenServer(t, termTwoLog()[:3]...)
	req := &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 3, PrevLogTerm: 1}
	t0 := time.Now()
	s.openTerm(req)
	if took := time.Since(t0); took < termOpenWait {
		t.Errorf("returned after %s, before termOpenWait (%s)", took, termOpenWait)
	}
	if len(req.Entries) != 0 {
		t.Fatalf("entries %v, want none", entryIndexes(req))
	}
	close(s.shutdownCh) // shutting down: no wait at all
	t0 = time.Now()
	s.openTerm(req)
	if took := time.Since(t0); took >= termOpenWait {
		t.Errorf("waited %s while shutting down", took)
	}
}

func TestOpenTermSendsAtMostMaxAppendEntries(t *testing.T) {
	entries := []raft.Log{{Index: 1, Term: 1, Type: raft.LogConfiguration}}
	for i := uint64(2); i <= maxAppendEntries+10; i++ {
		entries = append(entries, raft.Log{Index: i, Term: 2, Type: raft.LogCommand})
	}
	s, _ := termOpenServer(t, entries...)
	req := &raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 1, PrevLogTerm: 1}
	s.openTerm(req)
	if n := len(req.Entries); n != maxAppendEntries || req.Entries[0].Index != 2 {
		t.Fatalf("%d entries from %d, want %d from 2", n, req.Entries[0].Index, maxAppendEntries)
	}
}

// termOpenSlowLink delays the new leader's requests in
// TestNoOpCommitsOneRoundTripAfterTheElection: a round trip to a follower
// takes about that long.
const termOpenSlowLink = 100 * time.Millisecond

// A new leader's no-op commits one round trip after its election: its
// first AppendEntries to each follower carries it. Without openTerm it
// commits after two (raft sends the no-op only after a first, empty
// AppendEntries has come back) whenever that first request was built
// before the no-op was stored, which is most elections (4 of 6 runs of
// this test without openTerm took two round trips).
func TestNoOpCommitsOneRoundTripAfterTheElection(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(10 * time.Second)
	if err := c.servers[old].propose(&fsm.AddTaskEntry{ID: "t1", Type: "shell", Cloud: "aws", Time: 1}); err != nil {
		t.Fatal(err)
	}
	to := (old + 1) % len(c.servers)
	// Quiet: every server's labels recorded and the whole log everywhere.
	succeedsWithin(t, 10*time.Second, func() error {
		l := c.servers[old]
		for _, cfg := range c.cfgs {
			if l.fsm.Server(cfg.NodeID) == nil {
				return fmt.Errorf("%s's labels not recorded yet", cfg.NodeID)
			}
		}
		for i, s := range c.servers {
			if last := s.raft.LastIndex(); last != l.raft.LastIndex() || s.raft.CommitIndex() != last {
				return fmt.Errorf("%s: last %d (leader %d), commit %d", c.cfgs[i].NodeID, last, l.raft.LastIndex(), s.raft.CommitIndex())
			}
		}
		return nil
	})
	c.slow(to, termOpenSlowLink)
	s := c.servers[to]
	transferred := make(chan error, 1)
	go func() {
		_, _, err := c.servers[old].TransferLeadership(ctxT(t, 10*time.Second), c.cfgs[to].NodeID)
		transferred <- err
	}()
	defer func() {
		if err := <-transferred; err != nil {
			t.Errorf("transfer: %v", err)
		}
	}()

	// Sampled every millisecond: when raft made it leader, and when its
	// commit index reached the term's no-op.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	var electedAt time.Time
	var noop uint64
	for {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: no leadership, or its no-op (%d) never committed", c.cfgs[to].NodeID, noop)
		}
		if electedAt.IsZero() {
			if s.raft.State() != raft.Leader {
				continue
			}
			electedAt = time.Now()
			end, err := s.earlierTermsEnd(s.raft.CurrentTerm())
			if err != nil {
				t.Fatal(err)
			}
			noop = end + 1
		}
		if s.raft.CommitIndex() < noop {
			continue
		}
		took := time.Since(electedAt)
		rtt := termOpenSlowLink
		t.Logf("%s's no-op (%d) committed %s after its election (a round trip: %s)", c.cfgs[to].NodeID, noop, took.Round(time.Millisecond), rtt)
		if took >= rtt*3/2 {
			t.Fatalf("no-op committed %s after the election, want one round trip (%s), not two", took.Round(time.Millisecond), rtt)
		}
		return
	}
}
