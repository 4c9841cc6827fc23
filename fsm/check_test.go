package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// checkCase is one entry checked and then applied.
type checkCase struct {
	name  string
	noACL bool             // start from newWorld without withACL's tokens
	setup func(h *harness) // extra setup
	entry func(h *harness) any
	want  error // nil: accepted; else the refusal's kind
	noop  bool  // accepted without any change
}

// runCheckCase checks the entry (wanting no change, byte for byte), then
// applies it and wants Apply's error to be exactly Check's, and the
// outcome to be the one the case names.
func runCheckCase(t *testing.T, tc checkCase) {
	h := newWorld(t)
	if !tc.noACL {
		withACL(h)
	}
	if tc.setup != nil {
		tc.setup(h)
	}
	body := tc.entry(h)
	before := snapBytes(t, h.f)
	idx, ch := h.f.Indexes(), h.f.WatchCh()
	checkErr := h.f.Check(body)
	if !bytes.Equal(snapBytes(t, h.f), before) || h.f.Indexes() != idx || closed(ch) {
		t.Fatal("Check changed the state")
	}
	res := h.applyRaw(encode(t, body))
	if msg := sameErr(checkErr, res.Err); msg != "" {
		t.Fatal(msg)
	}
	switch {
	case tc.want != nil:
		if !errors.Is(res.Err, tc.want) {
			t.Fatalf("Apply returned %v, want a refusal of kind %v", res.Err, tc.want)
		}
		h.unchanged(before, ch, "refused entry")
	case res.Err != nil:
		t.Fatalf("Apply refused it: %v", res.Err)
	case tc.noop:
		h.unchanged(before, ch, "no-op")
	default:
		if !closed(ch) {
			t.Fatal("an accepted entry changed nothing")
		}
	}
	checkInvariants(t, h.f)
}

