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
// commit (a barrier did, two round trips after the election). The two
// survivors' requests to each other take establishSlowLink each way, so
// the new term's no-op cannot commit sooner than that after the
// election; leadership must be established (LeaderReady, its watch
// fired) while the commit index is still below the no-op.
func TestLeadershipEstablishedAtTheElection(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.waitLeader(10 * time.Second)
	if err := c.servers[old].propose(&fsm.NodeRegisterEntry{ID: "n1", Address: "10.0.0.1:7000", Cloud: "aws", Capacity: 1, Time: 1}); err != nil {
		t.Fatal(err)
	}
	var rest []int
	for i := range c.servers {
		if i != old {
			rest = append(rest, i)
		}
	}
	succeedsWithin(t, 10*time.Second, func() error { // every server applied it
		for _, i := range rest {
			if c.servers[i].fsm.Node("n1") == nil {
				return fmt.Errorf("%s has not applied n1", c.cfgs[i].NodeID)
			}
		}
		return nil
	})
	for _, i := range rest {
		c.slow(i, establishSlowLink)
	}
	c.isolate(old, true)

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
			if s.fsm.Node("n1") == nil {
				t.Fatal("the new leader's read does not see n1")
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
