package cluster

import (
	"io"
	"sync/atomic"
	"time"

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
	return raftSnapshot{Snapshot: snap, s: f.s, applied: f.FSM.Indexes().Applied}, nil
}

// raftSnapshot is an fsm.Snapshot as a raft.FSMSnapshot; it logs the
// snapshot once written (event=snapshot_taken).
type raftSnapshot struct {
	*fsm.Snapshot
	s       *Server
	applied uint64 // the manifest's applied index when captured
}

func (r raftSnapshot) Persist(sink raft.SnapshotSink) error {
	t0 := time.Now()
	cs := &countingSink{SnapshotSink: sink}
	if err := r.Snapshot.Persist(cs); err != nil {
		r.s.log.Warn("raft snapshot failed", "event", "snapshot_failed", "index", r.applied, "err", err)
		return err
	}
	r.s.log.Info("raft snapshot taken", "event", "snapshot_taken", "index", r.applied, "id", sink.ID(),
		"bytes", cs.n, "took", time.Since(t0).Round(time.Millisecond).String())
	return nil
}

// countingSink counts the bytes written through it.
type countingSink struct {
	raft.SnapshotSink
	n int64
}

func (c *countingSink) Write(p []byte) (int, error) {
	n, err := c.SnapshotSink.Write(p)
	c.n += int64(n)
	return n, err
}

// StoreConfiguration is raft's ConfigurationStore hook, called as each
// configuration entry is applied (also when the log is replayed).
func (f raftFSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	f.s.noteConfigIndex(index)
}

// Restore installs a snapshot; the configuration it carries is as new as
// the snapshot's ConfigurationIndex, which the hook never sees.
// It logs the installation (event=snapshot_installed): at start from the
// newest snapshot on disk, from a leader's InstallSnapshot, or an
// operator's restore.
func (f raftFSM) Restore(rc io.ReadCloser) error {
	t0 := time.Now()
	if err := f.FSM.Restore(rc); err != nil {
		f.s.log.Warn("raft snapshot could not be installed", "event", "snapshot_install_failed", "err", err)
		return err
	}
	f.s.noteSnapshotConfigIndex()
	f.s.log.Info("raft snapshot installed", "event", "snapshot_installed", "index", f.FSM.Indexes().Applied,
		"took", time.Since(t0).Round(time.Millisecond).String())
	return nil
}

func (s *Server) noteConfigIndex(index uint64) { storeMax(&s.configIndex, index) }

// storeMax raises a to v unless it already holds as much.
func storeMax(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
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
