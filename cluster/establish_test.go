package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// A new leader whose manifest already holds its whole log is established
// at its election: it does not wait for an entry of its own term to
// commit (a barrier did, two round trips after the election). Leadership
// is transferred to a server whose requests take establishSlowLink, so
// the new term's no-op cannot commit sooner than that after the
// election; leadership must be established (LeaderReady, its watch
// fired) while the commit index is still below the no-op.
func TestLeadershipEstablishedAtTheElection(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(10 * time.Second)
	// A pending task no node can take: the leader proposes nothing after it.
	if err := c.servers[old].propose(&fsm.AddTaskEntry{ID: "t1", Type: "shell", Cloud: "aws", Time: 1}); err != nil {
		t.Fatal(err)
	}
	var rest []int
	for i := range c.servers {
		if i != old {
			rest = append(rest, i)
		}
	}
	// Quiet: every server's labels recorded (nothing more to propose), and
	// every survivor holds the leader's whole log, knows all of it
	// committed and has applied it. A survivor that had not would rightly
	// wait for its no-op.
	succeedsWithin(t, 10*time.Second, func() error {
		l := c.servers[old]
		for _, cfg := range c.cfgs {
			if l.fsm.Server(cfg.NodeID) == nil {
				return fmt.Errorf("%s's labels not recorded yet", cfg.NodeID)
			}
		}
		for _, i := range rest {
			s := c.servers[i]
			if last := s.raft.LastIndex(); last != l.raft.LastIndex() || s.raft.CommitIndex() != last || s.raft.AppliedIndex() != last || s.fsm.Task("t1") == nil {
				return fmt.Errorf("%s: last %d (leader %d), commit %d, applied %d, t1 %v", c.cfgs[i].NodeID,
					last, l.raft.LastIndex(), s.raft.CommitIndex(), s.raft.AppliedIndex(), s.fsm.Task("t1") != nil)
			}
		}
		return nil
	})
	// Leadership moves to a survivor by transfer (TimeoutNow, one election,
	// no other candidate), with the survivors' requests slowed. The
	// transfer runs beside the watch below: it returns only when the old
	// leader hears from the new one, a slowed request that arrives as late
	// as the no-op's commit (CI on 6519905 failed waiting for it first).
	for _, i := range rest {
		c.slow(i, establishSlowLink)
	}
	transferred := make(chan error, 1)
	go func() {
		_, _, err := c.servers[old].TransferLeadership(ctxT(t, 10*time.Second), c.cfgs[rest[0]].NodeID)
		transferred <- err
	}()
	defer func() {
		if err := <-transferred; err != nil {
			t.Errorf("transfer: %v", err)
		}
	}()

	deadline := time.After(20 * time.Second)
	for {
		watches := make([]<-chan struct{}, len(rest))
		for k, i := range rest {
			s := c.servers[i]
			watches[k] = s.LeaderWatch()
			if !s.LeaderReady() {
				continue
			}
			term := s.raft.CurrentTerm()
			end, err := s.earlierTermsEnd(term)
			if err != nil {
				t.Fatal(err)
			}
			// The entry after them is the term's no-op, if raft has
			// appended it yet (it may establish before that).
			var noop raft.Log
			if err := s.logs.GetLog(end+1, &noop); err == nil && (noop.Type != raft.LogNoop || noop.Term != term) {
				t.Fatalf("entry %d after the earlier terms: %+v, want term %d's no-op", end+1, noop, term)
			} else if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatal(err)
			}
			if commit := s.raft.CommitIndex(); commit > end {
				t.Fatalf("%s established leadership of term %d with commit index %d, at or past its no-op (%d): it waited for a round trip it need not", c.cfgs[i].NodeID, term, commit, end+1)
			}
			t.Logf("%s established leadership of term %d with its no-op (%d) not yet committed (commit index %d)", c.cfgs[i].NodeID, term, end+1, s.raft.CommitIndex())
			// Reads there are linearizable and see every earlier write.
			if err := s.ReadBarrier(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if s.fsm.Task("t1") == nil {
				t.Fatal("the new leader's read does not see t1")
			}
			return
		}
		select {
		case <-watches[0]:
		case <-watches[1]:
		case <-deadline:
			t.Fatal("no survivor established leadership")
		}
	}
}

// establishSlowLink is the request latency between the survivors in
// TestLeadershipEstablishedAtTheElection: longer than the test needs to
// see an established leader, well below lan's election timeout.
const establishSlowLink = 200 * time.Millisecond

// earlierTermsEnd names the last entry of a term before the given one:
// the entry before the current term's first (its no-op), and the whole
// log for a term none of its entries has.
func TestEarlierTermsEnd(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.servers[c.waitLeader(10*time.Second)]
	term := s.raft.CurrentTerm()
	end, err := s.earlierTermsEnd(term)
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.logs.GetLog(end+1, &l); err != nil || l.Term != term {
		t.Fatalf("entry %d: %+v %v, want the first of term %d", end+1, l, err, term)
	}
	if end > 0 {
		if err := s.logs.GetLog(end, &l); err != nil || l.Term >= term {
			t.Fatalf("entry %d: %+v %v, want one of a term before %d", end, l, err, term)
		}
	}
	if got, err := s.earlierTermsEnd(term + 1); err != nil || got != s.raft.LastIndex() {
		t.Errorf("earlierTermsEnd(term+1) = %d, %v; want the whole log, %d", got, err, s.raft.LastIndex())
	}
}