// TestCheckMatchesApply: for every entry type, accepted, idempotent and
// refused transitions, Check returns exactly the error Apply then returns
// and leaves the state byte-identical. (Every applyCase of the per-type
// tests, run by runCases, checks the same, as does FuzzApply.)
func TestCheckMatchesApply(t *testing.T) {
	body := func(b any) func(h *harness) any { return func(*harness) any { return b } }
	withS1 := func(h *harness) { h.ok(&ServerUpsertEntry{Server: Server{ID: "s1", Address: "a:1"}}) }
	cases := []checkCase{
		{name: "add_task new", entry: func(h *harness) any { return h.addE("new") }},
		{name: "add_task same", entry: func(h *harness) any { return h.addE("pending") }, noop: true},
		{name: "add_task other payload", entry: func(h *harness) any {
			e := h.addE("pending")
			e.Payload["cmd"] = "false"
			return e
		}, want: ErrConflict},
		{name: "add_task bad id", entry: func(h *harness) any { return h.addE("a/b") }, want: ErrInvalid},
		{name: "add_task no time", entry: func(h *harness) any { e := h.addE("new"); e.Time = 0; return e }, want: ErrInvalid},

		{name: "add_tasks new", entry: func(h *harness) any { return h.batchE("b1", "b2", "pending") }},
		{name: "add_tasks resent", entry: func(h *harness) any { return h.batchE("pending", "complete") }, noop: true},
		{name: "add_tasks conflict", entry: func(h *harness) any {
			e := h.batchE("b1", "pending")
			e.Tasks[1].Type = "http"
			return e
		}, want: ErrConflict},
		{name: "add_tasks inner conflict", entry: func(h *harness) any {
			e := h.batchE("b1", "b1")
			e.Tasks[1].Cloud = "gcp"
			return e
		}, want: ErrInvalid},
		{name: "add_tasks bad element", entry: func(h *harness) any { return h.batchE("b1", "") }, want: ErrInvalid},
		{name: "add_tasks empty", entry: func(h *harness) any { return &AddTasksEntry{Time: h.tick()} }, want: ErrInvalid},

		{name: "assign_task", entry: func(h *harness) any { return h.assignE("pending", "n4") }},
		{name: "assign_task missing task", entry: func(h *harness) any { return h.assignE("nope", "n4") }, want: ErrNotFound},
		{name: "assign_task unknown node", entry: func(h *harness) any { return h.assignE("pending", "n9") }, want: ErrInvalid},
		{name: "assign_task full node", entry: func(h *harness) any { return h.assignE("pending", "n1") }, want: ErrConflict},
		{name: "assign_task unreachable node", entry: func(h *harness) any { return h.assignE("pending", "n3") }, want: ErrConflict},
		{name: "assign_task wrong cloud", entry: func(h *harness) any { return h.assignE("gcp-only", "n4") }, want: ErrConflict},
		{name: "assign_task not pending", entry: func(h *harness) any { return h.assignE("assigned", "n4") }, want: ErrConflict},

		{name: "start_task", entry: func(h *harness) any { return h.startE("assigned", "n1") }},
		{name: "start_task resent", entry: func(h *harness) any { return h.startE("running", "n1") }, noop: true},
		{name: "start_task other node", entry: func(h *harness) any { return h.startE("assigned", "n2") }, want: ErrConflict},
		{name: "start_task pending", entry: func(h *harness) any { return h.startE("pending", "n1") }, want: ErrConflict},
		{name: "start_task missing", entry: func(h *harness) any { return h.startE("nope", "n1") }, want: ErrNotFound},

		{name: "complete_task", entry: func(h *harness) any { return h.completeE("running", "n1") }},
		{name: "complete_task resent", entry: func(h *harness) any { return h.completeE("complete", "n2") }, noop: true},
		{name: "complete_task stale", entry: func(h *harness) any { return h.completeE("running", "n2") }, want: ErrConflict},
		{name: "complete_task pending", entry: func(h *harness) any { return h.completeE("pending", "n1") }, want: ErrConflict},
		{name: "complete_task missing", entry: func(h *harness) any { return h.completeE("nope", "n1") }, want: ErrNotFound},
		{name: "complete_task no node", entry: func(h *harness) any { return h.completeE("running", "") }, want: ErrInvalid},

		{name: "fail_task", entry: func(h *harness) any { return h.failE("assigned", "n1") }},
		{name: "fail_task resent", entry: func(h *harness) any { return h.failE("failed", "n2") }, noop: true},
		{name: "fail_task cancelled", entry: func(h *harness) any { return h.failE("cancelled", "n1") }, want: ErrConflict},

		{name: "cancel_task", entry: func(h *harness) any { return h.cancelE("running") }},
		{name: "cancel_task resent", entry: func(h *harness) any { return h.cancelE("cancelled") }, noop: true},
		{name: "cancel_task finished", entry: func(h *harness) any { return h.cancelE("complete") }, want: ErrConflict},
		{name: "cancel_task missing", entry: func(h *harness) any { return h.cancelE("nope") }, want: ErrNotFound},

		{name: "node_register new", entry: func(h *harness) any { return h.nodeE("n9", 2) }},
		{name: "node_register same", entry: func(h *harness) any { return h.nodeE("n4", 3) }, noop: true},
		{name: "node_register holding tasks", entry: func(h *harness) any { return h.nodeE("n1", 2) }},
		{name: "node_register zero capacity", entry: func(h *harness) any { return h.nodeE("n9", 0) }, want: ErrInvalid},

		{name: "node_unregister", entry: func(h *harness) any { return &NodeUnregisterEntry{NodeID: "n1", Time: h.tick()} }},
		{name: "node_unregister missing", entry: func(h *harness) any { return &NodeUnregisterEntry{NodeID: "n9", Time: h.tick()} }, want: ErrNotFound},
		{name: "node_unregister no time", entry: body(&NodeUnregisterEntry{NodeID: "n1"}), want: ErrInvalid},

		{name: "node_status", entry: func(h *harness) any { return h.statusE("n1", NodeUnreachable) }},
		{name: "node_status same", entry: func(h *harness) any { return h.statusE("n4", NodeHealthy) }, noop: true},
		{name: "node_status missing", entry: func(h *harness) any { return h.statusE("n9", NodeDegraded) }, want: ErrNotFound},
		{name: "node_status bogus", entry: func(h *harness) any { return h.statusE("n4", "asleep") }, want: ErrInvalid},

		{name: "server_upsert", entry: body(&ServerUpsertEntry{Server: Server{ID: "s1", Address: "a:1"}})},
		{name: "server_upsert same", setup: withS1, entry: body(&ServerUpsertEntry{Server: Server{ID: "s1", Address: "a:1"}}), noop: true},
		{name: "server_upsert no address", entry: body(&ServerUpsertEntry{Server: Server{ID: "s1"}}), want: ErrInvalid},

		{name: "server_remove", setup: withS1, entry: body(&ServerRemoveEntry{ID: "s1"})},
		{name: "server_remove absent", entry: body(&ServerRemoveEntry{ID: "s1"}), noop: true},
		{name: "server_remove empty", entry: body(&ServerRemoveEntry{}), want: ErrInvalid},

		{name: "acl_bootstrap first", noACL: true, entry: func(h *harness) any { return h.bootstrapE("root", "root-secret") }},
		{name: "acl_bootstrap same again", entry: func(h *harness) any { return h.bootstrapE("root", "root-secret") }, noop: true},
		{name: "acl_bootstrap twice", entry: func(h *harness) any { return h.bootstrapE("root2", "secret2") }, want: ErrConflict},
		{name: "acl_bootstrap after revoke", setup: func(h *harness) { h.ok(h.revokeE("root")) },
			entry: func(h *harness) any { return h.bootstrapE("root", "root-secret") }, want: ErrConflict},
		{name: "acl_bootstrap reader", noACL: true, entry: func(h *harness) any {
			e := h.bootstrapE("root", "root-secret")
			e.Token.Role = ACLReader
			return e
		}, want: ErrInvalid},

		{name: "acl_token_create", entry: func(h *harness) any { return h.createE("ci", "ci-secret", ACLOperator) }},
		{name: "acl_token_create same", entry: func(h *harness) any { return h.createE("ro", "ro-secret", ACLReader) }, noop: true},
		{name: "acl_token_create other role", entry: func(h *harness) any { return h.createE("ro", "ro-secret", ACLOperator) }, want: ErrConflict},
		{name: "acl_token_create secret taken", entry: func(h *harness) any { return h.createE("ci", "root-secret", ACLReader) }, want: ErrConflict},
		{name: "acl_token_create bad hash", entry: func(h *harness) any {
			e := h.createE("ci", "ci-secret", ACLReader)
			e.Token.SecretHash = "ci-secret"
			return e
		}, want: ErrInvalid},

		{name: "acl_token_revoke", entry: func(h *harness) any { return h.revokeE("ro") }},
		{name: "acl_token_revoke missing", entry: func(h *harness) any { return h.revokeE("nope") }, want: ErrNotFound},
		{name: "acl_token_revoke no time", entry: body(&ACLTokenRevokeEntry{AccessorID: "ro"}), want: ErrInvalid},

		{name: "retire_tasks finished", entry: func(h *harness) any { return h.retireE("complete", "failed", "cancelled") }},
		{name: "retire_tasks skips unfinished and missing", entry: func(h *harness) any { return h.retireE("pending", "nope", "complete", "running") }},
		{name: "retire_tasks nothing finished", entry: func(h *harness) any { return h.retireE("pending", "assigned", "nope") }, noop: true},
		{name: "retire_tasks resent", setup: func(h *harness) { h.ok(h.retireE("complete")) },
			entry: func(h *harness) any { return h.retireE("complete") }, noop: true},
		{name: "retire_tasks empty", entry: func(h *harness) any { return h.retireE() }, want: ErrInvalid},
		{name: "retire_tasks twice the same id", entry: func(h *harness) any { return h.retireE("complete", "failed", "complete") }, want: ErrInvalid},
		{name: "retire_tasks too many", entry: func(h *harness) any {
			e := h.retireE("complete")
			for i := range MaxRetireBatch {
				e.TaskIDs = append(e.TaskIDs, fmt.Sprint("x", i))
			}
			return e
		}, want: ErrInvalid},
		{name: "retire_tasks bad id", entry: func(h *harness) any { return h.retireE("complete", "a/b") }, want: ErrInvalid},
		{name: "retire_tasks no time", entry: body(&RetireTasksEntry{TaskIDs: []string{"complete"}}), want: ErrInvalid},
		{name: "retire_tasks long reason", entry: func(h *harness) any {
			e := h.retireE("complete")
			e.Reason = strings.Repeat("r", MaxRetireReasonLen+1)
			return e
		}, want: ErrInvalid},
		{name: "retire_tasks reason not UTF-8", entry: func(h *harness) any { e := h.retireE("complete"); e.Reason = "\xff"; return e }, want: ErrInvalid},

		{name: "oversized complete_task", entry: func(h *harness) any {
			e := h.completeE("running", "n1")
			e.Result.Output = strings.Repeat("o", MaxEntrySize)
			return e
		}, want: ErrInvalid},
		{name: "value body, not a pointer", entry: func(h *harness) any { return *h.addE("by-value") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runCheckCase(t, tc) })
	}
	// Every entry type has a case.
	for typ, name := range entryNames {
		found := false
		for _, tc := range cases {
			found = found || strings.HasPrefix(tc.name, name+" ") || tc.name == name
		}
		if !found {
			t.Errorf("no case for %s (%d)", name, typ)
		}
	}
}

