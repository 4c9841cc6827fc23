package rpc

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// statusProbeTimeout bounds the leader's probe of each server for
// Status.Members: several cross-cloud round trips.
const statusProbeTimeout = 1500 * time.Millisecond

func (s *Server) localStatus() *StatusReply {
	self := s.b.Self()
	addr, id := s.leader()
	r := &StatusReply{
		ID: self.ID, Address: self.Address, Cloud: self.Cloud, Region: self.Region,
		State:    strings.ToLower(s.raft.State().String()),
		LeaderID: id, LeaderAddr: addr,
		Term:        s.raft.CurrentTerm(),
		CommitIndex: s.raft.CommitIndex(), AppliedIndex: s.raft.AppliedIndex(),
		LastIndex: s.raft.LastIndex(),
		Version:   s.cfg.Version,
	}
	if r.State != "leader" {
		if lc := s.raft.LastContact(); !lc.IsZero() {
			r.LastContactMS = time.Since(lc).Milliseconds()
		} else {
			r.LastContactMS = -1
		}
	}
	if t := s.b.LastLeaderChange(); !t.IsZero() {
		r.LastLeaderChangeMS = t.UnixMilli()
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		r.NumPeers = len(f.Configuration().Servers)
	}
	return r
}

func (s *Server) status(ctx context.Context, req *Request) (any, error) {
	var a StatusArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.MaxWaitMS < 0 {
		return nil, Errorf(CodeInvalidArgument, "max_wait_ms must not be negative, got %d", a.MaxWaitMS)
	}
	if a.MinIndex > 0 {
		wait := DefaultMaxWait
		if a.MaxWaitMS > 0 {
			wait = min(time.Duration(a.MaxWaitMS)*time.Millisecond, MaxMaxWait)
		}
		deadline := time.Now().Add(wait)
		startLeader, _ := s.leader()
		startTerm := s.raft.CurrentTerm()
		for s.raft.AppliedIndex() <= a.MinIndex && time.Now().Before(deadline) && ctx.Err() == nil {
			// Wake on a new entry or on any change of leader or term, so
			// a watcher sees elections as they happen.
			if l, _ := s.leader(); l != startLeader || s.raft.CurrentTerm() != startTerm {
				break
			}
			select {
			case <-s.fsm.WatchCh():
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
	return s.localStatus(), nil
}

func (s *Server) members(ctx context.Context, req *Request) (any, error) {
	var a MembersArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	var reply MembersReply
	if !a.Stale {
		if done, err := s.forward(ctx, req, &reply); done {
			return &reply, err
		}
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	servers := f.Configuration().Servers
	_, leaderID := s.leader()
	self := s.localStatus()
	amLeader := self.State == "leader"

	reply.From = self.ID
	reply.Members = make([]Member, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		m := &reply.Members[i]
		m.ID, m.Address = string(srv.ID), string(srv.Address)
		m.Suffrage = suffrage(srv.Suffrage)
		m.Leader = string(srv.ID) == leaderID
		m.LastContactMS, m.Lag = -1, -1
		// The manifest's labels are the one answer every server gives; a
		// server's own report fills in only until its labels are recorded.
		lbl := s.fsm.Server(m.ID)
		if lbl != nil {
			m.Cloud, m.Region = lbl.Cloud, lbl.Region
		}
		if m.ID == self.ID {
			if lbl == nil {
				m.Cloud, m.Region = self.Cloud, self.Region
			}
			m.State, m.Term = self.State, self.Term
			if amLeader {
				m.LastContactMS, m.Lag = 0, 0
			}
			continue
		}
		if !amLeader {
			m.State = "unknown"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, statusProbeTimeout)
			defer cancel()
			var st StatusReply
			if err := s.pool.Call(pctx, m.Address, MethodStatus, &StatusArgs{}, &st); err != nil {
				m.State = "unreachable"
				return
			}
			m.State, m.Term, m.LastContactMS = st.State, st.Term, st.LastContactMS
			if lbl == nil && st.Cloud != "" {
				m.Cloud, m.Region = st.Cloud, st.Region
			}
			m.Lag = max(int64(self.LastIndex)-int64(st.LastIndex), 0)
		}()
	}
	wg.Wait()
	sort.Slice(reply.Members, func(i, j int) bool { return reply.Members[i].ID < reply.Members[j].ID })
	reply.Warnings = GeometryWarnings(reply.Members)
	return &reply, nil
}

func suffrage(s raft.ServerSuffrage) string {
	if s == raft.Voter {
		return "voter"
	}
	return "nonvoter"
}

// GeometryWarnings explains voter layouts that cannot survive the loss of
// one cloud: voters spread over two or more clouds such that losing any one
// of them leaves fewer voters than a quorum (e.g. 3+3). A layout where one
// cloud holds a quorum on its own (3+2) is the recommended shape and gets
// no warning, although losing that cloud still stops writes.
func GeometryWarnings(ms []Member) []string {
	perCloud := map[string]int{}
	voters := 0
	for _, m := range ms {
		if m.Suffrage != "voter" {
			continue
		}
		voters++
		perCloud[m.Cloud]++
	}
	if len(perCloud) < 2 || voters == 0 {
		return []string{}
	}
	quorum := voters/2 + 1
	clouds := make([]string, 0, len(perCloud))
	for c := range perCloud {
		clouds = append(clouds, c)
	}
	sort.Strings(clouds)
	var fatal []string
	parts := make([]string, 0, len(clouds))
	for _, c := range clouds {
		name := c
		if name == "" {
			name = "(unlabelled)"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, perCloud[c]))
		if voters-perCloud[c] < quorum {
			fatal = append(fatal, name)
		}
	}
	layout := strings.Join(parts, " + ")
	switch {
	case len(fatal) == len(clouds):
		return []string{fmt.Sprintf("voters are split %s (quorum %d of %d): no cloud can be lost and a cloud split stops all writes; use an odd layout such as 3+2 or make one server a non-voter", layout, quorum, voters)}
	}
	return []string{}
}
