package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// EntryType is the first byte of every log entry.
type EntryType uint8

// Entry types. Values are part of the on-disk format: never renumber.
const (
	AddTask        EntryType = 1
	AssignTask     EntryType = 2
	StartTask      EntryType = 3
	CompleteTask   EntryType = 4
	FailTask       EntryType = 5
	CancelTask     EntryType = 6
	NodeRegister   EntryType = 7
	NodeUnregister EntryType = 8
	NodeStatusSet  EntryType = 9
	ServerUpsert   EntryType = 10
	ServerRemove   EntryType = 11
	AddTasks       EntryType = 12
	ACLBootstrap   EntryType = 13
	ACLTokenCreate EntryType = 14
	ACLTokenRevoke EntryType = 15
	RetireTasks    EntryType = 16
)

// IgnoreUnknownFlag, set in the type byte, tells a server that does not
// know the entry type to skip the entry instead of failing it. Used for
// entries that only add optional information, so old servers survive a
// rolling upgrade.
const IgnoreUnknownFlag EntryType = 0x80

// EntryVersion is the body format version written in the second byte.
const EntryVersion uint8 = 1

var entryNames = map[EntryType]string{
	AddTask: "add_task", AssignTask: "assign_task", StartTask: "start_task",
	CompleteTask: "complete_task", FailTask: "fail_task", CancelTask: "cancel_task",
	NodeRegister: "node_register", NodeUnregister: "node_unregister",
	NodeStatusSet: "node_status", ServerUpsert: "server_upsert", ServerRemove: "server_remove",
	AddTasks: "add_tasks", ACLBootstrap: "acl_bootstrap", ACLTokenCreate: "acl_token_create",
	ACLTokenRevoke: "acl_token_revoke", RetireTasks: "retire_tasks",
}

// String returns the entry type's name as used in messages, e.g.
// "add_task", ignoring IgnoreUnknownFlag.
func (t EntryType) String() string {
	if n, ok := entryNames[t&^IgnoreUnknownFlag]; ok {
		return n
	}
	return fmt.Sprintf("entry_type(%d)", uint8(t))
}

// AddTaskEntry creates a task in status pending. Re-adding an existing id
// with identical content (ID, Type, Payload, Cloud, MaxAttempts) is a no-op
// that returns the stored task; different content is a conflict.
type AddTaskEntry struct {
	ID          string            `codec:"id"`
	Type        string            `codec:"type"`
	Payload     map[string]string `codec:"payload"`
	Cloud       string            `codec:"cloud"`
	MaxAttempts int               `codec:"max_attempts"`
	Time        int64             `codec:"time"`
}

// MaxBatch bounds the tasks in one add_tasks entry.
const MaxBatch = 1000

// AddTasksEntry adds many tasks in one entry: all of them or none. Each
// element follows add_task's rules (an identical re-add is a no-op); the
// elements' own Time fields are ignored in favour of the batch's.
type AddTasksEntry struct {
	Tasks []AddTaskEntry `codec:"tasks"`
	Time  int64          `codec:"time"`
}

// AssignTaskEntry moves a pending task to a registered, non-unreachable node.
type AssignTaskEntry struct {
	TaskID string `codec:"task_id"`
	NodeID string `codec:"node_id"`
	Time   int64  `codec:"time"`
}

// StartTaskEntry moves an assigned task to running; NodeID must hold it.
type StartTaskEntry struct {
	TaskID string `codec:"task_id"`
	NodeID string `codec:"node_id"`
	Time   int64  `codec:"time"`
}

// CompleteTaskEntry ends a running (or assigned) task successfully.
type CompleteTaskEntry struct {
	TaskID string `codec:"task_id"`
	NodeID string `codec:"node_id"`
	Result Result `codec:"result"`
	Time   int64  `codec:"time"`
}

