package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// codecTask decodes a task record with the codec alone (the slow path).
func codecTask(b []byte) (*Task, error) {
	t := new(Task)
	dec := codec.NewDecoderBytes(b, MsgpackHandle())
	if err := decodeRecover(dec, t); err != nil {
		return nil, err
	}
	return t, nil
}

// readerTask decodes a task record as readSnapshot does (fast path, or
// the codec when the fast path gives up).
func readerTask(b []byte) (*Task, error) {
	sr := newRecordReader(bytes.NewReader(nil))
	t := new(Task)
	if err := sr.decodeTask(b, t); err != nil {
		return nil, err
	}
	return t, nil
}

func encodeRecord(t *testing.T, v any) []byte {
	t.Helper()
	var b []byte
	if err := codec.NewEncoderBytes(&b, MsgpackHandle()).Encode(v); err != nil {
		t.Fatal(err)
	}
	return b
}

func sameDecoding(t *testing.T, name string, rec []byte) {
	t.Helper()
	want, werr := codecTask(rec)
	got, gerr := readerTask(rec)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: codec error %v, snapshot reader error %v", name, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: snapshot reader decoded\n%+v\ncodec decoded\n%+v", name, got, want)
	}
}

// TestTaskDecoderTakesEveryStoredTask: every task of a state that went
// through the generated log (all statuses, results, histories, payloads)
// takes the fast path and decodes exactly as the codec does.
func TestTaskDecoderTakesEveryStoredTask(t *testing.T) {
	f := richFSM(t)
	d := newTaskDecoder()
	tasks := f.Tasks("")
	if len(tasks) < 100 {
		t.Fatalf("only %d tasks", len(tasks))
	}
	for _, task := range tasks {
		rec := encodeRecord(t, task)
		got := new(Task)
		if err := d.decodeTask(rec, got); err != nil {
			t.Fatalf("task %s: fast path gave up: %v", task.ID, err)
		}
		want, err := codecTask(rec)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("task %s: fast path decoded\n%+v\ncodec decoded\n%+v", task.ID, got, want)
		}
	}
}

// TestTaskDecoderFallsBack: records the fast path does not handle are
// decoded (or refused) by the codec, exactly as before.
func TestTaskDecoderFallsBack(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{
			"id": "t1", "type": "shell", "payload": map[string]any{"b": "2", "a": "1"},
			"status": "complete", "node_id": "n1", "attempts": 1, "max_attempts": 3,
			"result":     map[string]any{"exit_code": -1, "output": "out", "error": "e"},
			"created_at": -5, "updated_at": 7, "create_index": 9, "modify_index": 12,
			"history": []any{map[string]any{"time": 1, "index": 9, "status": "pending", "message": "m"}},
		}
	}
	variants := map[string]func(m map[string]any){
		"as written":            func(map[string]any) {},
		"unknown key":           func(m map[string]any) { m["colour"] = "red" },
		"binary id":             func(m map[string]any) { m["id"] = []byte("t1") },
		"nil attempts":          func(m map[string]any) { m["attempts"] = nil },
		"float attempts":        func(m map[string]any) { m["attempts"] = 1.5 },
		"negative create index": func(m map[string]any) { m["create_index"] = -1 },
		"huge modify index":     func(m map[string]any) { m["modify_index"] = uint64(1 << 63) },
		"huge attempts":         func(m map[string]any) { m["attempts"] = uint64(1 << 63) },
		"min int time":          func(m map[string]any) { m["created_at"] = int64(-1 << 63) },
		"unknown status":        func(m map[string]any) { m["status"] = "zombie" },
		"empty payload":         func(m map[string]any) { m["payload"] = map[string]any{} },
		"nil payload value":     func(m map[string]any) { m["payload"] = map[string]any{"a": nil} },
		"int payload value":     func(m map[string]any) { m["payload"] = map[string]any{"a": 1} },
		"payload as array":      func(m map[string]any) { m["payload"] = []any{"a", "1"} },
		"empty history":         func(m map[string]any) { m["history"] = []any{} },
		"event with extra key":  func(m map[string]any) { m["history"] = []any{map[string]any{"time": 1, "x": 2}} },
		"event not a map":       func(m map[string]any) { m["history"] = []any{"event"} },
		"result not a map":      func(m map[string]any) { m["result"] = "ok" },
		"result unknown key":    func(m map[string]any) { m["result"] = map[string]any{"exit": 1} },
		"nil result":            func(m map[string]any) { m["result"] = nil },
		"long strings":          func(m map[string]any) { m["id"] = strings.Repeat("i", 70000); m["type"] = strings.Repeat("y", 300) },
	}
	for name, mutate := range variants {
		m := base()
		mutate(m)
		rec := encodeRecord(t, m)
		sameDecoding(t, name, rec)
		if len(rec) > 1024 {
			continue
		}
		// Every truncation, and every single-byte change, is judged the
		// same way too.
		for i := range rec {
			sameDecoding(t, fmt.Sprintf("%s cut at %d", name, i), rec[:i])
			for _, x := range []byte{0x01, 0x10, 0x80, 0xff} {
				bad := bytes.Clone(rec)
				bad[i] ^= x
				sameDecoding(t, fmt.Sprintf("%s byte %d ^ %#x", name, i, x), bad)
			}
		}
	}
	// A struct encoded as an array (not what writeSnapshot writes).
	sameDecoding(t, "array", encodeRecord(t, []any{"t1", "shell"}))
	sameDecoding(t, "string", encodeRecord(t, "not a task"))
}