// TestCheckCoversEveryEntryType: the zero body of every entry type, by
// pointer and by value, is checked by its own checkX (never "no apply
// function") with the error Apply returns.
func TestCheckCoversEveryEntryType(t *testing.T) {
	if len(entryNames) != len(entryBodies) {
		t.Fatalf("%d entry names, %d entry bodies", len(entryNames), len(entryBodies))
	}
	for typ, bt := range entryBodies {
		ptr := reflect.New(bt).Interface()
		for _, body := range []any{ptr, reflect.New(bt).Elem().Interface()} {
			h := newWorld(t)
			withACL(h)
			checkErr := h.f.Check(body)
			res := h.applyRaw(encode(t, body))
			if msg := sameErr(checkErr, res.Err); msg != "" {
				t.Fatalf("%s %T: %s", typ, body, msg)
			}
			if res.Err == nil && typ != ServerRemove { // removing no server is a no-op
				t.Fatalf("%s: the zero body was accepted", typ)
			}
			if res.Err != nil && strings.Contains(res.Err.Error(), "no apply function") {
				t.Fatalf("%s: %v", typ, res.Err)
			}
		}
	}
}

func TestCheckRefusesWhatIsNotAnEntry(t *testing.T) {
	f := New()
	for _, body := range []any{nil, "add_task", 42, &Task{ID: "t"}, []AddTaskEntry{{ID: "t"}}, map[string]any{"id": "t"}, new(*AddTaskEntry)} {
		err := f.Check(body)
		var fe *Error
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Msg == "" {
			t.Fatalf("Check(%#v) = %#v, want an ErrInvalid *Error", body, err)
		}
	}
	// A nil entry pointer encodes as msgpack nil, which decodes to the
	// zero body: Check says what Apply says of it.
	h := newHarness(t)
	checkErr := h.f.Check((*AddTaskEntry)(nil))
	res := h.applyRaw(encode(t, (*AddTaskEntry)(nil)))
	if msg := sameErr(checkErr, res.Err); msg != "" || checkErr == nil {
		t.Fatalf("nil *AddTaskEntry: %s (%v)", msg, checkErr)
	}
	if checkErr := h.f.Check(AddTaskEntry{}); checkErr == nil || checkErr.(*Error) == nil {
		t.Fatalf("zero entry by value accepted")
	}
}

