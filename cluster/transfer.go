package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/rpc"
)

// Leadership transfer, on an operator's request (Operator.TransferLeader)
// and when the leader stops (Shutdown). raft's own LeadershipTransfer()
// picks the follower with the longest log as the leader last saw it, dead
// or alive: with one voter down it kept choosing the dead one and every
// call failed with unavailable. Here the leader asks every voter for its
// status first and hands leadership only to one that answers, follows
// this leader and is caught up; among those it prefers the cloud leader
// placement prefers (placement.go), then the shortest lag, then the id.

// transferProbeTimeout bounds the status calls that choose a target: a
// few cross-cloud round trips.
const transferProbeTimeout = 2 * time.Second

// noTarget is the error when no voter can take over: conflict (retrying
// does not help until the cluster's state changes), naming each voter's
// reason.
func noTarget(reasons []string) error {
	return rpc.Errorf(rpc.CodeConflict, "no voter can take over leadership now: %s", strings.Join(reasons, "; "))
}

// transferTargets returns the voters leadership may go to, best first,
// and for each voter left out, why. only, if set, restricts the choice to
// that server id.
func (s *Server) transferTargets(ctx context.Context, only string) ([]candidate, []string) {
	voters, clouds, ok := s.voters()
	if !ok {
		return nil, []string{"the raft configuration is unavailable"}
	}
	want := preferredCloud(s.cfg.Placement.PreferCloud, clouds)
	last := s.raft.LastIndex()
	type scored struct {
		candidate
		preferred bool
	}
	var (
		mu      sync.Mutex
		out     []scored
		reasons []string
		wg      sync.WaitGroup
	)
	found := false
	for i, v := range voters {
		if string(v.ID) == s.cfg.NodeID || (only != "" && string(v.ID) != only) {
			continue
		}
		found = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, transferProbeTimeout)
			defer cancel()
			var st rpc.StatusReply
			err := s.rpc.Pool().Call(pctx, string(v.Address), rpc.MethodStatus, &rpc.StatusArgs{}, &st)
			mu.Lock()
			defer mu.Unlock()
			lag := uint64(0)
			if err == nil && last > st.LastIndex {
				lag = last - st.LastIndex
			}
			switch {
			case err != nil:
				reasons = append(reasons, fmt.Sprintf("%s does not answer (%v)", v.ID, err))
			case st.State != "follower" || st.LeaderID != s.cfg.NodeID:
				reasons = append(reasons, fmt.Sprintf("%s is %s and follows %q", v.ID, st.State, st.LeaderID))
			case lag > s.cfg.Placement.MaxLag:
				reasons = append(reasons, fmt.Sprintf("%s is %d entries behind", v.ID, lag))
			default:
				out = append(out, scored{candidate{id: string(v.ID), addr: string(v.Address), lag: lag}, want != "" && clouds[i] == want})
			}
		}()
	}
	wg.Wait()
	if only != "" && !found {
		return nil, []string{fmt.Sprintf("%s is not a voter of this cluster", only)}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.preferred != b.preferred {
			return a.preferred
		}
		if a.lag != b.lag {
			return a.lag < b.lag
		}
		return a.id < b.id
	})
	cands := make([]candidate, len(out))
	for i, o := range out {
		cands[i] = o.candidate
	}
	sort.Strings(reasons)
	return cands, reasons
}

// TransferLeadership hands leadership from this server (the leader) to
// target, or to the best live, caught-up voter when target is "", and
// waits until this server sees a new leader. It returns the new leader.
// Errors: raft.ErrNotLeader; conflict when no voter is suitable (naming why
// each was left out); raft's refusal; ctx's end before a new leader.
func (s *Server) TransferLeadership(ctx context.Context, target string) (id, addr string, err error) {
	if s.raft.State() != raft.Leader {
		return "", "", raft.ErrNotLeader
	}
	cands, reasons := s.transferTargets(ctx, target)
	if len(cands) == 0 {
		return "", "", noTarget(reasons)
	}
	c := cands[0]
	watch := s.LeaderWatch()
	s.log.Info("transferring leadership", "event", "leader_transfer", "to", c.id, "lag", c.lag)
	if err := s.raft.LeadershipTransferToServer(raft.ServerID(c.id), raft.ServerAddress(c.addr)).Error(); err != nil {
		return "", "", err
	}
	for {
		if a, lid := s.raft.LeaderWithID(); lid != "" && string(lid) != s.cfg.NodeID {
			return string(lid), string(a), nil
		}
		select {
		case <-watch:
			watch = s.LeaderWatch()
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
	}
}

// LeaderWatch returns a channel closed at the next leader change this
// server observes (a new leader, or the leader lost), or when its own
// leadership becomes established (it takes heartbeats from then on).
func (s *Server) LeaderWatch() <-chan struct{} {
	return s.leaderMoved.watch()
}

// leaderChanged wakes LeaderWatch's waiters (observe).
func (s *Server) leaderChanged() {
	s.leaderMoved.fire()
}
