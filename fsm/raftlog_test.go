package fsm

import "github.com/hashicorp/raft"

// ApplyRaft applies a raft log entry the way cluster hands raft's entries
// to Apply, so that the tests can build logs with raft's own types (a nil
// entry stays nil).
func (f *FSM) ApplyRaft(l *raft.Log) interface{} {
	if l == nil {
		return f.Apply(nil)
	}
	return f.Apply(&Log{Index: l.Index, Command: l.Type == raft.LogCommand, Data: l.Data})
}
