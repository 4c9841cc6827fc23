package fsm

import (
	"encoding/hex"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// Snapshot captures the state for raft. It only copies pointer slices
// under the read lock (stored objects are copy-on-write); Persist does
// the encoding while Apply carries on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	d := f.st.capture()
	f.mu.RUnlock()
	return &fsmSnapshot{data: d}, nil
}

// WriteSnapshot writes the current state to w in the snapshot format, as
// Persist would. It holds the lock only to capture the state.
func (f *FSM) WriteSnapshot(w io.Writer) error {
	f.mu.RLock()
	d := f.st.capture()
	f.mu.RUnlock()
	if err := writeSnapshot(w, d); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// fsmSnapshot is the raft.FSMSnapshot returned by Snapshot.
type fsmSnapshot struct {
	data *snapshotData
}

// Persist encodes the snapshot into sink and closes it, or cancels the
// sink on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release drops the captured state.
func (s *fsmSnapshot) Release() { s.data = nil }

// Restore replaces the state with the snapshot read from rc, which it
// closes. The snapshot is decoded and verified completely (checksum
// included) into a new state before the swap: on any error the current
// state is untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b := &stateBuilder{st: newState()}
	if _, _, _, err := readSnapshot(rc, b); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	st := b.finish()
	f.mu.Lock()
	f.st = st
	f.notify()
	f.mu.Unlock()
	return nil
}

// stateBuilder assembles a state from snapshot records.
type stateBuilder struct {
	st      *state
	hdr     snapshotHeader
	nodeIDs map[string]string // interned node ids for tasks and events
}

func (b *stateBuilder) header(h *snapshotHeader) error {
	b.hdr = *h
	// The header is not verified yet (the checksum comes last): cap what
	// it may make us allocate up front.
	b.st.tasks = newTaskTable(min(h.Tasks, 1<<20))
	b.nodeIDs = make(map[string]string)
	return nil
}

func (b *stateBuilder) task(t *Task) error {
	// Normalize to what Apply would have stored, so that the restored
	// state writes the same bytes and shares the same strings.
	p, err := t.Payload.normalize()
	if err != nil {
		return fmt.Errorf("task %q: %w", t.ID, err)
	}
	t.Payload = p
	t.Status = knownTaskStatus(t.Status)
	t.NodeID = b.intern(t.NodeID)
	if len(t.History) == 0 {
		t.History = nil
	}
	for i := range t.History {
		ev := &t.History[i]
		ev.Status = knownTaskStatus(ev.Status)
		ev.NodeID = b.intern(ev.NodeID)
	}
	b.st.tasks.list = append(b.st.tasks.list, t)
	return nil
}

func (b *stateBuilder) node(n *Node) error {
	n.ID = b.intern(n.ID)
	n.Meta = normMap(n.Meta)
	n.Status = knownNodeStatus(n.Status)
	b.st.nodes[n.ID] = n
	return nil
}

func (b *stateBuilder) server(sv *Server) error {
	b.st.servers[sv.ID] = sv
	return nil
}

// intern returns one shared copy of a node id string.
func (b *stateBuilder) intern(id string) string {
	if id == "" {
		return ""
	}
	if s, ok := b.nodeIDs[id]; ok {
		return s
	}
	b.nodeIDs[id] = id
	return id
}

// finish builds the indexes once every record is in and verified.
func (b *stateBuilder) finish() *state {
	st := b.st
	st.tasks.rebuild() // (CreateIndex, ID) order and the secondary indexes
	st.idx = Indexes{
		Tasks:   b.hdr.TasksIndex,
		Nodes:   b.hdr.NodesIndex,
		Servers: b.hdr.ServersIndex,
		Applied: b.hdr.Index,
	}
	return st
}

// knownTaskStatus returns the package constant equal to s, so stored tasks
// share one string instead of each holding a decoded copy.
func knownTaskStatus(s TaskStatus) TaskStatus {
	for _, v := range TaskStatuses {
		if s == v {
			return v
		}
	}
	return s
}

// SnapshotInfo describes a snapshot file.
type SnapshotInfo struct {
	// Version is the snapshot format version.
	Version int `codec:"version" json:"version"`
	// Index is the last log index applied to the state in the snapshot.
	Index uint64 `codec:"index" json:"index"`
	// Tasks is the number of tasks, TasksByStatus the number in each
	// status (every status is a key).
	Tasks         int                `codec:"tasks" json:"tasks"`
	TasksByStatus map[TaskStatus]int `codec:"tasks_by_status" json:"tasks_by_status"`
	// Nodes and Servers are the numbers of nodes and servers.
	Nodes   int `codec:"nodes" json:"nodes"`
	Servers int `codec:"servers" json:"servers"`
	// Size is the length of the snapshot in bytes, checksum included.
	Size int64 `codec:"size" json:"size"`
	// SHA256 is the hex checksum stored in the snapshot's trailer.
	SHA256 string `codec:"sha256" json:"sha256"`
}

// ReadSnapshotInfo reads and fully verifies a snapshot (checksum and the
// decoding of every record) without building a state, and describes it.
func ReadSnapshotInfo(r io.Reader) (SnapshotInfo, error) {
	c := &infoCounter{byStatus: make(map[TaskStatus]int, len(TaskStatuses))}
	for _, s := range TaskStatuses {
		c.byStatus[s] = 0
	}
	hdr, size, sum, err := readSnapshot(r, c)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("read snapshot: %w", err)
	}
	return SnapshotInfo{
		Version:       hdr.Version,
		Index:         hdr.Index,
		Tasks:         hdr.Tasks,
		TasksByStatus: c.byStatus,
		Nodes:         hdr.Nodes,
		Servers:       hdr.Servers,
		Size:          size,
		SHA256:        hex.EncodeToString(sum[:]),
	}, nil
}

// infoCounter is the snapshotVisitor of ReadSnapshotInfo.
type infoCounter struct {
	byStatus map[TaskStatus]int
}

func (c *infoCounter) header(*snapshotHeader) error { return nil }
func (c *infoCounter) task(t *Task) error           { c.byStatus[t.Status]++; return nil }
func (c *infoCounter) node(*Node) error             { return nil }
func (c *infoCounter) server(*Server) error         { return nil }