// TestMaxEntrySize: the largest entries the field limits allow fit in
// MaxEntrySize; longer entries are refused by Check and Apply alike.
func TestMaxEntrySize(t *testing.T) {
	big := func(keyLen int) map[string]string {
		m := make(map[string]string, MaxPayloadKeys)
		for i := range MaxPayloadKeys {
			k := fmt.Sprintf("%0*d", keyLen, i)
			m[k] = strings.Repeat("v", MaxPayloadValueLen)
		}
		return m
	}
	h := newHarness(t)
	h.ok(h.nodeE("n1", 1))
	largest := []any{
		&AddTaskEntry{ID: strings.Repeat("t", MaxIDLen), Type: strings.Repeat("y", MaxTypeLen), Cloud: strings.Repeat("c", maxLabelLen),
			Payload: big(MaxPayloadKeyLen), MaxAttempts: MaxAttemptsLimit, Time: h.tick()},
		&NodeRegisterEntry{ID: strings.Repeat("n", MaxIDLen), Address: strings.Repeat("a", maxAddressLen), Cloud: strings.Repeat("c", maxLabelLen),
			Region: strings.Repeat("r", maxLabelLen), Capacity: MaxCapacity, Meta: big(MaxPayloadKeyLen), Time: h.tick()},
	}
	for _, e := range largest {
		n := len(encode(t, e))
		t.Logf("largest %T: %d bytes (%.2f MiB)", e, n, float64(n)/(1<<20))
		if n < 4<<20 || n > MaxEntrySize/2+(64<<10) {
			t.Fatalf("largest %T is %d bytes; MaxEntrySize's comment says about 4.0 MiB", e, n)
		}
		h.ok(e) // h.apply also wants Check to accept it
	}
	// A full batch of tasks with 7 KiB payloads fits.
	batch := &AddTasksEntry{Time: h.tick()}
	for i := range MaxBatch {
		batch.Tasks = append(batch.Tasks, AddTaskEntry{ID: fmt.Sprint("b", i), Type: "shell", Payload: map[string]string{"script": strings.Repeat("s", 7<<10)}})
	}
	t.Logf("batch of %d 7 KiB tasks: %d bytes", MaxBatch, len(encode(t, batch)))
	h.ok(batch)

	// Too long: refused with the same message by Check and by Apply, and
	// without any change.
	for _, e := range []any{
		func() any { // a batch of 10 KiB tasks
			b := &AddTasksEntry{Time: h.tick()}
			for i := range MaxBatch {
				b.Tasks = append(b.Tasks, AddTaskEntry{ID: fmt.Sprint("c", i), Type: "shell", Payload: map[string]string{"script": strings.Repeat("s", 10<<10)}})
			}
			return b
		}(),
		&FailTaskEntry{TaskID: "t", NodeID: "n1", Result: Result{Error: strings.Repeat("e", MaxEntrySize)}, Time: h.tick()},
	} {
		data := encode(t, e)
		err := h.f.Check(e)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "MaxEntrySize") {
			t.Fatalf("Check(%T of %d bytes) = %v", e, len(data), err)
		}
		res := h.refuseRaw(data, ErrInvalid, fmt.Sprintf("%T", e))
		if msg := sameErr(err, res.Err); msg != "" {
			t.Fatal(msg)
		}
	}
	// Apply refuses a long entry before decoding it.
	junk := append([]byte{byte(AddTask), EntryVersion}, bytes.Repeat([]byte{0xc1}, MaxEntrySize)...)
	if res := h.refuseRaw(junk, ErrInvalid, "long junk"); !strings.Contains(res.Err.Error(), "add_task entry is") {
		t.Fatalf("long junk refused with %q", res.Err)
	}
	// Exactly MaxEntrySize bytes are not refused for their size.
	exact := append([]byte{byte(AddTask), EntryVersion}, bytes.Repeat([]byte{0xc1}, MaxEntrySize-2)...)
	if res := h.refuseRaw(exact, ErrInvalid, "junk"); strings.Contains(res.Err.Error(), "MaxEntrySize") {
		t.Fatalf("an entry of exactly MaxEntrySize bytes refused for its size: %v", res.Err)
	}
}