// FailTaskEntry ends a running (or assigned) task as failed.
type FailTaskEntry struct {
	TaskID string `codec:"task_id"`
	NodeID string `codec:"node_id"`
	Result Result `codec:"result"`
	Time   int64  `codec:"time"`
}

// CancelTaskEntry cancels a non-terminal task.
type CancelTaskEntry struct {
	TaskID string `codec:"task_id"`
	Reason string `codec:"reason"`
	Time   int64  `codec:"time"`
}

// NodeRegisterEntry creates a node, or updates its labels and capacity and
// marks it healthy if it exists.
type NodeRegisterEntry struct {
	ID       string            `codec:"id"`
	Address  string            `codec:"address"`
	Cloud    string            `codec:"cloud"`
	Region   string            `codec:"region"`
	Capacity int               `codec:"capacity"`
	Meta     map[string]string `codec:"meta"`
	Time     int64             `codec:"time"`
}

// NodeUnregisterEntry removes a node; its unfinished tasks are requeued.
type NodeUnregisterEntry struct {
	NodeID string `codec:"node_id"`
	Time   int64  `codec:"time"`
}

// NodeStatusEntry records a liveness change decided by the leader. Moving
// to unreachable requeues the node's unfinished tasks.
type NodeStatusEntry struct {
	NodeID string     `codec:"node_id"`
	Status NodeStatus `codec:"status"`
	Time   int64      `codec:"time"`
}

// ServerUpsertEntry records the labels of a Raft server.
type ServerUpsertEntry struct {
	Server Server `codec:"server"`
}

// ServerRemoveEntry forgets the labels of a removed Raft server.
type ServerRemoveEntry struct {
	ID string `codec:"id"`
}

// ACLBootstrapEntry creates the first management token. It is accepted
// once in the life of the cluster: afterwards it is refused (conflict),
// even once that token is revoked, except that the very same bootstrap
// (the AccessorID and SecretHash of the token the first bootstrap created,
// which must still exist) is an idempotent no-op that returns it.
// Token.Role must be management. Token.CreateTime and CreateIndex are
// ignored: the token gets Time and the entry's log index.
type ACLBootstrapEntry struct {
	Token ACLToken `codec:"token"`
	Time  int64    `codec:"time"`
}

// ACLTokenCreateEntry creates a token. Creating an existing AccessorID
// with the same SecretHash, Role and Description is a no-op that returns
// the stored token; different content, or a SecretHash another token
// already has, is a conflict. Token.CreateTime and CreateIndex are
// ignored, as for ACLBootstrapEntry.
type ACLTokenCreateEntry struct {
	Token ACLToken `codec:"token"`
	Time  int64    `codec:"time"`
}

// ACLTokenRevokeEntry deletes a token; an unknown AccessorID is refused
// with not_found.
type ACLTokenRevokeEntry struct {
	AccessorID string `codec:"accessor_id"`
	Time       int64  `codec:"time"`
}

// RetireTasksEntry removes finished tasks from the manifest. Each listed
// task that exists and is finished (complete, failed or cancelled) is
// removed and remembered in the retired record (see FSM.Retired); ids
// that are missing or not finished are skipped, since the state may have
// moved between the proposal and the commit. An entry that removes
// nothing is an idempotent no-op. A malformed entry (no ids, more than
// MaxRetireBatch, a repeated id, a bad id, a bad Time, a bad Reason) is
// refused whole.
type RetireTasksEntry struct {
	TaskIDs []string `codec:"task_ids"`
	Time    int64    `codec:"time"`
	// Reason says why, for the logs: "age", "count", "manual"…
	Reason string `codec:"reason"`
}

