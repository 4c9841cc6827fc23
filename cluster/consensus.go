package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// The replicated log as the RPC layer uses it (rpc.Backend): intents, not
// raft's API, so that rpc does not import hashicorp/raft. Every raft error
// leaves here as an *rpc.Error with a documented code (raftError).

const (
	// membershipTimeout bounds how long a configuration change waits to
	// enter the leader's queue.
	membershipTimeout = 10 * time.Second
	// restoreTimeout bounds how long an operator's restore waits to enter
	// the leader's queue (the restore itself then runs to its end).
	restoreTimeout = 2 * time.Minute
)

// RaftState is a snapshot of this server's raft state.
func (s *Server) RaftState() rpc.RaftState {
	return rpc.RaftState{
		State:       strings.ToLower(s.raft.State().String()),
		Term:        s.raft.CurrentTerm(),
		CommitIndex: s.raft.CommitIndex(), AppliedIndex: s.raft.AppliedIndex(),
		LastIndex:   s.raft.LastIndex(),
		LastContact: s.raft.LastContact(),
	}
}

// Leader is the leader's address and id as this server knows them.
func (s *Server) Leader() (addr, id string) {
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// IsLeader reports whether this server is the raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// Servers is the latest raft configuration this server knows.
func (s *Server) Servers() ([]rpc.RaftServer, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	cfg := f.Configuration()
	out := make([]rpc.RaftServer, 0, len(cfg.Servers))
	for _, srv := range cfg.Servers {
		out = append(out, rpc.RaftServer{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out, nil
}

// Propose appends an encoded entry and waits for the state machine's
// result (rpc.Backend).
func (s *Server) Propose(ctx context.Context, data []byte, timeout time.Duration) (*fsm.ApplyResult, error) {
	t0 := time.Now()
	f := s.raft.Apply(data, timeout)
	done, err := awaitFuture(ctx, f)
	switch {
	case !done:
		return nil, rpc.Errorf(rpc.CodeDeadlineExceeded, "the write was proposed but not committed before the deadline; it may still commit — read it back before retrying")
	case err != nil:
		return nil, raftError(err)
	}
	s.commitLat.observe(time.Since(t0))
	res, ok := f.Response().(*fsm.ApplyResult)
	if !ok {
		return nil, rpc.Errorf(rpc.CodeInternal, "unexpected apply result %T", f.Response())
	}
	return res, nil
}

// ReadBarrier makes a linearizable read safe on the leader (rpc.Backend).
// It is raft's read-index protocol: wait until this term's barrier has
// applied (LeaderWatch fires when leadership is established), take the
// commit index, confirm leadership with a quorum, then wait until the
// manifest reflects every entry up to that index (awaitApplied).
func (s *Server) ReadBarrier(ctx context.Context) error {
	for {
		established := s.LeaderWatch()
		if s.LeaderReady() {
			break
		}
		if !s.IsLeader() {
			return rpc.NoLeader(s.cfg.NodeID)
		}
		select {
		case <-ctx.Done():
			return rpc.Errorf(rpc.CodeUnavailable, "the new leader has not caught up yet; retry")
		case <-established:
		}
	}
	readIndex := s.raft.CommitIndex()
	if err := s.verifyLeader(ctx); err != nil {
		return err
	}
	return s.awaitApplied(ctx, readIndex)
}

// awaitApplied waits until the manifest reflects every log entry up to
// index. raft's AppliedIndex cannot say so: it counts the entries handed to
// the FSM goroutine, not applied by it. The manifest's own applied index
// can, but it advances only on command entries; no-ops, barriers and
// configuration entries never reach it and change nothing in it. So the
// wait is for the last command entry at or below index, found by walking
// the (cached) log down from index; an entry missing from the log was
// compacted into a snapshot this manifest already holds.
func (s *Server) awaitApplied(ctx context.Context, index uint64) error {
	var l raft.Log
	for i := index; i > s.fsm.Indexes().Applied; i-- {
		if err := s.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return nil
			}
			return rpc.Errorf(rpc.CodeInternal, "read log entry %d: %v", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		select {
		case <-s.fsm.AppliedCh(i):
			return nil
		case <-ctx.Done():
			return rpc.Errorf(rpc.CodeDeadlineExceeded, "the leader did not apply index %d before the deadline", i)
		}
	}
	return nil
}

func (s *Server) verifyLeader(ctx context.Context) error {
	done, err := awaitFuture(ctx, s.raft.VerifyLeader())
	switch {
	case !done:
		return rpc.Errorf(rpc.CodeUnavailable, "server %s could not confirm its leadership with a quorum before the deadline; the cluster may have lost its majority", s.cfg.NodeID)
	case err != nil:
		return rpc.Errorf(rpc.CodeUnavailable, "server %s could not confirm its leadership with a quorum (%v); retry", s.cfg.NodeID, err)
	}
	return nil
}

// AddServer adds a voter or a non-voter (rpc.Backend).
func (s *Server) AddServer(ctx context.Context, id, addr string, voter bool) (uint64, error) {
	var fut raft.IndexFuture
	if voter {
		fut = s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	} else {
		fut = s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, membershipTimeout)
	}
	if err := waitChange(ctx, fut); err != nil {
		return 0, wrapRaftError(fmt.Sprintf("add server %s", id), err)
	}
	s.log.Info("server added to the raft configuration", "id", id, "address", addr, "voter", voter)
	return fut.Index(), nil
}

// RemoveServer removes a server from the configuration (rpc.Backend).
func (s *Server) RemoveServer(ctx context.Context, id string) (uint64, error) {
	fut := s.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout)
	if err := waitChange(ctx, fut); err != nil {
		return 0, wrapRaftError(fmt.Sprintf("remove server %s", id), err)
	}
	s.log.Info("server removed from the raft configuration", "id", id)
	return fut.Index(), nil
}

// Restore installs a snapshot the RPC layer has verified (rpc.Backend).
func (s *Server) Restore(ctx context.Context, r io.Reader, size int64) (uint64, error) {
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	if err := s.raft.Restore(meta, r, restoreTimeout); err != nil {
		return 0, wrapRaftError("restore snapshot", err)
	}
	return s.raft.AppliedIndex(), nil
}

// awaitFuture waits for a raft future or for ctx: done false when ctx
// ended first, else the future's error. What it stands for still runs
// to its end then: raft has no way to withdraw it.
func awaitFuture(ctx context.Context, f raft.Future) (done bool, err error) {
	errCh := make(chan error, 1)
	go func() { errCh <- f.Error() }()
	select {
	case err := <-errCh:
		return true, err
	case <-ctx.Done():
		return false, nil
	}
}

// waitChange is awaitFuture for a configuration change.
func waitChange(ctx context.Context, f raft.Future) error {
	done, err := awaitFuture(ctx, f)
	if !done {
		return rpc.Errorf(rpc.CodeDeadlineExceeded, "the change was queued but did not complete before the deadline; it may still complete — check before retrying")
	}
	return err
}

// raftError maps raft's errors to the RPC error codes (docs/rpc.md,
// "Errors"); anything else stays as it is (rpc maps it to internal).
func raftError(err error) error {
	var e *rpc.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return err
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return rpc.Errorf(rpc.CodeUnavailable, "leadership changed while the request was in flight; retry")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return rpc.Errorf(rpc.CodeUnavailable, "the leader did not take the write in time (cluster overloaded or losing quorum); retry")
	case errors.Is(err, raft.ErrRaftShutdown):
		return rpc.Errorf(rpc.CodeUnavailable, "the server is shutting down; retry on another server")
	}
	return err
}

// wrapRaftError is raftError for a named operation: a mapped error keeps
// its code, anything else is wrapped with what failed.
func wrapRaftError(what string, err error) error {
	mapped := raftError(err)
	var e *rpc.Error
	if errors.As(mapped, &e) {
		return mapped
	}
	return fmt.Errorf("%s: %w", what, err)
}
