package cluster

import (
	"io"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
)

// raftFSM is the manifest as raft drives it, plus the log index of the
// latest committed configuration change: raft's GetConfiguration reports
// index 0 (it reads a cached copy), so Operator.RaftPeers learns the
// index here, through raft's ConfigurationStore hook.
type raftFSM struct {
	*fsm.FSM
	s *Server
}

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