// entryBodies maps each type to its body struct.
var entryBodies = map[EntryType]reflect.Type{
	AddTask:        reflect.TypeOf(AddTaskEntry{}),
	AssignTask:     reflect.TypeOf(AssignTaskEntry{}),
	StartTask:      reflect.TypeOf(StartTaskEntry{}),
	CompleteTask:   reflect.TypeOf(CompleteTaskEntry{}),
	FailTask:       reflect.TypeOf(FailTaskEntry{}),
	CancelTask:     reflect.TypeOf(CancelTaskEntry{}),
	NodeRegister:   reflect.TypeOf(NodeRegisterEntry{}),
	NodeUnregister: reflect.TypeOf(NodeUnregisterEntry{}),
	NodeStatusSet:  reflect.TypeOf(NodeStatusEntry{}),
	ServerUpsert:   reflect.TypeOf(ServerUpsertEntry{}),
	ServerRemove:   reflect.TypeOf(ServerRemoveEntry{}),
	AddTasks:       reflect.TypeOf(AddTasksEntry{}),
	ACLBootstrap:   reflect.TypeOf(ACLBootstrapEntry{}),
	ACLTokenCreate: reflect.TypeOf(ACLTokenCreateEntry{}),
	ACLTokenRevoke: reflect.TypeOf(ACLTokenRevokeEntry{}),
	RetireTasks:    reflect.TypeOf(RetireTasksEntry{}),
}

// MsgpackHandle is the msgpack configuration used for log entries and
// snapshots. Canonical sorts map keys so that equal states encode to equal
// bytes; WriteExt uses the current msgpack spec (str vs bin), which other
// languages' msgpack libraries expect.
func MsgpackHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.Canonical = true
	h.WriteExt = true
	h.RawToString = true
	h.MapType = reflect.TypeOf(map[string]interface{}(nil))
	return h
}

var entryHandle = MsgpackHandle()

// ErrUnknownEntry is returned by DecodeEntry for a type byte this version
// does not know and that is not flagged IgnoreUnknownFlag.
var ErrUnknownEntry = errors.New("unknown entry type")

// typeOf maps a body value to its entry type.
func typeOf(body any) (EntryType, bool) {
	rt := reflect.TypeOf(body)
	if rt != nil && rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	for t, bt := range entryBodies {
		if bt == rt {
			return t, true
		}
	}
	return 0, false
}

// EncodeEntry encodes body (one of the *Entry structs, by value or pointer)
// as type byte, version byte, msgpack body.
func EncodeEntry(body any) ([]byte, error) {
	t, ok := typeOf(body)
	if !ok {
		return nil, fmt.Errorf("encode entry: %T is not an entry body", body)
	}
	var buf bytes.Buffer
	buf.WriteByte(byte(t))
	buf.WriteByte(EntryVersion)
	if err := codec.NewEncoder(&buf, entryHandle).Encode(body); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return buf.Bytes(), nil
}

// DecodeEntry decodes an entry written by EncodeEntry. It returns the type
// and a pointer to the body struct. A type byte with IgnoreUnknownFlag that
// this version does not know decodes to (type, nil, nil): skip it. Every
// other malformed input returns an error; DecodeEntry never panics.
func DecodeEntry(b []byte) (t EntryType, body any, err error) {
	defer func() {
		if r := recover(); r != nil { // the codec must never take the server down
			t, body, err = 0, nil, fmt.Errorf("decode entry: %v", r)
		}
	}()
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("decode entry: %d bytes, want at least 2", len(b))
	}
	raw := EntryType(b[0])
	t = raw &^ IgnoreUnknownFlag
	bt, ok := entryBodies[t]
	if !ok {
		if raw&IgnoreUnknownFlag != 0 {
			return raw, nil, nil
		}
		return raw, nil, fmt.Errorf("decode entry: %w %d", ErrUnknownEntry, uint8(raw))
	}
	if b[1] != EntryVersion {
		return t, nil, fmt.Errorf("decode %s: unsupported format version %d (this server knows %d)", t, b[1], EntryVersion)
	}
	v := reflect.New(bt)
	dec := codec.NewDecoderBytes(b[2:], entryHandle)
	if err := dec.Decode(v.Interface()); err != nil {
		return t, nil, fmt.Errorf("decode %s: %w", t, err)
	}
	return t, v.Interface(), nil
}
