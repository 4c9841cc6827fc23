// Package fsm is the Task Manifest state machine of rctl: the tasks, the
// worker nodes that run them, the labels of the Raft servers, the
// operators' ACL tokens and the record of retired tasks, and the rules by
// which replicated log entries change them. Raft (hashicorp/raft)
// orders the entries; every server applies the same entries in the same
// order to its own FSM and so holds the same manifest. The package does
// not import raft: the cluster package adapts raft's log entries (Log)
// and snapshot sinks (SnapshotSink) to it.
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
// never applies half an entry: each applyX function first runs its pure
// checkX, which validates the whole entry against the current state, and
// only then mutates. A refused entry
// changes nothing but Indexes().Applied and yields an ApplyResult whose
// Err is an *Error of kind ErrInvalid, ErrConflict or ErrNotFound.
// Transitions a client may legitimately resend (add_task with the same
// content, start, complete, fail and cancel from the same node) are
// idempotent no-ops that return the stored task; so is a retire_tasks
// entry that finds nothing left to retire. A task's History records
// its transitions (assign, start, complete, fail, cancel, requeue), oldest
// first and at most MaxHistory of them; its creation is recorded by
// CreatedAt and CreateIndex rather than by an event.
//
// # Validate before proposing
//
// Check runs, under the read lock, exactly the checks Apply would run for
// an entry body against the current state (the same checkX functions, on
// the body the encoded entry decodes to) and returns the *Error Apply
// would return, or nil when Apply would accept the entry, idempotent
// no-ops included. It changes nothing. The leader calls it before
// raft.Apply, so a refused request never costs a log entry; Apply still
// validates, since the state may change between the two.
//
// # Entry format
//
// A log entry's Data is
//
//	byte 0   the EntryType (1 add_task … 11 server_remove, 12 add_tasks,
//	         13 acl_bootstrap, 14 acl_token_create, 15 acl_token_revoke,
//	         16 retire_tasks; the ACL and retire types are not flagged:
//	         they change the state, so every server must know them
//	         before one is proposed). The high bit,
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
// reused. An entry is at most MaxEntrySize (8 MiB) long: Apply refuses a
// longer one with ErrInvalid before decoding it, and Check refuses a body
// whose encoding is longer. The largest entry of one object at every field
// limit (an add_task or node_register) is about 4.0 MiB; a batch must fit
// the same bound.
//
// # Snapshot format
//
// Snapshot/Persist, WriteSnapshot and Restore use one self-checking
// format, also used by `rctl snapshot save` and read by ReadSnapshotInfo:
//
//	"RCTLSNAP"                  8-byte magic
//	record(header)              {version: 1, 2 or 3, index: last applied
//	                             log index, tasks_index, nodes_index,
//	                             servers_index, tasks, nodes, servers:
//	                             record counts; since version 2, and only
//	                             when not zero: tokens (record count),
//	                             acl_index, acl_bootstrap_index; since
//	                             version 3, only when not zero: retired
//	                             (record count)}
//	record(task) × tasks        sorted by ID
//	record(node) × nodes        sorted by ID
//	record(server) × servers    sorted by ID
//	record(token) × tokens      sorted by AccessorID (version 2)
//	record(retired) × retired   oldest retirement first (version 3)
//	SHA-256                     32 bytes over everything before it
//
// A state with retired task records is written as version 3; otherwise
// one with ACL data (a token, or a non-zero acl_index or
// acl_bootstrap_index) is written as version 2, and one with neither as
// version 1, byte for byte as before tokens existed. So older servers
// still read what they can hold, and refuse a newer snapshot by its
// version rather than drop its tokens or its retired record. Readers
// take all three versions; a version 1 snapshot restores with no tokens
// and no retired record, a version 2 one with no retired record, and one
// that announces data its version cannot hold is refused.
//
// A record is a 4-byte big-endian length (1 to 16 MiB) followed by that
// many bytes of msgpack (MsgpackHandle()) of the Task, Node, Server,
// ACLToken or RetiredTask struct. The length prefix lets a reader take exactly one record at a
// time, so no decoder read-ahead can swallow the trailer. A reader trusts
// nothing until the checksum matches: it reads exactly the counts the
// header announced, refuses oversized records, out-of-order or duplicate
// ids, unknown statuses, tokens with an unknown role, a malformed or
// repeated secret hash, retired records with a bad or repeated id or a
// status that is not finished, a bad checksum and bytes after it;
// Restore and PrepareRestore also refuse a retired id that is a task. Task records
// in the shape writeSnapshot gives them are decoded without reflection
// (snapshot_decode.go); any other record goes through the codec, which
// accepts or refuses it as before. Equal states
// encode to equal bytes, so two servers that applied the same log write
// byte-identical snapshots, and a restored snapshot writes the bytes it
// was read from. PrepareRestore and Expect let an operator's restore be
// verified and decoded once, on upload: the FSM's Restore of the same
// bytes (same header, length and SHA-256) then installs that state.
//
// # ACL tokens
//
// Operators authenticate with bearer tokens. The secret is never stored
// nor put in the log: the proposer hashes it (SHA-256, lowercase hex) and
// entries carry only the hash, which ACLTokenBySecretHash looks up in a
// map. Roles are reader, operator and management. acl_bootstrap creates
// the first management token, once in the cluster's life: the
// bootstrapped flag (the bootstrap's log index) stays set even when that
// token is revoked, and a later bootstrap is refused with ErrConflict,
// except the same bootstrap repeated (the AccessorID and SecretHash of the
// token it created, which must still exist), an idempotent no-op.
// acl_token_create refuses an AccessorID with other content, and a
// SecretHash another token has; acl_token_revoke refuses an unknown
// AccessorID with ErrNotFound. The FSM enforces no authorization itself:
// which role may propose which entry is the RPC layer's rule.
//
// # Retiring finished tasks
//
// Finished tasks (complete, failed, cancelled) leave the manifest through
// retire_tasks entries, so that a cluster running for months keeps a
// bounded manifest and bounded snapshots. The leader chooses them with
// RetireCandidates (a pure read: the leader passes its own clock) by age
// (finished before now-maxAge) and by count (the oldest of a finished
// status beyond the newest maxPerStatus), and proposes at most
// MaxRetireBatch ids an entry. Apply removes each listed task that exists
// and is finished, in the entry's order, and skips the others: between
// the proposal and the commit a task may already be gone, and a task
// that is not finished is never removed. ApplyResult.Retired holds the
// removed tasks as they were, for the server's log. A malformed entry
// (no ids, too many, one listed twice, a bad id, a bad Time or Reason) is
// refused whole.
//
// The state remembers the last RetiredMemory retired ids, oldest
// forgotten first, with their final status, retire time and index
// (Retired), so a client asking for one is told it was retired rather
// than that it never existed. A retired id may be added again: it is then
// a new task and no longer retired. The record is part of the replicated
// state (snapshots carry it), and RetiredMemory is a rule of the state
// machine like the entry formats.
//
// # Readers and copy-on-write
//
// The FSM holds a sync.RWMutex; read methods may be called from any
// goroutine while raft applies entries. Stored *Task, *Node, *Server and
// *ACLToken values are never modified after they are stored: Apply stores a changed
// copy instead, and never writes into a slice or map reachable from a
// stored object (a task's History is copied, never appended to in place).
// Readers may therefore keep and share the pointers they get without
// holding any lock, but must treat them, and the maps and slices inside
// them, as read-only. The same rule makes Snapshot cheap: it copies the
// pointer slices under the read lock and Persist encodes them later.
//
// # Blocking queries
//
// Indexes reports the last log index that changed each table (ACL for
// the token table); WatchCh
// returns a channel closed on the next change to any table (no-ops and
// refused entries do not close it). A blocking query takes the channel,
// reads, and if the relevant index is not past the caller's, waits on the
// channel or its deadline and reads again.
//
// # Scale
//
// Beside the Task itself the FSM keeps, per task, one map entry from id to
// ordinal, one pointer slot and one bit per status, per pending task an
// 8-byte entry in the pending index of its cloud constraint, and per
// finished task a 24-byte entry in its status's finish order. Listing the
// tasks in a status walks that status's bitset (with a summary level that
// skips empty stretches of 4096 tasks) and costs essentially the size of
// the result; a page of them (TaskPage) starts after a (CreateIndex, ID)
// position found by binary search, so it costs O(log n + page); listing
// the tasks a node holds costs exactly that; the scheduler's candidates
// (OldestPending) are the oldest entries of the pending groups it names;
// choosing retire candidates reads the oldest entries of the finish
// orders. None scans all tasks. Retiring a task costs O(1) amortized plus a
// binary search: its slot becomes a tombstone, and the table is
// compacted (ordinals renumbered, memory given back) once tombstones
// outnumber the tasks.
package fsm
