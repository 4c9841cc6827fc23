// Package fsm is the Task Manifest state machine of rctl: the tasks, the
// worker nodes that run them and the labels of the Raft servers, and the
// rules by which replicated log entries change them. Raft (hashicorp/raft)
// orders the entries; every server applies the same entries in the same
// order to its own FSM and so holds the same manifest.
//
// # Determinism
//
// Apply must produce the same state on every server, today and when the
// log is replayed a year from now. So the package is pure: it reads no
// clock, no randomness and no network, starts no goroutines and depends
// on no map iteration order. Everything that varies (task and node ids,
// timestamps) is chosen by the proposer and written into the entry; Apply
// uses the entry's Time (unix nanoseconds, must be positive) and the
// entry's log index, nothing else. Apply never panics on bad input and
// never applies half an entry: each applyX function validates the whole
// entry against the current state, and only then mutates. A refused entry
// changes nothing but Indexes().Applied and yields an ApplyResult whose
// Err is an *Error of kind ErrInvalid, ErrConflict or ErrNotFound.
// Transitions a client may legitimately resend (add_task with the same
// content, start, complete, fail and cancel from the same node) are
// idempotent no-ops that return the stored task. A task's History records
// its transitions (assign, start, complete, fail, cancel, requeue), oldest
// first and at most MaxHistory of them; its creation is recorded by
// CreatedAt and CreateIndex rather than by an event.
//
// # Entry format
//
// A log entry's Data is
//
//	byte 0   the EntryType (1 add_task … 11 server_remove). The high bit,
//	         IgnoreUnknownFlag, tells a server that does not know the type
//	         to skip the entry instead of refusing it; new entry types that
//	         only add optional information set it, so older servers
//	         survive a rolling upgrade.
//	byte 1   the body format version, EntryVersion (1).
//	byte 2…  the body: the matching *Entry struct in msgpack, encoded with
//	         MsgpackHandle() (str for strings, canonical map order).
//
// EncodeEntry and DecodeEntry are the only code that should touch these
// bytes. Entry type numbers are part of the on-disk format and are never
// reused.
//
// # Snapshot format
//
// Snapshot/Persist, WriteSnapshot and Restore use one self-checking
// format, also used by `rctl snapshot save` and read by ReadSnapshotInfo:
//
//	"RCTLSNAP"                  8-byte magic
//	record(header)              {version: 1, index: last applied log index,
//	                             tasks_index, nodes_index, servers_index,
//	                             tasks, nodes, servers: record counts}
//	record(task) × tasks        sorted by ID
//	record(node) × nodes        sorted by ID
//	record(server) × servers    sorted by ID
//	SHA-256                     32 bytes over everything before it
//
// A record is a 4-byte big-endian length (1 to 16 MiB) followed by that
// many bytes of msgpack (MsgpackHandle()) of the Task, Node or Server
// struct. The length prefix lets a reader take exactly one record at a
// time, so no decoder read-ahead can swallow the trailer. A reader trusts
// nothing until the checksum matches: it reads exactly the counts the
// header announced, refuses oversized records, out-of-order or duplicate
// ids, unknown statuses, a bad checksum and bytes after it. Task records
// in the shape writeSnapshot gives them are decoded without reflection
// (snapshot_decode.go); any other record goes through the codec, which
// accepts or refuses it as before. Equal states
// encode to equal bytes, so two servers that applied the same log write
// byte-identical snapshots, and a restored snapshot writes the bytes it
// was read from. PrepareRestore and Expect let an operator's restore be
// verified and decoded once, on upload: the FSM's Restore of the same
// bytes (same header, length and SHA-256) then installs that state.
//
// # Readers and copy-on-write
//
// The FSM holds a sync.RWMutex; read methods may be called from any
// goroutine while raft applies entries. Stored *Task, *Node and *Server
// values are never modified after they are stored: Apply stores a changed
// copy instead, and never writes into a slice or map reachable from a
// stored object (a task's History is copied, never appended to in place).
// Readers may therefore keep and share the pointers they get without
// holding any lock, but must treat them, and the maps and slices inside
// them, as read-only. The same rule makes Snapshot cheap: it copies the
// pointer slices under the read lock and Persist encodes them later.
//
// # Blocking queries
//
// Indexes reports the last log index that changed each table; WatchCh
// returns a channel closed on the next change to any table (no-ops and
// refused entries do not close it). A blocking query takes the channel,
// reads, and if the relevant index is not past the caller's, waits on the
// channel or its deadline and reads again.
//
// # Scale
//
// Tasks are never deleted. Beside the Task itself the FSM keeps, per task,
// one map entry from id to ordinal, one pointer slot and one bit per
// status. Listing the tasks in a status walks that status's bitset (with a
// summary level that skips empty stretches of 4096 tasks) and costs
// essentially the size of the result; listing the tasks a node holds
// costs exactly that. Neither scans all tasks.
package fsm
