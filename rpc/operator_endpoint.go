package rpc

import (
	"context"

	"github.com/rctl-dev/rctl/fsm"
)

func (s *Server) raftPeers(ctx context.Context, req *Request) (any, error) {
	servers, err := s.b.Servers()
	if err != nil {
		return nil, err
	}
	_, leaderID := s.leader()
	reply := &RaftPeersReply{Index: s.b.ConfigIndex(), Peers: []RaftPeer{}}
	for _, srv := range servers {
		reply.Peers = append(reply.Peers, RaftPeer{
			ID: srv.ID, Address: srv.Address, Suffrage: suffrage(srv.Voter), Leader: srv.ID == leaderID,
		})
	}
	return reply, nil
}

func (s *Server) join(ctx context.Context, req *Request) (any, error) {
	var a JoinArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	lbl := fsm.Server{ID: a.ID, Address: a.Address, Cloud: a.Cloud, Region: a.Region}
	if err := ValidateServer(lbl); err != nil {
		return nil, err
	}
	if err := authorizeServerID(ctx, req.Method, a.ID); err != nil {
		return nil, err
	}
	var reply Empty
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	servers, err := s.b.Servers()
	if err != nil {
		return nil, err
	}
	for _, srv := range servers {
		switch {
		case srv.ID == a.ID && srv.Address == a.Address && srv.Voter == a.Voter:
			// Already a member as asked: a retried join is a no-op.
			return s.upsertLabels(ctx, lbl)
		case srv.Address == a.Address && srv.ID != a.ID:
			return nil, Errorf(CodeConflict, "address %s already belongs to server %s; remove it first with `rctl operator raft remove-peer %s`", a.Address, srv.ID, srv.ID)
		}
	}
	if _, err := s.b.AddServer(ctx, a.ID, a.Address, a.Voter); err != nil {
		return nil, err
	}
	return s.upsertLabels(ctx, lbl)
}

func (s *Server) upsertLabels(ctx context.Context, lbl fsm.Server) (*Empty, error) {
	res, err := s.apply(ctx, &fsm.ServerUpsertEntry{Server: lbl})
	if err != nil {
		return nil, err
	}
	return &Empty{Index: res.Index}, nil
}

// ValidateServer checks a server's id, address and labels by the
// manifest's rules, before anything changes (Operator.Join adds to the raft
// configuration before it records the labels).
func ValidateServer(lbl fsm.Server) error {
	if lbl.ID == "" {
		return Errorf(CodeInvalidArgument, "server id is required")
	}
	if lbl.Address == "" {
		return Errorf(CodeInvalidArgument, "server address is required")
	}
	if err := fsm.CheckServer(lbl); err != nil {
		return Errorf(CodeInvalidArgument, "%v", err)
	}
	return nil
}

func (s *Server) serverLabels(ctx context.Context, req *Request) (any, error) {
	var a ServerLabelsArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if err := ValidateServer(a.Server); err != nil {
		return nil, err
	}
	if err := authorizeServerID(ctx, req.Method, a.Server.ID); err != nil {
		return nil, err
	}
	var reply Empty
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	if cur := s.fsm.Server(a.Server.ID); cur != nil && *cur == a.Server {
		return &Empty{Index: s.fsm.Indexes().Servers}, nil
	}
	return s.upsertLabels(ctx, a.Server)
}

func (s *Server) removePeer(ctx context.Context, req *Request) (any, error) {
	var a RemovePeerArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, Errorf(CodeInvalidArgument, "server id is required")
	}
	var reply Empty
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	servers, err := s.b.Servers()
	if err != nil {
		return nil, err
	}
	found := false
	for _, srv := range servers {
		found = found || srv.ID == a.ID
	}
	if !found {
		return nil, Errorf(CodeNotFound, "server %q is not in the raft configuration; see `rctl operator raft list-peers`", a.ID)
	}
	// Forget the labels first: once the leader removes itself it can no
	// longer write.
	if _, err := s.apply(ctx, &fsm.ServerRemoveEntry{ID: a.ID}); err != nil {
		return nil, err
	}
	idx, err := s.b.RemoveServer(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return &Empty{Index: idx}, nil
}

func (s *Server) transferLeader(ctx context.Context, req *Request) (any, error) {
	var a TransferArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	var reply TransferReply
	// Not s.forward: a forwarded call follows leadership and is sent again
	// to a new leader, and a transfer's very effect is a new leader — it
	// would move leadership a second time (seen as a transfer "bouncing"
	// back within 50 ms, the term up by 2).
	if done, err := s.forwardOnce(ctx, req, &reply); done {
		return &reply, err
	}
	self := s.b.Self().ID
	if a.ID != "" {
		if a.ID == self {
			return &TransferReply{LeaderID: self, LeaderAddr: s.b.Self().Address}, nil
		}
		servers, err := s.b.Servers()
		if err != nil {
			return nil, err
		}
		var target *RaftServer
		for _, srv := range servers {
			if srv.ID == a.ID {
				target = &srv
			}
		}
		if target == nil {
			return nil, Errorf(CodeNotFound, "server %q is not in the raft configuration", a.ID)
		}
		if !target.Voter {
			return nil, Errorf(CodeInvalidArgument, "server %q is a non-voter and cannot lead", a.ID)
		}
	}
	id, addr, err := s.b.TransferLeadership(ctx, a.ID)
	switch {
	case err == nil:
		return &TransferReply{LeaderID: id, LeaderAddr: addr}, nil
	case CodeOf(err) == CodeConflict:
		return nil, err
	case ctx.Err() != nil:
		return nil, Errorf(CodeDeadlineExceeded, "leadership left %s but no new leader was seen before the deadline", self)
	}
	return nil, Errorf(CodeUnavailable, "leadership transfer failed: %v", err)
}
