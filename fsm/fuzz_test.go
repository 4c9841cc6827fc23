package fsm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzDecodeEntry checks that DecodeEntry never panics and that whatever
// it accepts survives an encode/decode round trip unchanged.
func FuzzDecodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, body, err := DecodeEntry(data)
		if err != nil {
			if body != nil {
				t.Fatalf("error %v with a body %T", err, body)
			}
			return
		}
		if body == nil {
			if len(data) == 0 || data[0]&byte(IgnoreUnknownFlag) == 0 {
				t.Fatalf("no error and no body for type byte %#x", data[0])
			}
			return
		}
		if want := entryBodies[typ]; reflect.TypeOf(body).Elem() != want {
			t.Fatalf("type %s decoded into %T", typ, body)
		}
		again, err := EncodeEntry(body)
		if err != nil {
			t.Fatalf("re-encode %T: %v", body, err)
		}
		typ2, body2, err := DecodeEntry(again)
		if err != nil || typ2 != typ || !reflect.DeepEqual(body, body2) {
			t.Fatalf("round trip changed the entry: %v\n%#v\n%#v", err, body, body2)
		}
	})
}

// fuzzBase is the state FuzzApply starts every input from: newWorld's
// with withACL's tokens.
type fuzzBase struct {
	snap  []byte // the base state
	noop  []byte // the base state after a raft no-op at index next
	next  uint64 // the index the fuzzed entry is applied at
	index Indexes
}

func newFuzzBase(t *testing.T) *fuzzBase {
	h := newWorld(t)
	withACL(h)
	b := &fuzzBase{snap: snapBytes(t, h.f), next: h.index + 1, index: h.f.Indexes()}
	twin := restoreBytes(t, b.snap)
	twin.ApplyRaft(&raft.Log{Index: b.next, Type: raft.LogNoop})
	b.noop = snapBytes(t, twin)
	return b
}

