package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// testSink is a raft.SnapshotSink in memory that can fail after limit
// bytes (limit < 0: never).
type testSink struct {
	buf       bytes.Buffer
	limit     int
	closed    bool
	cancelled bool
}

func (s *testSink) Write(p []byte) (int, error) {
	if s.limit >= 0 && s.buf.Len()+len(p) > s.limit {
		return 0, errors.New("disk full")
	}
	return s.buf.Write(p)
}
func (s *testSink) Close() error  { s.closed = true; return nil }
func (s *testSink) ID() string    { return "test" }
func (s *testSink) Cancel() error { s.cancelled = true; return nil }

// richFSM returns an FSM that went through a generated log.
func richFSM(t testing.TB) *FSM {
	t.Helper()
	f := New()
	for _, l := range genLog(t, 3, 3000) {
		f.ApplyRaft(l)
	}
	return f
}

// persist runs Snapshot and Persist into a memory sink.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &testSink{limit: -1}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("Persist left the sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}
	return sink.buf.Bytes()
}

// readView renders everything the read API returns, for comparing FSMs.
func readView(f *FSM) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+v %v\n", f.Indexes(), f.TaskCounts())
	for _, s := range append([]TaskStatus{""}, TaskStatuses...) {
		for _, t := range f.Tasks(s) {
			fmt.Fprintf(&b, "%s:%s/%s/%d/%d/%v/%d;", s, t.ID, t.NodeID, t.Attempts, t.ModifyIndex, t.Result, len(t.History))
		}
		b.WriteByte('\n')
	}
	for _, n := range f.Nodes() {
		fmt.Fprintf(&b, "%+v %d\n", *n, len(f.NodeTasks(n.ID)))
	}
	for _, s := range f.Servers() {
		fmt.Fprintf(&b, "%+v\n", *s)
	}
	fmt.Fprintf(&b, "acl bootstrapped %v\n", f.ACLBootstrapped())
	for _, tk := range f.ACLTokens() {
		fmt.Fprintf(&b, "%+v %v %v\n", *tk, f.ACLToken(tk.AccessorID) == tk, f.ACLTokenBySecretHash(tk.SecretHash) == tk)
	}
	f.mu.RLock()
	retired := f.st.retired.records()
	f.mu.RUnlock()
	for _, r := range retired {
		got, ok := f.Retired(r.ID)
		fmt.Fprintf(&b, "retired %+v %v\n", got, ok && got == *r)
	}
	// What the leader would retire next, by age and by count.
	fmt.Fprintf(&b, "candidates %v %v\n", f.RetireCandidates(1<<62, time.Hour, 0, 50), f.RetireCandidates(0, 0, 3, 50))
	return b.String()
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := richFSM(t)
	data := persist(t, f)
	if want := snapBytes(t, f); !bytes.Equal(data, want) {
		t.Fatalf("Persist wrote %d bytes, WriteSnapshot %d: they differ", len(data), len(want))
	}
	g := restoreBytes(t, data)
	if got := snapBytes(t, g); !bytes.Equal(got, data) {
		t.Fatal("restored FSM writes different snapshot bytes")
	}
	if rv, want := readView(g), readView(f); rv != want {
		t.Fatalf("restored FSM reads differently:\n%s\nwant:\n%s", rv, want)
	}
	checkInvariants(t, g)
	// Restoring over a non-empty FSM replaces its state entirely.
	h := newWorld(t)
	if err := h.f.Restore(readCloser{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapBytes(t, h.f), data) {
		t.Fatal("Restore over an existing state kept some of it")
	}
	// The empty state round-trips too.
	empty := snapBytes(t, New())
	if !bytes.Equal(snapBytes(t, restoreBytes(t, empty)), empty) {
		t.Fatal("empty snapshot does not round-trip")
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	h := newWorld(t)
	want := snapBytes(t, h.f)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	h.ok(h.completeE("running", "n1"))
	h.ok(h.addE("later"))
	h.ok(&NodeUnregisterEntry{NodeID: "n1", Time: h.tick()})
	sink := &testSink{limit: -1}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.buf.Bytes(), want) {
		t.Fatal("Persist saw changes applied after Snapshot")
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	f := richFSM(t)
	size := len(snapBytes(t, f))
	for _, limit := range []int{0, 5, 100, size - 1} {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sink := &testSink{limit: limit}
		if err := snap.Persist(sink); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("limit %d: Persist = %v, want the sink's error", limit, err)
		}
		if !sink.cancelled || sink.closed {
			t.Fatalf("limit %d: sink closed=%v cancelled=%v, want cancelled", limit, sink.closed, sink.cancelled)
		}
	}
}

