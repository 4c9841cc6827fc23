package fsm

// This file applies the server entries: the labels of Raft servers.

// checkServerUpsert validates a server_upsert entry; noop is set when the
// server already has exactly these labels.
func (s *state) checkServerUpsert(e *ServerUpsertEntry) (noop bool, err *Error) {
	sv := e.Server
	if err := checkServer(sv); err != nil {
		return false, err
	}
	old := s.servers[sv.ID]
	return old != nil && *old == sv, nil
}

// applyServerUpsert creates or replaces a server's labels.
func (s *state) applyServerUpsert(e *ServerUpsertEntry, ix uint64, res *ApplyResult) bool {
	noop, err := s.checkServerUpsert(e)
	if err != nil {
		res.Err = err
		return false
	}
	if noop {
		return false
	}
	sv := e.Server
	s.servers[sv.ID] = &sv
	bump(&s.idx.Servers, ix)
	return true
}

// checkServerRemove validates a server_remove entry; noop is set when the
// server is not known (removing it is a no-op).
func (s *state) checkServerRemove(e *ServerRemoveEntry) (noop bool, err *Error) {
	if err := checkRef("server id", e.ID); err != nil {
		return false, err
	}
	_, ok := s.servers[e.ID]
	return !ok, nil
}

// applyServerRemove forgets a server's labels; removing an unknown server
// is a no-op.
func (s *state) applyServerRemove(e *ServerRemoveEntry, ix uint64, res *ApplyResult) bool {
	noop, err := s.checkServerRemove(e)
	if err != nil {
		res.Err = err
		return false
	}
	if noop {
		return false
	}
	delete(s.servers, e.ID)
	bump(&s.idx.Servers, ix)
	return true
}

// CheckServer applies the manifest's rules for a server record (id,
// address, cloud and region labels) without a state: callers that act
// before proposing (a join changes the raft configuration first) check it
// up front, so bad input changes nothing.
func CheckServer(sv Server) error {
	if err := checkServer(sv); err != nil {
		return err
	}
	return nil
}

func checkServer(sv Server) *Error {
	return firstErr(
		checkID("server id", sv.ID),
		checkText("server address", sv.Address, 1, maxAddressLen),
		checkLabel("server cloud", sv.Cloud, maxLabelLen, false),
		checkLabel("server region", sv.Region, maxLabelLen, false),
	)
}