// TestPreparedRestore: a prepared snapshot is installed by the Restore of
// the same bytes without decoding them again, and only by that one.
func TestPreparedRestore(t *testing.T) {
	src := richFSM(t)
	data := snapBytes(t, src)
	p, err := PrepareRestore(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != int64(len(data)) || p.Tasks() != len(src.Tasks("")) || p.Index() != src.Indexes().Applied {
		t.Fatalf("prepared size %d tasks %d index %d", p.Size(), p.Tasks(), p.Index())
	}

	f := New()
	disarm := f.Expect(p)
	// Another snapshot (another header) is decoded as usual and leaves
	// the prepared one armed.
	other := newWorld(t).f
	if err := f.Restore(readCloser{bytes.NewReader(snapBytes(t, other))}); err != nil {
		t.Fatal(err)
	}
	if readView(f) != readView(other) || f.expected.Load() != p {
		t.Fatal("restore of another snapshot went wrong")
	}
	if err := f.Restore(readCloser{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if f.st != p.st {
		t.Fatal("Restore decoded the snapshot again instead of installing the prepared state")
	}
	if f.expected.Load() != nil {
		t.Fatal("the prepared state is still armed after use")
	}
	if !bytes.Equal(snapBytes(t, f), data) || readView(f) != readView(src) {
		t.Fatal("the installed state differs from the snapshot")
	}
	checkInvariants(t, f)
	disarm() // a no-op now

	// Disarmed: the next Restore of the same bytes decodes them.
	g := New()
	g.Expect(p)()
	if err := g.Restore(readCloser{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if g.st == p.st || readView(g) != readView(src) {
		t.Fatal("a disarmed prepared state was used")
	}
}

// TestPreparedRestoreRefusesOtherContent: a stream with the prepared
// header but other bytes (a different snapshot, or corruption) is refused
// and changes nothing.
func TestPreparedRestoreRefusesOtherContent(t *testing.T) {
	hdr := &snapshotHeader{Version: 1, Index: 9, Tasks: 1}
	task := func(id string) *Task {
		return &Task{ID: id, Type: "x", Status: TaskPending, MaxAttempts: 1, History: []Event{{Status: TaskPending}}}
	}
	a, b := craft(t, hdr, task("a")), craft(t, hdr, task("b"))
	corrupt := bytes.Clone(a)
	corrupt[len(corrupt)-40] ^= 1
	for name, data := range map[string][]byte{"other snapshot": b, "corrupt": corrupt, "truncated": a[:len(a)-1], "longer": append(bytes.Clone(a), 0)} {
		t.Run(name, func(t *testing.T) {
			p, err := PrepareRestore(bytes.NewReader(a))
			if err != nil {
				t.Fatal(err)
			}
			h := newWorld(t)
			before, ch := h.state()
			defer h.f.Expect(p)()
			if err := h.f.Restore(readCloser{bytes.NewReader(data)}); err == nil {
				t.Fatal("Restore accepted it")
			}
			if !bytes.Equal(snapBytes(t, h.f), before) || closed(ch) {
				t.Fatal("a refused Restore changed the state")
			}
		})
	}
}