// FuzzApply applies arbitrary bytes as one entry to a state holding a task
// in every status and checks that Apply does not panic, returns a result,
// and either changes nothing (refusals, no-ops) or leaves a state whose
// indexes and invariants hold. When the bytes decode to an entry body,
// Check of that body must first return exactly Apply's error and change
// nothing.
func FuzzApply(f *testing.F) {
	var base *fuzzBase
	f.Fuzz(func(t *testing.T, data []byte) {
		if base == nil {
			base = newFuzzBase(t)
		}
		fsm := restoreBytes(t, base.snap)
		ch := fsm.WatchCh()
		_, body, decErr := DecodeEntry(data)
		checked := decErr == nil && body != nil && len(data) <= MaxEntrySize
		var checkErr error
		if checked {
			checkErr = fsm.Check(body)
			if closed(ch) || !bytes.Equal(snapBytes(t, fsm), base.snap) {
				t.Fatalf("Check(%T) changed the state", body)
			}
		}
		out := fsm.ApplyRaft(&raft.Log{Index: base.next, Type: raft.LogCommand, Data: data})
		res, ok := out.(*ApplyResult)
		if !ok || res == nil || res.Index != base.next {
			t.Fatalf("Apply returned %#v", out)
		}
		if checked {
			if msg := sameErr(checkErr, res.Err); msg != "" {
				t.Fatalf("Check(%T) disagrees with Apply: %s", body, msg)
			}
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), "internal error") {
			t.Fatalf("Apply recovered from a panic: %v", res.Err)
		}
		idx := fsm.Indexes()
		changed := idx.Tasks != base.index.Tasks || idx.Nodes != base.index.Nodes || idx.Servers != base.index.Servers || idx.ACL != base.index.ACL
		if res.Err != nil && changed {
			t.Fatalf("refused entry (%v) moved the indexes: %+v -> %+v", res.Err, base.index, idx)
		}
		if !changed {
			if !bytes.Equal(snapBytes(t, fsm), base.noop) {
				t.Fatalf("entry changed the state without moving an index (err %v)", res.Err)
			}
			if closed(ch) {
				t.Fatal("WatchCh closed without a change")
			}
			return
		}
		if !closed(ch) {
			t.Fatal("WatchCh not closed after a change")
		}
		checkInvariants(t, fsm)
		snap := snapBytes(t, fsm)
		if !bytes.Equal(snapBytes(t, restoreBytes(t, snap)), snap) {
			t.Fatal("changed state does not round-trip through a snapshot")
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus under
// testdata/fuzz when RCTL_WRITE_FUZZ_CORPUS=1. The seeds are valid entries
// of every type, aimed at newWorld's tasks and nodes and withACL's tokens,
// plus garbage and a few malformed retire_tasks entries.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("RCTL_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set RCTL_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz seeds")
	}
	h := newHarness(t)
	seeds := map[string]any{
		"add_task":        h.addE("fresh"),
		"add_task_same":   h.addE("pending"),
		"add_task_cloud":  &AddTaskEntry{ID: "c1", Type: "http", Cloud: "gcp", MaxAttempts: 5, Payload: map[string]string{"url": "http://x", "m": "GET"}, Time: 7},
		"assign_task":     h.assignE("pending", "n4"),
		"assign_full":     h.assignE("pending", "n1"),
		"start_task":      h.startE("assigned", "n1"),
		"complete_task":   h.completeE("running", "n1"),
		"complete_resent": h.completeE("complete", "n2"),
		"fail_task":       h.failE("assigned", "n1"),
		"cancel_task":     h.cancelE("running"),
		"node_register":   &NodeRegisterEntry{ID: "n1", Address: "10.0.0.9:1", Cloud: "aws", Capacity: 1, Meta: map[string]string{"a": "b"}, Time: 9},
		"node_unregister": &NodeUnregisterEntry{NodeID: "n1", Time: 9},
		"node_status":     h.statusE("n1", NodeUnreachable),
		"server_upsert":   &ServerUpsertEntry{Server: Server{ID: "s1", Address: "10.0.1.1:50051", Cloud: "aws", Region: "us-east-1"}},
		"server_remove":   &ServerRemoveEntry{ID: "s1"},
		"add_tasks":       &AddTasksEntry{Tasks: []AddTaskEntry{*h.addE("b1"), *h.addE("pending"), *h.addE("b1")}, Time: 11},
		// ACL seeds; h's ticks above are unchanged, so are the seeds above.
		"acl_bootstrap_again":   h.bootstrapE("root", "root-secret"),
		"acl_bootstrap_other":   h.bootstrapE("root2", "other-secret"),
		"acl_token_create":      h.createE("ci", "ci-secret", ACLOperator),
		"acl_token_create_same": h.createE("ops", "ops-secret", ACLOperator),
		"acl_token_create_dup":  h.createE("ci", "ro-secret", ACLReader),
		"acl_token_revoke":      h.revokeE("ops"),
		"acl_token_revoke_root": h.revokeE("root"),
		// Retirement seeds, after the others for the same reason.
		"retire_tasks":      h.retireE("complete", "failed", "cancelled"),
		"retire_tasks_skip": h.retireE("pending", "nope", "running", "failed"),
		"retire_tasks_none": h.retireE("assigned", "gone"),
		"retire_tasks_dup":  h.retireE("complete", "cancelled", "complete"),
		"retire_tasks_bad":  &RetireTasksEntry{TaskIDs: []string{"complete", "a b"}, Reason: "count", Time: 13},
	}
	raw := map[string][]byte{
		"empty":          {},
		"type_only":      {byte(AddTask)},
		"ignore_unknown": {byte(IgnoreUnknownFlag | 0x30), EntryVersion, 0x80},
		"bad_version":    {byte(StartTask), 9, 0x80},
		"garbage":        []byte("\x04\x01\xdf\xff\xff\xff\xff\xc1\x00"),
		"deep_nesting":   append([]byte{byte(AddTask), EntryVersion}, bytes.Repeat([]byte{0x91}, 5000)...),
	}
	for name, body := range seeds {
		raw[name] = encode(t, body)
	}
	for _, target := range []string{"FuzzDecodeEntry", "FuzzApply"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range raw {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(dir, "seed_"+name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
