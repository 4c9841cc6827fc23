package fsm

// MaxEntrySize bounds an encoded entry (type byte, version byte and
// body): Apply refuses a longer one with ErrInvalid, and Check refuses a
// body whose EncodeEntry form is longer, so it is never proposed.
//
// 8 MiB is about twice the largest entry the field limits allow for one
// object: an add_task, or a node_register, at every limit (64 payload or
// meta values of MaxPayloadValueLen under 128-byte keys) encodes to about
// 4.0 MiB, and a task built from one stays far under the 16 MiB snapshot
// record limit (maxRecordLen; ~4.2 MiB with output, error and history).
// The headroom covers msgpack overhead and optional fields added later.
// It is half of the RPC frame limit (16 MiB), so an entry that passes
// fits a forwarded request with its envelope. Entries that the field
// limits alone do not bound are bounded by it:
//   - add_tasks: MaxBatch tasks of the maximum size would be 4 GiB; a
//     batch must also fit in MaxEntrySize (1000 tasks of up to ~8 KiB
//     each, or fewer larger ones). Split larger batches.
//   - complete_task and fail_task: the stored Result keeps only the last
//     MaxOutputLen bytes of Output and Error, so a report carrying more
//     than MaxEntrySize of them would only bloat the log; the agent
//     sends the tail it keeps (64 KiB each).
//
// Replaying an old log: an entry longer than MaxEntrySize that exceeds
// no field limit could not have come from EncodeEntry of a valid body,
// except the two cases above, which no client of this repository sends.
const MaxEntrySize = 8 << 20

// checkEntrySize refuses encoded entries longer than MaxEntrySize.
func checkEntrySize(data []byte) *Error {
	if len(data) <= MaxEntrySize {
		return nil
	}
	return invalidf("%s entry is %d bytes; the limit is %d bytes (MaxEntrySize)", EntryType(data[0]), len(data), MaxEntrySize)
}

// Check validates an entry body (one of the *Entry structs, by value or
// by pointer) against the current state without changing anything, for a
// proposer that must not put a refused entry in the log. It returns
// exactly the *Error that Apply of EncodeEntry(body) would return in
// ApplyResult.Err now, and nil when Apply would accept it (idempotent
// no-ops included). Like Apply it runs the body that the encoded entry
// decodes to, so the two cannot disagree about what the log would carry;
// a body that is not an entry body, or whose encoding is longer than
// MaxEntrySize, is refused with ErrInvalid.
//
// The answer holds for the state Check saw: an entry applied in between
// may change it. Check holds the read lock while it reads the state and
// never panics.
func (f *FSM) Check(body any) (err error) {
	defer func() {
		if r := recover(); r != nil { // never expected: every check is pure
			err = invalidf("%T could not be checked: internal error: %v", body, r)
		}
	}()
	if body == nil {
		return invalidf("no entry body to check")
	}
	if _, ok := typeOf(body); !ok {
		return invalidf("%T is not an entry body", body)
	}
	data, encErr := EncodeEntry(body)
	if encErr != nil {
		return invalidf("%v", encErr)
	}
	return f.CheckEncoded(data)
}

// CheckEncoded is Check for an entry already encoded with EncodeEntry: a
// proposer that is about to hand data to raft checks exactly those bytes
// and encodes once.
func (f *FSM) CheckEncoded(data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil { // never expected: every check is pure
			err = invalidf("entry could not be checked: internal error: %v", r)
		}
	}()
	if len(data) == 0 {
		return invalidf("no entry to check")
	}
	if err := checkEntrySize(data); err != nil {
		return err
	}
	typ, dec, decErr := DecodeEntry(data)
	if decErr != nil || dec == nil {
		return invalidf("%s entry does not decode: %v", EntryType(data[0]), decErr)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.st.check(typ, dec); err != nil {
		return err
	}
	return nil
}

// check dispatches a decoded entry to its checkX function: the checks
// apply runs, without the mutation. It must cover every type apply does.
func (s *state) check(t EntryType, body any) *Error {
	switch t {
	case AddTask:
		if e, ok := body.(*AddTaskEntry); ok {
			_, err := s.checkAddTask(e)
			return err
		}
	case AddTasks:
		if e, ok := body.(*AddTasksEntry); ok {
			return s.checkAddTasks(e)
		}
	case AssignTask:
		if e, ok := body.(*AssignTaskEntry); ok {
			_, _, err := s.checkAssignTask(e)
			return err
		}
	case StartTask:
		if e, ok := body.(*StartTaskEntry); ok {
			_, _, err := s.checkStartTask(e)
			return err
		}
	case CompleteTask:
		if e, ok := body.(*CompleteTaskEntry); ok {
			_, _, err := s.checkFinishTask(e.TaskID, e.NodeID, e.Time, TaskComplete)
			return err
		}
	case FailTask:
		if e, ok := body.(*FailTaskEntry); ok {
			_, _, err := s.checkFinishTask(e.TaskID, e.NodeID, e.Time, TaskFailed)
			return err
		}
	case CancelTask:
		if e, ok := body.(*CancelTaskEntry); ok {
			_, _, err := s.checkCancelTask(e)
			return err
		}
	case NodeRegister:
		if e, ok := body.(*NodeRegisterEntry); ok {
			_, err := s.checkNodeRegister(e)
			return err
		}
	case NodeUnregister:
		if e, ok := body.(*NodeUnregisterEntry); ok {
			_, err := s.checkNodeUnregister(e)
			return err
		}
	case NodeStatusSet:
		if e, ok := body.(*NodeStatusEntry); ok {
			_, _, err := s.checkNodeStatus(e)
			return err
		}
	case ServerUpsert:
		if e, ok := body.(*ServerUpsertEntry); ok {
			_, err := s.checkServerUpsert(e)
			return err
		}
	case ServerRemove:
		if e, ok := body.(*ServerRemoveEntry); ok {
			_, err := s.checkServerRemove(e)
			return err
		}
	case ACLBootstrap:
		if e, ok := body.(*ACLBootstrapEntry); ok {
			_, err := s.checkACLBootstrap(e)
			return err
		}
	case ACLTokenCreate:
		if e, ok := body.(*ACLTokenCreateEntry); ok {
			_, err := s.checkACLTokenCreate(e)
			return err
		}
	case ACLTokenRevoke:
		if e, ok := body.(*ACLTokenRevokeEntry); ok {
			_, err := s.checkACLTokenRevoke(e)
			return err
		}
	case RetireTasks:
		if e, ok := body.(*RetireTasksEntry); ok {
			return s.checkRetireTasks(e)
		}
	}
	return invalidf("%s entry with body %T has no apply function", t, body)
}
