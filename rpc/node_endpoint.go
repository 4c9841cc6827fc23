package rpc

import (
	"context"
	"fmt"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

func (s *Server) serverList() []ServerAddr {
	out := []ServerAddr{}
	servers, err := s.b.Servers()
	if err != nil {
		return out
	}
	for _, srv := range servers {
		out = append(out, ServerAddr{ID: srv.ID, Address: srv.Address})
	}
	return out
}

func (s *Server) nodeRegister(ctx context.Context, req *Request) (any, error) {
	var a NodeRegisterArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, Errorf(CodeInvalidArgument, "node id is required")
	}
	if err := authorizeNode(ctx, req.Method, a.ID); err != nil {
		return nil, err
	}
	var reply NodeRegisterReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	res, err := s.apply(ctx, &fsm.NodeRegisterEntry{
		ID: a.ID, Address: a.Address, Cloud: a.Cloud, Region: a.Region,
		Capacity: a.Capacity, Meta: a.Meta, Time: time.Now().UnixNano(),
	})
	if err != nil {
		return nil, err
	}
	// Registration counts as a heartbeat: the node is alive right now.
	iv, ttl, ok := s.b.NodeHeartbeat(a.ID, false)
	if !ok {
		iv, ttl = s.b.HeartbeatParams()
	}
	addr, id := s.leader()
	return &NodeRegisterReply{Node: res.Node, Index: res.Index,
		HeartbeatIntervalMS: iv.Milliseconds(), TTLMS: ttl.Milliseconds(), FollowSpreadMS: s.b.FollowSpread().Milliseconds(),
		LeaderID: id, LeaderAddr: addr, Servers: s.serverList()}, nil
}

// establishWait bounds how long a heartbeat that reaches a leader before
// its leadership is established (LeaderReady) waits for that,
// rather than sending the agent into backoff: agents that follow an
// election arrive within milliseconds of it.
const establishWait = 2 * time.Second

// heartbeatWhenEstablished records a heartbeat, waiting up to
// establishWait while this server leads but is not yet established.
func (s *Server) heartbeatWhenEstablished(ctx context.Context, a HeartbeatArgs) (time.Duration, time.Duration, bool) {
	deadline := time.NewTimer(establishWait)
	defer deadline.Stop()
	for {
		changed := s.b.LeaderWatch()
		if iv, ttl, ok := s.b.NodeHeartbeat(a.NodeID, a.Draining); ok || !s.isLeader() {
			return iv, ttl, ok
		}
		select {
		case <-changed:
		case <-time.After(leaderRecheck):
		case <-deadline.C:
			return 0, 0, false
		case <-ctx.Done():
			return 0, 0, false
		}
	}
}

// nodeHeartbeat is answered by the leader only: liveness lives in the
// leader's memory, so heartbeats are never forwarded (that would double
// the traffic and hide from the agent where the leader is).
func (s *Server) nodeHeartbeat(ctx context.Context, req *Request) (any, error) {
	var a HeartbeatArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.NodeID == "" {
		return nil, Errorf(CodeInvalidArgument, "node_id is required")
	}
	if err := authorizeNode(ctx, req.Method, a.NodeID); err != nil {
		return nil, err
	}
	addr, id := s.leader()
	if !s.isLeader() {
		return nil, &Error{Code: CodeNotLeader, LeaderAddr: addr, LeaderID: id,
			Message: fmt.Sprintf("heartbeats go to the leader; server %s is not it (leader: %s)", s.b.Self().ID, orNone(id))}
	}
	node := s.fsm.Node(a.NodeID)
	if node == nil {
		return nil, Errorf(CodeNotFound, "node %q is not registered; call Node.Register", a.NodeID)
	}
	iv, ttl, ok := s.heartbeatWhenEstablished(ctx, a)
	if !ok {
		return nil, Errorf(CodeUnavailable, "server %s is becoming leader; retry in a moment", s.b.Self().ID)
	}
	if node.Status != fsm.NodeHealthy {
		res, err := s.apply(ctx, &fsm.NodeStatusEntry{NodeID: a.NodeID, Status: fsm.NodeHealthy, Time: time.Now().UnixNano()})
		if err != nil {
			return nil, err
		}
		s.log.Info("node status changed", "event", "node_status", "node", a.NodeID, "from", node.Status, "to", fsm.NodeHealthy)
		node = res.Node
	}
	tasks := s.fsm.NodeTasks(a.NodeID)
	if tasks == nil {
		tasks = []*fsm.Task{}
	}
	return &HeartbeatReply{
		Status: string(node.Status), HeartbeatIntervalMS: iv.Milliseconds(), TTLMS: ttl.Milliseconds(),
		FollowSpreadMS: s.b.FollowSpread().Milliseconds(),
		Tasks:          tasks, LeaderID: id, LeaderAddr: addr, Servers: s.serverList(),
		Index: s.fsm.Indexes().Tasks,
	}, nil
}

