package fsm

// This file applies the server entries: the labels of Raft servers.

// applyServerUpsert creates or replaces a server's labels.
func (s *state) applyServerUpsert(e *ServerUpsertEntry, ix uint64, res *ApplyResult) bool {
	sv := e.Server
	if err := firstErr(
		checkID("server id", sv.ID),
		checkText("server address", sv.Address, 1, maxAddressLen),
		checkLabel("server cloud", sv.Cloud, maxLabelLen, false),
		checkLabel("server region", sv.Region, maxLabelLen, false),
	); err != nil {
		res.Err = err
		return false
	}
	if old := s.servers[sv.ID]; old != nil && *old == sv {
		return false
	}
	s.servers[sv.ID] = &sv
	bump(&s.idx.Servers, ix)
	return true
}

// applyServerRemove forgets a server's labels; removing an unknown server
// is a no-op.
func (s *state) applyServerRemove(e *ServerRemoveEntry, ix uint64, res *ApplyResult) bool {
	if err := checkRef("server id", e.ID); err != nil {
		res.Err = err
		return false
	}
	if _, ok := s.servers[e.ID]; !ok {
		return false
	}
	delete(s.servers, e.ID)
	bump(&s.idx.Servers, ix)
	return true
}
