package fsm

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Snapshot captures the state for raft. It only copies pointer slices
// under the read lock (stored objects are copy-on-write); Persist does
// the encoding while Apply carries on.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.RLock()
	d := f.st.capture()
	f.mu.RUnlock()
	return &Snapshot{data: d}, nil
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

// Snapshot is the state captured by FSM.Snapshot, to persist.
type Snapshot struct {
	data *snapshotData
}

// SnapshotSink is where a snapshot is persisted (raft's snapshot sink is
// one).
type SnapshotSink interface {
	io.WriteCloser
	// Cancel discards what was written.
	Cancel() error
}

// Persist encodes the snapshot into sink and closes it, or cancels the
// sink on error.
func (s *Snapshot) Persist(sink SnapshotSink) error {
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
func (s *Snapshot) Release() { s.data = nil }

// Restore replaces the state with the snapshot read from rc, which it
// closes. The snapshot is decoded and verified completely (checksum
// included) into a new state before the swap: on any error the current
// state is untouched.
//
// If a PreparedRestore is armed (Expect) and the stream has its header,
// Restore only hashes the rest of the stream and, if it is byte for byte
// the prepared snapshot (same length and SHA-256), installs the prepared
// state instead of decoding the stream a second time.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	sr := newRecordReader(rc)
	hdr, err := sr.readHeader()
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if p := f.expected.Load(); p != nil && p.hdr == hdr && f.expected.CompareAndSwap(p, nil) {
		sum, err := sr.skipBody(p.size)
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		if sum != p.sum {
			return fmt.Errorf("restore snapshot: the stream has the header of the prepared snapshot but not its content (sha256 %x, prepared %x)", sum, p.sum)
		}
		f.install(p.st)
		return nil
	}
	b := &stateBuilder{st: newState()}
	if err := b.header(&hdr); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if _, _, err := sr.readBody(&hdr, b); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.install(b.finish())
	return nil
}

func (f *FSM) install(st *state) {
	f.mu.Lock()
	f.st = st
	f.notify()
	f.wakeApplied()
	f.mu.Unlock()
}

// PreparedRestore is a snapshot read, fully verified and decoded into a
// new state ahead of Restore, so that an operator's restore decodes the
// uploaded snapshot once: PrepareRestore verifies the upload (before
// anything changes), Expect arms the FSM, and raft's Restore of the same
// bytes then only hashes them and installs the prepared state.
type PreparedRestore struct {
	hdr  snapshotHeader
	size int64
	sum  [sha256.Size]byte
	st   *state
}

// PrepareRestore reads and verifies a snapshot from r exactly as Restore
// does (every check, the checksum included) and builds the state it
// holds, without touching any FSM. r must end where the snapshot ends.
func PrepareRestore(r io.Reader) (*PreparedRestore, error) {
	b := &stateBuilder{st: newState()}
	hdr, size, sum, err := readSnapshot(r, b)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	return &PreparedRestore{hdr: hdr, size: size, sum: sum, st: b.finish()}, nil
}

// Index is the last log index applied to the prepared state.
func (p *PreparedRestore) Index() uint64 { return p.hdr.Index }

// Tasks is the number of tasks in the prepared state.
func (p *PreparedRestore) Tasks() int { return p.hdr.Tasks }

// Tokens is the number of ACL tokens in the prepared state.
func (p *PreparedRestore) Tokens() int { return p.hdr.Tokens }

// Retired is the number of retired task records in the prepared state.
func (p *PreparedRestore) Retired() int { return p.hdr.Retired }

// Size is the length of the snapshot in bytes, checksum included.
func (p *PreparedRestore) Size() int64 { return p.size }

// SHA256 is the snapshot's checksum (its trailer).
func (p *PreparedRestore) SHA256() [sha256.Size]byte { return p.sum }

// Expect arms f with p: the next Restore of a stream with p's header
// installs p's state if the stream is byte for byte p's snapshot (see
// Restore). p is used at most once. The returned function disarms f if p
// is still armed; call it once the restore is over, whatever its outcome.
func (f *FSM) Expect(p *PreparedRestore) (disarm func()) {
	f.expected.Store(p)
	return func() { f.expected.CompareAndSwap(p, nil) }
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

func (b *stateBuilder) token(t *ACLToken) error {
	t.Role = knownRole(t.Role)
	b.st.acl.put(t)
	return nil
}

// retired records a retired task. The tasks, all read by now, are still
// in the snapshot's ID order: an id that is also a task is refused (the
// state never holds both).
func (b *stateBuilder) retired(r *RetiredTask) error {
	list := b.st.tasks.list
	if _, found := slices.BinarySearchFunc(list, r.ID, func(t *Task, id string) int { return strings.Compare(t.ID, id) }); found {
		return fmt.Errorf("retired task %s is also a task", quote(r.ID))
	}
	r.Status = knownTaskStatus(r.Status)
	b.st.retired.push(*r)
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
	sortIDOrderByCreate(st.tasks.list) // (CreateIndex, ID) order
	st.tasks.reindex()                 // and the secondary indexes
	st.tasks.buildFinished()
	st.idx = Indexes{
		Tasks:   b.hdr.TasksIndex,
		Nodes:   b.hdr.NodesIndex,
		Servers: b.hdr.ServersIndex,
		ACL:     b.hdr.ACLIndex,
		Applied: b.hdr.Index,
	}
	st.acl.bootstrapIndex = b.hdr.ACLBootstrapIndex
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
	// Tokens is the number of ACL tokens; ACLBootstrapped whether ACLs
	// were bootstrapped (0 and false in a snapshot without ACL data).
	Tokens          int  `codec:"tokens" json:"tokens"`
	ACLBootstrapped bool `codec:"acl_bootstrapped" json:"acl_bootstrapped"`
	// Retired is the number of retired task records (0 before version 3).
	Retired int `codec:"retired" json:"retired"`
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
		Version:         hdr.Version,
		Index:           hdr.Index,
		Tasks:           hdr.Tasks,
		TasksByStatus:   c.byStatus,
		Nodes:           hdr.Nodes,
		Servers:         hdr.Servers,
		Tokens:          hdr.Tokens,
		ACLBootstrapped: hdr.ACLBootstrapIndex != 0,
		Retired:         hdr.Retired,
		Size:            size,
		SHA256:          hex.EncodeToString(sum[:]),
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
func (c *infoCounter) token(*ACLToken) error        { return nil }
func (c *infoCounter) retired(*RetiredTask) error   { return nil }

// sortIDOrderByCreate puts tasks that are in ID order (as a snapshot holds
// them) in cmpTask order. Among equal CreateIndexes the ID order is kept,
// so it sorts (CreateIndex, position) pairs: integer comparisons on a
// compact array instead of chasing a million pointers to compare IDs.
func sortIDOrderByCreate(list []*Task) {
	sorted := true
	for i := 1; i < len(list); i++ {
		if list[i].CreateIndex < list[i-1].CreateIndex {
			sorted = false
			break
		}
	}
	if sorted {
		return
	}
	type key struct {
		create uint64
		pos    uint32
	}
	keys := make([]key, len(list))
	for i, t := range list {
		keys[i] = key{t.CreateIndex, uint32(i)}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.create, b.create); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	out := make([]*Task, len(list))
	for i, k := range keys {
		out[i] = list[k.pos]
	}
	copy(list, out)
}