func (s *Server) nodeDeregister(ctx context.Context, req *Request) (any, error) {
	var a NodeIDArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.NodeID == "" {
		return nil, Errorf(CodeInvalidArgument, "node_id is required")
	}
	if err := authorizeNode(ctx, req.Method, a.NodeID); err != nil {
		return nil, err
	}
	var reply Empty
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	res, err := s.apply(ctx, &fsm.NodeUnregisterEntry{NodeID: a.NodeID, Time: time.Now().UnixNano()})
	if err != nil {
		return nil, err
	}
	s.b.ForgetNode(a.NodeID)
	return &Empty{Index: res.Index}, nil
}

func (s *Server) nodeInfo(n *fsm.Node) NodeInfo {
	info := NodeInfo{Node: *n, HeartbeatAgeMS: -1, ActiveTasks: s.fsm.HeldCount(n.ID)}
	if age, ok := s.b.NodeHeartbeatAge(n.ID); ok {
		info.HeartbeatAgeMS = age.Milliseconds()
	}
	return info
}

func (s *Server) nodeList(ctx context.Context, req *Request) (any, error) {
	var a NodeListArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	var reply NodeListReply
	err := s.blockingRead(ctx, req, a.QueryOptions, &reply, &reply.QueryMeta, func() uint64 {
		idx := s.fsm.Indexes()
		nodes := s.fsm.Nodes()
		reply.Nodes = make([]NodeInfo, 0, len(nodes))
		for _, n := range nodes {
			reply.Nodes = append(reply.Nodes, s.nodeInfo(n))
		}
		return max(idx.Nodes, idx.Tasks)
	})
	if err != nil {
		return nil, err
	}
	return &reply, nil
}

func (s *Server) nodeGet(ctx context.Context, req *Request) (any, error) {
	var a NodeGetArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.ID == "" {
		return nil, Errorf(CodeInvalidArgument, "node id is required")
	}
	var reply NodeGetReply
	err := s.blockingRead(ctx, req, a.QueryOptions, &reply, &reply.QueryMeta, func() uint64 {
		idx := s.fsm.Indexes()
		reply.Node, reply.Tasks = nil, nil
		if n := s.fsm.Node(a.ID); n != nil {
			info := s.nodeInfo(n)
			reply.Node = &info
			reply.Tasks = s.fsm.NodeTasks(a.ID)
		}
		return max(idx.Nodes, idx.Tasks)
	})
	if err != nil {
		return nil, err
	}
	if reply.Node == nil {
		return nil, Errorf(CodeNotFound, "node %q not found", a.ID)
	}
	if reply.Tasks == nil {
		reply.Tasks = []*fsm.Task{}
	}
	return &reply, nil
}

func (s *Server) taskReport(ctx context.Context, req *Request, build func(a *TaskReportArgs, now int64) any) (any, error) {
	var a TaskReportArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.TaskID == "" || a.NodeID == "" {
		return nil, Errorf(CodeInvalidArgument, "task_id and node_id are required")
	}
	if err := authorizeNode(ctx, req.Method, a.NodeID); err != nil {
		return nil, err
	}
	var reply TaskReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	res, err := s.apply(ctx, build(&a, time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	return &TaskReply{Task: res.Task, Index: res.Index}, nil
}

func (s *Server) taskStart(ctx context.Context, req *Request) (any, error) {
	return s.taskReport(ctx, req, func(a *TaskReportArgs, now int64) any {
		return &fsm.StartTaskEntry{TaskID: a.TaskID, NodeID: a.NodeID, Time: now}
	})
}

func (s *Server) taskComplete(ctx context.Context, req *Request) (any, error) {
	return s.taskReport(ctx, req, func(a *TaskReportArgs, now int64) any {
		return &fsm.CompleteTaskEntry{TaskID: a.TaskID, NodeID: a.NodeID, Result: a.Result, Time: now}
	})
}

func (s *Server) taskFail(ctx context.Context, req *Request) (any, error) {
	return s.taskReport(ctx, req, func(a *TaskReportArgs, now int64) any {
		return &fsm.FailTaskEntry{TaskID: a.TaskID, NodeID: a.NodeID, Result: a.Result, Time: now}
	})
}
