package fsm

// This file applies the node entries: register, unregister and status.
// As for tasks, each pure checkX validates against the state and applyX
// mutates only after it passed.

// nodeRegistration is what checkNodeRegister decided about a register.
type nodeRegistration struct {
	old   *Node // the node registered before, or nil
	holds bool  // old holds tasks, which the registration requeues
	noop  bool  // nothing new: old is returned unchanged
}

// checkNodeRegister validates a node_register entry against the state.
func (s *state) checkNodeRegister(e *NodeRegisterEntry) (nodeRegistration, *Error) {
	if err := validNodeRegister(e); err != nil {
		return nodeRegistration{}, err
	}
	r := nodeRegistration{old: s.nodes[e.ID]}
	r.holds = r.old != nil && s.tasks.heldCount(e.ID) > 0
	old := r.old
	r.noop = old != nil && !r.holds && old.Status == NodeHealthy && old.Address == e.Address && old.Cloud == e.Cloud &&
		old.Region == e.Region && old.Capacity == e.Capacity && sameMap(old.Meta, normMap(e.Meta))
	return r, nil
}

// applyNodeRegister creates a node, or updates a returning one and marks
// it healthy. Registering again with nothing new is a no-op — unless the
// node still holds tasks: an agent registers only when it starts, so a
// registration means the agent restarted and lost whatever it was running,
// and those tasks are requeued (attempts counted).
func (s *state) applyNodeRegister(e *NodeRegisterEntry, ix uint64, res *ApplyResult) bool {
	r, err := s.checkNodeRegister(e)
	switch {
	case err != nil:
		res.Err = err
		return false
	case r.noop:
		res.Node = r.old
		return false
	}
	n := &Node{
		ID:           e.ID,
		Address:      e.Address,
		Cloud:        e.Cloud,
		Region:       e.Region,
		Capacity:     e.Capacity,
		Meta:         normMap(e.Meta),
		Status:       NodeHealthy,
		RegisteredAt: e.Time,
		UpdatedAt:    e.Time,
		CreateIndex:  ix,
		ModifyIndex:  ix,
	}
	if old := r.old; old != nil {
		n.ID = old.ID
		n.RegisteredAt = old.RegisteredAt
		n.CreateIndex = old.CreateIndex
	}
	s.nodes[n.ID] = n
	bump(&s.idx.Nodes, ix)
	if r.holds {
		s.requeueHeld(n.ID, "registered again (agent restarted)", e.Time, ix)
	}
	res.Node = n
	return true
}

// validNodeRegister validates a node_register entry on its own.
func validNodeRegister(e *NodeRegisterEntry) *Error {
	if err := checkID("node id", e.ID); err != nil {
		return err
	}
	if e.Capacity < 1 || e.Capacity > MaxCapacity {
		return invalidf("node capacity is %d; use 1 to %d", e.Capacity, MaxCapacity)
	}
	return firstErr(
		checkText("node address", e.Address, 0, maxAddressLen),
		checkLabel("node cloud", e.Cloud, maxLabelLen, false),
		checkLabel("node region", e.Region, maxLabelLen, false),
		checkMap("node meta", e.Meta),
		checkTime(e.Time),
	)
}

// checkNodeUnregister validates a node_unregister entry and returns the
// node.
func (s *state) checkNodeUnregister(e *NodeUnregisterEntry) (*Node, *Error) {
	if err := firstErr(checkRef("node id", e.NodeID), checkTime(e.Time)); err != nil {
		return nil, err
	}
	n := s.nodes[e.NodeID]
	if n == nil {
		return nil, notFoundf("node %s does not exist", quote(e.NodeID))
	}
	return n, nil
}

// applyNodeUnregister requeues the node's tasks and deletes it.
func (s *state) applyNodeUnregister(e *NodeUnregisterEntry, ix uint64, res *ApplyResult) bool {
	n, err := s.checkNodeUnregister(e)
	if err != nil {
		res.Err = err
		return false
	}
	s.requeueHeld(n.ID, "left", e.Time, ix)
	delete(s.nodes, n.ID)
	bump(&s.idx.Nodes, ix)
	return true
}

// checkNodeStatus validates a node_status entry and returns the node;
// noop is set when it already has that status.
func (s *state) checkNodeStatus(e *NodeStatusEntry) (old *Node, noop bool, err *Error) {
	if err := firstErr(checkRef("node id", e.NodeID), checkTime(e.Time)); err != nil {
		return nil, false, err
	}
	if !e.Status.Valid() {
		return nil, false, invalidf("node status %s is not one of healthy, degraded, unreachable", quote(string(e.Status)))
	}
	old = s.nodes[e.NodeID]
	switch {
	case old == nil:
		return nil, false, notFoundf("node %s does not exist", quote(e.NodeID))
	case old.Status == e.Status:
		return old, true, nil
	}
	return old, false, nil
}

// applyNodeStatus records a liveness change; a node that becomes
// unreachable loses its tasks.
func (s *state) applyNodeStatus(e *NodeStatusEntry, ix uint64, res *ApplyResult) bool {
	old, noop, err := s.checkNodeStatus(e)
	switch {
	case err != nil:
		res.Err = err
		return false
	case noop:
		res.Node = old
		return false
	}
	n := *old
	n.Status = knownNodeStatus(e.Status)
	n.UpdatedAt = e.Time
	n.ModifyIndex = ix
	if n.Status == NodeUnreachable {
		s.requeueHeld(n.ID, "unreachable", e.Time, ix)
	}
	s.nodes[n.ID] = &n
	bump(&s.idx.Nodes, ix)
	res.Node = &n
	return true
}

// knownNodeStatus returns the package constant equal to st, so stored
// nodes share one string instead of each holding a decoded copy.
func knownNodeStatus(st NodeStatus) NodeStatus {
	switch st {
	case NodeHealthy:
		return NodeHealthy
	case NodeDegraded:
		return NodeDegraded
	case NodeUnreachable:
		return NodeUnreachable
	}
	return st
}
