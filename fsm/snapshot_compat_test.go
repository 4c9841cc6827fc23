package fsm

import (
	"bytes"
	"os"
	"testing"

	"github.com/hashicorp/raft"
)

// legacyHeader is the snapshot header as the code before ACL tokens
// defined it (format version 1).
type legacyHeader struct {
	Version      int    `codec:"version"`
	Index        uint64 `codec:"index"`
	TasksIndex   uint64 `codec:"tasks_index"`
	NodesIndex   uint64 `codec:"nodes_index"`
	ServersIndex uint64 `codec:"servers_index"`
	Tasks        int    `codec:"tasks"`
	Nodes        int    `codec:"nodes"`
	Servers      int    `codec:"servers"`
}

// oldWorld is the state testdata/snapshot_v1_no_acl.bin holds: it was
// written by the code before ACL tokens from this state.
func oldWorld(t *testing.T) *harness {
	h := newWorld(t)
	h.ok(&ServerUpsertEntry{Server: Server{ID: "s1", Address: "10.0.1.5:50051", Cloud: "aws", Region: "us-east-1"}})
	return h
}

// TestOldFormatSnapshotRestores: a snapshot written by the previous code
// (no token records, no ACL header fields) restores, by Restore and by
// PrepareRestore/Expect; a state without ACL data is still written byte
// for byte in that format; and ACL data written on top of it is version 2.
func TestOldFormatSnapshotRestores(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot_v1_no_acl.bin")
	if err != nil {
		t.Fatal(err)
	}
	f := restoreBytes(t, old)
	want := oldWorld(t)
	if got, w := readView(f), readView(want.f); got != w {
		t.Fatalf("old snapshot restores as\n%s\nwant\n%s", got, w)
	}
	if f.ACLBootstrapped() || len(f.ACLTokens()) != 0 || f.Indexes().ACL != 0 {
		t.Fatal("an old snapshot restored ACL data")
	}
	if !bytes.Equal(snapBytes(t, f), old) || !bytes.Equal(snapBytes(t, want.f), old) {
		t.Fatal("a state without ACL data is not written in the old format byte for byte")
	}
	checkInvariants(t, f)

	info, err := ReadSnapshotInfo(bytes.NewReader(old))
	if err != nil || info.Version != 1 || info.Tokens != 0 || info.ACLBootstrapped || info.Tasks != 7 || info.Servers != 1 {
		t.Fatalf("ReadSnapshotInfo = %+v, %v", info, err)
	}
	p, err := PrepareRestore(bytes.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	g := New()
	defer g.Expect(p)()
	if err := g.Restore(readCloser{bytes.NewReader(old)}); err != nil || g.st != p.st || readView(g) != readView(f) {
		t.Fatalf("prepared restore of an old snapshot: %v", err)
	}

	// An ACL entry on the restored state; its snapshot is version 2.
	l := &raft.Log{Index: f.Indexes().Applied + 1, Type: raft.LogCommand, Data: encode(t, want.bootstrapE("root", "root-secret"))}
	if res := f.ApplyRaft(l).(*ApplyResult); res.Err != nil {
		t.Fatal(res.Err)
	}
	data := snapBytes(t, f)
	info, err = ReadSnapshotInfo(bytes.NewReader(data))
	if err != nil || info.Version != 2 || info.Tokens != 1 || !info.ACLBootstrapped {
		t.Fatalf("after a bootstrap: %+v, %v", info, err)
	}
	if r := restoreBytes(t, data); !bytes.Equal(snapBytes(t, r), data) || readView(r) != readView(f) {
		t.Fatal("a version 2 snapshot does not round-trip")
	}
}

// TestLegacyHeaderSnapshot: a snapshot crafted with the old header struct
// restores with zero ACL data, and the new header of a state without ACL
// data encodes exactly as the old one did.
func TestLegacyHeaderSnapshot(t *testing.T) {
	task := &Task{ID: "t", Type: "x", Status: TaskPending, MaxAttempts: 1, CreateIndex: 2, ModifyIndex: 2}
	node := &Node{ID: "n", Capacity: 1, Status: NodeHealthy, CreateIndex: 3, ModifyIndex: 3}
	data := craft(t, &legacyHeader{Version: 1, Index: 5, TasksIndex: 2, NodesIndex: 3, ServersIndex: 4, Tasks: 1, Nodes: 1, Servers: 1},
		task, node, &Server{ID: "s", Address: "a:1"})
	f := restoreBytes(t, data)
	if idx := f.Indexes(); idx != (Indexes{Tasks: 2, Nodes: 3, Servers: 4, Applied: 5}) {
		t.Fatalf("Indexes = %+v", idx)
	}
	if f.ACLBootstrapped() || len(f.ACLTokens()) != 0 || f.Task("t") == nil || f.Node("n") == nil || f.Server("s") == nil {
		t.Fatal("the legacy snapshot restored wrongly")
	}
	if !bytes.Equal(snapBytes(t, f), data) {
		t.Fatal("the legacy snapshot is not written back byte for byte")
	}
	hdr := f.st.capture().hdr
	if hdr.Version != 1 {
		t.Fatalf("a state without ACL data captured as version %d", hdr.Version)
	}
	if !bytes.Equal(encodeRecord(t, &hdr), encodeRecord(t, &legacyHeader{Version: 1, Index: 5, TasksIndex: 2, NodesIndex: 3,
		ServersIndex: 4, Tasks: 1, Nodes: 1, Servers: 1})) {
		t.Fatal("the header without ACL data encodes differently from the old header")
	}
}
