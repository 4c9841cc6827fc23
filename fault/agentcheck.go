//go:build linux

package fault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// LinearizableTasks lists the manifest's tasks with a linearizable read,
// over the observer's link, through the first running server that
// answers (followers forward it to the leader).
func (c *Cluster) LinearizableTasks(ctx context.Context) (map[string]*fsm.Task, error) {
	var errs []error
	for _, sv := range c.Servers {
		if !sv.Running() || sv.Paused() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var reply rpc.TaskListReply
		err := c.ObserverCall(cctx, sv, rpc.MethodTaskList, &rpc.TaskListArgs{Limit: rpc.MaxTaskListLimit}, &reply)
		cancel()
		if err == nil && reply.NextCursor != "" {
			err = fmt.Errorf("more than %d tasks: one linearizable read cannot list them (the harness's workloads stay far below)", rpc.MaxTaskListLimit)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sv.Name, err))
			continue
		}
		out := make(map[string]*fsm.Task, len(reply.Tasks))
		for _, t := range reply.Tasks {
			out[t.ID] = t
		}
		return out, nil
	}
	return nil, fmt.Errorf("no server answered Task.List: %w", errors.Join(errs...))
}

// WaitJobsDone waits until every acknowledged job is complete and every
// uncertain one is either absent or complete: an acknowledged task must
// eventually run to completion, whatever happened on the way. A job that
// failed ends the wait with an error at once. It returns the manifest's
// tasks as last read.
func (c *Cluster) WaitJobsDone(ctx context.Context, acked, uncertain []string) (map[string]*fsm.Task, error) {
	var last string
	for {
		tasks, err := c.LinearizableTasks(ctx)
		if err == nil {
			var waiting, failed []string
			check := func(id string, mustExist bool) {
				t := tasks[id]
				switch {
				case t == nil && mustExist:
					waiting = append(waiting, id+" (missing)")
				case t == nil:
				case t.Status == fsm.TaskFailed:
					msg := ""
					if t.Result != nil {
						msg = t.Result.Error
					}
					failed = append(failed, fmt.Sprintf("%s failed after %d attempts on %s: %s", id, t.Attempts, t.NodeID, msg))
				case t.Status != fsm.TaskComplete:
					waiting = append(waiting, fmt.Sprintf("%s (%s on %q)", id, t.Status, t.NodeID))
				}
			}
			for _, id := range acked {
				check(id, true)
			}
			for _, id := range uncertain {
				check(id, false)
			}
			if len(failed) > 0 {
				return tasks, fmt.Errorf("jobs failed: %s", strings.Join(failed, "; "))
			}
			if len(waiting) == 0 {
				return tasks, nil
			}
			last = fmt.Sprintf("%d jobs not complete: %s", len(waiting), firstN(waiting, 10))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return tasks, fmt.Errorf("acknowledged jobs did not all complete: %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func firstN(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], ", ") + fmt.Sprintf(", … %d more", len(s)-n)
	}
	return strings.Join(s, ", ")
}

// AgentsFollowing is what WaitAgentsFollowLeader saw.
type AgentsFollowing struct {
	Leader string
	// Age is each agent's heartbeat_age_ms on the leader.
	Age map[string]int64
	// First is when each agent's first heartbeat to Leader arrived, as
	// far as the polls saw it: at the first poll that showed one, the
	// answer's arrival less its age (exact while polls come faster than
	// the heartbeat interval).
	First map[string]time.Time
	at    time.Time // when the leader's answer arrived
}

// Last is when the last agent to follow Leader first reached it.
func (a AgentsFollowing) Last() time.Time {
	var last time.Time
	for _, t := range a.First {
		if t.After(last) {
			last = t
		}
	}
	return last
}

func (a AgentsFollowing) String() string {
	names := make([]string, 0, len(a.Age))
	for n := range a.Age {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d ms", n, a.Age[n])
	}
	return fmt.Sprintf("leader %s: heartbeat ages %s", a.Leader, strings.Join(parts, ", "))
}

// WaitAgentsFollowLeader waits until the current leader (the running
// server claiming leadership in the highest term) has heard a heartbeat
// from every running agent within maxAge and sees it healthy: Node.List
// on the leader, heartbeat_age_ms ≥ 0 (-1 means this leader has not heard
// from the node) and ≤ maxAge. Servers named in not are never taken for
// the leader (an isolated old leader that still claims it).
func (c *Cluster) WaitAgentsFollowLeader(ctx context.Context, maxAge time.Duration, not ...string) (AgentsFollowing, error) {
	if len(c.Agents) == 0 {
		return AgentsFollowing{}, errNoAgents
	}
	var last string
	first := map[string]time.Time{}
	firstOf := ""
	for {
		res, err := c.agentsFollowing(ctx, maxAge, not)
		if res.Leader != firstOf {
			first, firstOf = map[string]time.Time{}, res.Leader
		}
		for name, age := range res.Age {
			if _, seen := first[name]; !seen && age >= 0 {
				first[name] = res.at.Add(-time.Duration(age) * time.Millisecond)
			}
		}
		res.First = first
		if err == nil {
			return res, nil
		}
		last = err.Error()
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("agents do not all heartbeat to the leader: %s", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) agentsFollowing(ctx context.Context, maxAge time.Duration, not []string) (AgentsFollowing, error) {
	var leader *Server
	var term uint64
	for _, sv := range c.Servers {
		if !sv.Running() || sv.Paused() || slices.Contains(not, sv.Name) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.Status(cctx, sv)
		cancel()
		if err == nil && st.State == "leader" && st.Term >= term {
			leader, term = sv, st.Term
		}
	}
	if leader == nil {
		return AgentsFollowing{}, ErrNoLeader
	}
	res := AgentsFollowing{Leader: leader.Name, Age: map[string]int64{}}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var reply rpc.NodeListReply
	if err := c.ObserverCall(cctx, leader, rpc.MethodNodeList, &rpc.NodeListArgs{QueryOptions: rpc.QueryOptions{Stale: true}}, &reply); err != nil {
		return res, fmt.Errorf("Node.List on %s: %w", leader.Name, err)
	}
	res.at = time.Now()
	nodes := map[string]rpc.NodeInfo{}
	for _, n := range reply.Nodes {
		nodes[n.ID] = n
	}
	var bad []string
	for _, a := range c.RunningAgents() {
		n, ok := nodes[a.Name]
		if !ok {
			bad = append(bad, a.Name+" not registered")
			continue
		}
		res.Age[a.Name] = n.HeartbeatAgeMS
		if n.HeartbeatAgeMS < 0 || n.HeartbeatAgeMS > maxAge.Milliseconds() || n.Status != fsm.NodeHealthy {
			bad = append(bad, fmt.Sprintf("%s %s, heartbeat age %d ms", a.Name, n.Status, n.HeartbeatAgeMS))
		}
	}
	if len(bad) > 0 {
		return res, fmt.Errorf("on leader %s: %s", leader.Name, strings.Join(bad, "; "))
	}
	return res, nil
}