// TestCheckGeneratedLog: before each entry of generated logs (every
// type, mostly plausible transitions, many refusals), Check of its body
// on the current state returns exactly what Apply of the entry returns,
// and changes nothing.
func TestCheckGeneratedLog(t *testing.T) {
	for _, seed := range []uint64{4, 5} {
		f := New()
		compared := 0
		outcomes := map[string]int{}
		for i, l := range genLog(t, seed, 3000) {
			var body any
			if l.Type == raft.LogCommand {
				_, body, _ = DecodeEntry(l.Data)
			}
			if body == nil {
				f.ApplyRaft(l)
				continue
			}
			var before []byte
			if i%50 == 0 {
				before = snapBytes(t, f)
			}
			idx, ch := f.Indexes(), f.WatchCh()
			checkErr := f.Check(body)
			if f.Indexes() != idx || closed(ch) || (before != nil && !bytes.Equal(snapBytes(t, f), before)) {
				t.Fatalf("seed %d entry %d: Check changed the state", seed, l.Index)
			}
			res := f.ApplyRaft(l).(*ApplyResult)
			if msg := sameErr(checkErr, res.Err); msg != "" {
				t.Fatalf("seed %d entry %d (%T): %s", seed, l.Index, body, msg)
			}
			compared++
			switch {
			case res.Err == nil:
				outcomes["accepted"]++
			default:
				outcomes[res.Err.(*Error).Kind.Error()]++
			}
		}
		t.Logf("seed %d: %d entries compared: %v", seed, compared, outcomes)
		if compared < 2500 || len(outcomes) != 4 {
			t.Fatalf("seed %d: too thin: %d compared, outcomes %v", seed, compared, outcomes)
		}
	}
}

// TestCheckConcurrentWithApply runs Check from several goroutines while
// entries are applied (for the race detector).
func TestCheckConcurrentWithApply(t *testing.T) {
	log := genLog(t, 6, 1500)
	f := New()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i += 3 {
				select {
				case <-stop:
					return
				default:
				}
				l := log[i%len(log)]
				if _, body, err := DecodeEntry(l.Data); err == nil && body != nil {
					_ = f.Check(body)
				}
			}
		}()
	}
	for _, l := range log {
		f.ApplyRaft(l)
	}
	close(stop)
	wg.Wait()
	checkInvariants(t, f)
}
