package fsm

// This file applies the node entries: register, unregister and status.

// applyNodeRegister creates a node, or updates a returning one and marks
// it healthy. Registering again with nothing new is a no-op — unless the
// node still holds tasks: an agent registers only when it starts, so a
// registration means the agent restarted and lost whatever it was running,
// and those tasks are requeued (attempts counted).
func (s *state) applyNodeRegister(e *NodeRegisterEntry, ix uint64, res *ApplyResult) bool {
	if err := checkNodeRegister(e); err != nil {
		res.Err = err
		return false
	}
	meta := normMap(e.Meta)
	old := s.nodes[e.ID]
	holds := old != nil && len(s.tasks.heldBy(e.ID)) > 0
	if old != nil && !holds && old.Status == NodeHealthy && old.Address == e.Address && old.Cloud == e.Cloud &&
		old.Region == e.Region && old.Capacity == e.Capacity && sameMap(old.Meta, meta) {
		res.Node = old
		return false
	}
	n := &Node{
		ID:           e.ID,
		Address:      e.Address,
		Cloud:        e.Cloud,
		Region:       e.Region,
		Capacity:     e.Capacity,
		Meta:         meta,
		Status:       NodeHealthy,
		RegisteredAt: e.Time,
		UpdatedAt:    e.Time,
		CreateIndex:  ix,
		ModifyIndex:  ix,
	}
	if old != nil {
		n.ID = old.ID
		n.RegisteredAt = old.RegisteredAt
		n.CreateIndex = old.CreateIndex
	}
	s.nodes[n.ID] = n
	bump(&s.idx.Nodes, ix)
	if holds {
		s.requeueHeld(n.ID, "registered again (agent restarted)", e.Time, ix)
	}
	res.Node = n
	return true
}

func checkNodeRegister(e *NodeRegisterEntry) *Error {
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

// applyNodeUnregister requeues the node's tasks and deletes it.
func (s *state) applyNodeUnregister(e *NodeUnregisterEntry, ix uint64, res *ApplyResult) bool {
	if err := firstErr(checkRef("node id", e.NodeID), checkTime(e.Time)); err != nil {
		res.Err = err
		return false
	}
	n := s.nodes[e.NodeID]
	if n == nil {
		res.Err = notFoundf("node %s does not exist", quote(e.NodeID))
		return false
	}
	s.requeueHeld(n.ID, "left", e.Time, ix)
	delete(s.nodes, n.ID)
	bump(&s.idx.Nodes, ix)
	return true
}

// applyNodeStatus records a liveness change; a node that becomes
// unreachable loses its tasks.
func (s *state) applyNodeStatus(e *NodeStatusEntry, ix uint64, res *ApplyResult) bool {
	if err := firstErr(checkRef("node id", e.NodeID), checkTime(e.Time)); err != nil {
		res.Err = err
		return false
	}
	if !e.Status.Valid() {
		res.Err = invalidf("node status %s is not one of healthy, degraded, unreachable", quote(string(e.Status)))
		return false
	}
	old := s.nodes[e.NodeID]
	switch {
	case old == nil:
		res.Err = notFoundf("node %s does not exist", quote(e.NodeID))
		return false
	case old.Status == e.Status:
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