// craft builds a snapshot from arbitrary records with a valid checksum,
// to test the checks behind the checksum.
func craft(t *testing.T, records ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	sum := sha256.New()
	rw := &recordWriter{w: io.MultiWriter(&buf, sum)}
	rw.enc = codec.NewEncoderBytes(&rw.buf, MsgpackHandle())
	io.WriteString(rw.w, snapshotMagic)
	for _, r := range records {
		if err := rw.record("test", r); err != nil {
			t.Fatal(err)
		}
	}
	buf.Write(sum.Sum(nil))
	return buf.Bytes()
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	good := snapBytes(t, newWorld(t).f)
	hdr := func(tasks, nodes, servers int) *snapshotHeader {
		return &snapshotHeader{Version: 1, Index: 9, Tasks: tasks, Nodes: nodes, Servers: servers}
	}
	task := func(id string, st TaskStatus) *Task {
		return &Task{ID: id, Type: "x", Status: st, MaxAttempts: 1, History: []Event{{Status: st}}}
	}
	thdr := func(tokens int) *snapshotHeader {
		return &snapshotHeader{Version: 2, Index: 9, Tokens: tokens, ACLIndex: 9}
	}
	token := func(id, secret string) *ACLToken {
		return &ACLToken{AccessorID: id, SecretHash: secretHash(secret), Role: ACLOperator, CreateTime: 1, CreateIndex: 9}
	}
	rhdr := func(n int) *snapshotHeader {
		return &snapshotHeader{Version: 3, Index: 9, Retired: n}
	}
	retired := func(id string, ix uint64) *RetiredTask {
		return &RetiredTask{ID: id, Status: TaskComplete, RetiredAt: 5, RetireIndex: ix}
	}
	withLen := func(n uint32) []byte {
		b := append([]byte(snapshotMagic), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[8:], n)
		return append(b, make([]byte, 64)...)
	}
	cases := []struct {
		name string
		data []byte
		want string // in the error message
	}{
		{"empty", nil, "unexpected EOF"},
		{"bad magic", append([]byte("RCTLSNAX"), good[8:]...), "not an rctl snapshot"},
		{"truncated", good[:len(good)-40], ""},
		{"no trailer", good[:len(good)-32], "checksum"},
		{"short trailer", good[:len(good)-1], "checksum"},
		{"bad checksum", append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), "checksum mismatch"},
		{"trailing data", append(bytes.Clone(good), 0), "after the checksum"},
		{"zero-length record", withLen(0), "want 1 to"},
		{"oversized record", withLen(maxRecordLen + 1), "want 1 to"},
		{"future version", craft(t, &snapshotHeader{Version: 4}), "version 4"},
		{"version zero", craft(t, &snapshotHeader{Version: 0}), "version 0"},
		{"negative count", craft(t, hdr(-1, 0, 0)), "negative"},
		{"negative token count", craft(t, &snapshotHeader{Version: 2, Tokens: -1}), "negative"},
		{"version 1 with tokens", craft(t, &snapshotHeader{Version: 1, Tokens: 1}, token("a", "1")), "cannot hold ACL data"},
		{"version 1 with an acl index", craft(t, &snapshotHeader{Version: 1, ACLIndex: 3}), "cannot hold ACL data"},
		{"fewer tokens than announced", craft(t, thdr(2), token("a", "1")), ""},
		{"more tokens than announced", craft(t, thdr(1), token("a", "1"), token("b", "2")), "checksum"},
		{"duplicate token", craft(t, thdr(2), token("a", "1"), token("a", "2")), "duplicated"},
		{"unsorted tokens", craft(t, thdr(2), token("b", "1"), token("a", "2")), "out of order"},
		{"token without accessor", craft(t, thdr(1), token("", "1")), "out of order"},
		{"two tokens with one secret", craft(t, thdr(2), token("a", "1"), token("b", "1")), "same secret hash"},
		{"token with a short hash", craft(t, thdr(1), &ACLToken{AccessorID: "a", SecretHash: "abc", Role: ACLReader}), "secret hash"},
		{"token with an uppercase hash", craft(t, thdr(1), &ACLToken{AccessorID: "a", SecretHash: strings.ToUpper(secretHash("x")), Role: ACLReader}), "secret hash"},
		{"token with an unknown role", craft(t, thdr(1), &ACLToken{AccessorID: "a", SecretHash: secretHash("x"), Role: "root"}), "unknown role"},
		{"token record of the wrong shape", craft(t, thdr(1), "not a token"), "decode token"},
		{"negative retired count", craft(t, &snapshotHeader{Version: 3, Retired: -1}), "negative"},
		{"version 2 with retired tasks", craft(t, &snapshotHeader{Version: 2, Retired: 1}, retired("a", 1)), "cannot hold retired tasks"},
		{"version 1 with retired tasks", craft(t, &snapshotHeader{Version: 1, Retired: 1}, retired("a", 1)), "cannot hold retired tasks"},
		{"fewer retired than announced", craft(t, rhdr(2), retired("a", 1)), ""},
		{"more retired than announced", craft(t, rhdr(1), retired("a", 1), retired("b", 2)), "checksum"},
		{"retired twice", craft(t, rhdr(2), retired("a", 1), retired("a", 2)), "recorded twice"},
		{"retired with a bad id", craft(t, rhdr(1), retired("a/b", 1)), "retired task id"},
		{"retired without an id", craft(t, rhdr(1), retired("", 1)), "retired task id"},
		{"retired while running", craft(t, rhdr(1), &RetiredTask{ID: "a", Status: TaskRunning, RetiredAt: 1, RetireIndex: 1}), "only finished"},
		{"retired with an unknown status", craft(t, rhdr(1), &RetiredTask{ID: "a", Status: "gone", RetiredAt: 1, RetireIndex: 1}), "only finished"},
		{"retired without a time", craft(t, rhdr(1), &RetiredTask{ID: "a", Status: TaskFailed, RetireIndex: 1}), "must be positive"},
		{"retired without an index", craft(t, rhdr(1), &RetiredTask{ID: "a", Status: TaskFailed, RetiredAt: 1}), "must be positive"},
		{"retired record of the wrong shape", craft(t, rhdr(1), "not a record"), "decode retired"},
		{"fewer tasks than announced", craft(t, hdr(2, 0, 0), task("a", TaskPending)), ""},
		{"more tasks than announced", craft(t, hdr(1, 0, 0), task("a", TaskPending), task("b", TaskPending)), "checksum"},
		{"duplicate task", craft(t, hdr(2, 0, 0), task("a", TaskPending), task("a", TaskPending)), "duplicated"},
		{"unsorted tasks", craft(t, hdr(2, 0, 0), task("b", TaskPending), task("a", TaskPending)), "out of order"},
		{"unknown task status", craft(t, hdr(1, 0, 0), task("a", "zombie")), "unknown status"},
		{"held task without node", craft(t, hdr(1, 0, 0), task("a", TaskRunning)), "names no node"},
		{"unknown node status", craft(t, hdr(0, 1, 0), &Node{ID: "n", Status: "sleepy"}), "unknown status"},
		{"duplicate server", craft(t, hdr(0, 0, 2), &Server{ID: "s"}, &Server{ID: "s"}), "duplicated"},
		{"record of the wrong shape", craft(t, hdr(1, 0, 0), "not a task"), "decode task"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newWorld(t)
			before, ch := h.state()
			idx := h.f.Indexes()
			err := h.f.Restore(readCloser{bytes.NewReader(tc.data)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want an error containing %q", err, tc.want)
			}
			if _, ierr := ReadSnapshotInfo(bytes.NewReader(tc.data)); ierr == nil {
				t.Fatal("ReadSnapshotInfo accepted it")
			}
			if _, perr := PrepareRestore(bytes.NewReader(tc.data)); perr == nil {
				t.Fatal("PrepareRestore accepted it")
			}
			if !bytes.Equal(snapBytes(t, h.f), before) || h.f.Indexes() != idx || closed(ch) {
				t.Fatal("a failed Restore changed the state")
			}
		})
	}
}

