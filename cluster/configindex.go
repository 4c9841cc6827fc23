package cluster

import (
	"io"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// raftFSM is the manifest as raft drives it (fsm does not import raft:
// this adapts its entries and snapshots), plus the log index of the
// latest committed configuration change: raft's GetConfiguration reports
// index 0 (it reads a cached copy), so Operator.RaftPeers learns the
// index here, through raft's ConfigurationStore hook.
type raftFSM struct {
	*fsm.FSM
	s *Server
}

var _ raft.FSM = raftFSM{}

// Apply hands a committed entry to the manifest.
func (f raftFSM) Apply(l *raft.Log) interface{} {
	return f.FSM.Apply(&fsm.Log{Index: l.Index, Command: l.Type == raft.LogCommand, Data: l.Data})
}

// Snapshot captures the manifest for raft to persist.
func (f raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return raftSnapshot{snap}, nil
}

// raftSnapshot is an fsm.Snapshot as a raft.FSMSnapshot.
type raftSnapshot struct{ *fsm.Snapshot }

func (s raftSnapshot) Persist(sink raft.SnapshotSink) error { return s.Snapshot.Persist(sink) }

// StoreConfiguration is raft's ConfigurationStore hook, called as each
// configuration entry is applied (also when the log is replayed).
func (f raftFSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	f.s.noteConfigIndex(index)
}

// Restore installs a snapshot; the configuration it carries is as new as
// the snapshot's ConfigurationIndex, which the hook never sees.
func (f raftFSM) Restore(rc io.ReadCloser) error {
	if err := f.FSM.Restore(rc); err != nil {
		return err
	}
	f.s.noteSnapshotConfigIndex()
	return nil
}

func (s *Server) noteConfigIndex(index uint64) {
	for {
		cur := s.configIndex.Load()
		if index <= cur || s.configIndex.CompareAndSwap(cur, index) {
			return
		}
	}
}

// noteSnapshotConfigIndex takes the configuration index of the newest
// snapshot on disk (at start, and after one is installed).
func (s *Server) noteSnapshotConfigIndex() {
	if metas, err := s.snaps.List(); err == nil && len(metas) > 0 {
		s.noteConfigIndex(metas[0].ConfigurationIndex)
	}
}

// ConfigIndex is the log index of the latest committed configuration
// change this server has applied (0 before the first).
func (s *Server) ConfigIndex() uint64 { return s.configIndex.Load() }

var _ raft.ConfigurationStore = raftFSM{}