// TestRestoreDetectsEveryCorruption flips each byte and cuts at each
// length of a small snapshot: every variant must be refused.
func TestRestoreDetectsEveryCorruption(t *testing.T) {
	h := newHarness(t)
	h.ok(h.nodeE("n1", 1))
	h.ok(h.addE("t1"))
	h.ok(h.assignE("t1", "n1"))
	h.ok(&ServerUpsertEntry{Server: Server{ID: "s1", Address: "a:1"}})
	h.ok(h.bootstrapE("root", "root-secret"))
	h.ok(h.createE("ops", "ops-secret", ACLOperator))
	good := snapBytes(t, h.f)
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if _, err := ReadSnapshotInfo(bytes.NewReader(bad)); err == nil {
			t.Fatalf("flipping byte %d of %d went unnoticed", i, len(good))
		}
		if err := New().Restore(readCloser{bytes.NewReader(good[:i])}); err == nil {
			t.Fatalf("truncation to %d of %d bytes went unnoticed", i, len(good))
		}
	}
}

func TestReadSnapshotInfo(t *testing.T) {
	f := richFSM(t)
	data := snapBytes(t, f)
	info, err := ReadSnapshotInfo(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data[:len(data)-32])
	want := SnapshotInfo{
		Version: 3, Index: f.Indexes().Applied, Tasks: len(f.Tasks("")), TasksByStatus: f.TaskCounts(),
		Nodes: len(f.Nodes()), Servers: len(f.Servers()), Tokens: len(f.ACLTokens()), ACLBootstrapped: f.ACLBootstrapped(),
		Retired: f.st.retired.len(), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
	}
	if fmt.Sprintf("%+v", info) != fmt.Sprintf("%+v", want) {
		t.Fatalf("ReadSnapshotInfo = %+v\nwant %+v", info, want)
	}
	if info.Tasks == 0 || info.Nodes == 0 || info.Servers == 0 || info.Tokens == 0 || !info.ACLBootstrapped || info.Retired == 0 {
		t.Fatalf("generated state is too thin for this test: %+v", info)
	}
	empty, err := ReadSnapshotInfo(bytes.NewReader(snapBytes(t, New())))
	if err != nil || len(empty.TasksByStatus) != len(TaskStatuses) || empty.Tasks != 0 || empty.Version != 1 || empty.Tokens != 0 || empty.Retired != 0 {
		t.Fatalf("empty snapshot info = %+v, %v", empty, err)
	}
}
