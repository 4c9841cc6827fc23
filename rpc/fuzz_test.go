package rpc

import (
	"bufio"
	"bytes"
	"reflect"
	"runtime/metrics"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/rctl-dev/rctl/fsm"
)

// heapAllocs reads the bytes allocated so far without stopping the world.
// Small allocations are counted late (per span), large ones at once, which
// is what matters for a bound on what a lying header can cost.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// fuzzAllocBound is the most readFrame may allocate for an input of n bytes:
// the body buffer grows with bytes received (at most about twice them),
// decoding copies strings and raw values out of it, and the codec has a
// fixed overhead. Anything near the announced 16 MiB fails.
func fuzzAllocBound(n int) uint64 { return 1<<20 + 8*uint64(n) }

// normalizeRaw sets every empty codec.Raw field of the struct v points to
// to nil: an absent field decodes to nil, an explicit msgpack nil to an
// empty Raw, and both re-encode as nil.
func normalizeRaw(v any) {
	rv := reflect.ValueOf(v).Elem()
	rawType := reflect.TypeOf(codec.Raw(nil))
	for i := range rv.NumField() {
		f := rv.Field(i)
		if f.Type() == rawType && f.Len() == 0 && f.CanSet() {
			f.Set(reflect.Zero(rawType))
		}
	}
}

func fuzzSeeds(f *testing.F) {
	add := func(h *codec.MsgpackHandle, v any) {
		var buf bytes.Buffer
		if err := writeFrame(&buf, h, v); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	req := func(seq uint64, method string, args any) *Request {
		raw, err := encode(args)
		if err != nil {
			f.Fatal(err)
		}
		return &Request{Seq: seq, Method: method, Args: raw, TimeoutMS: 10_000}
	}
	add(rawHandle, req(1, MethodTaskAdd, &TaskAddArgs{ID: "t-1", Type: "shell", Payload: map[string]string{"cmd": "echo hi"}, Cloud: "aws"}))
	add(rawHandle, req(2, MethodTaskGet, &TaskGetArgs{ID: "t-1", QueryOptions: QueryOptions{Stale: true, MinIndex: 7, MaxWaitMS: 60_000}}))
	add(rawHandle, req(3, MethodNodeRegister, &NodeRegisterArgs{ID: "n-1", Address: "10.0.0.9", Cloud: "gcp", Region: "europe-west1", Capacity: 4, Meta: map[string]string{"zone": "b"}}))
	add(rawHandle, req(4, MethodTaskComplete, &TaskReportArgs{TaskID: "t-1", NodeID: "n-1", Result: fsm.Result{ExitCode: 1, Output: "out\n", Error: "boom"}}))
	add(rawHandle, req(5, MethodNodeHeartbeat, &HeartbeatArgs{NodeID: "n-1", Running: []string{"t-1", "t-2"}}))
	add(rawHandle, &Request{Seq: 6, Method: MethodStatus, Forwarded: true})
	add(handle, &Response{Seq: 1, Error: &Error{Code: CodeNotLeader, Message: "this server is not the leader", LeaderID: "s2", LeaderAddr: "10.0.0.2:50051"}})
	add(handle, &Response{Seq: 2, Error: &Error{Code: CodeNotFound, Message: "task \"t-9\" not found"}})
	add(handle, &Response{Seq: 3, Result: map[string]any{"task": map[string]any{"id": "t-1", "status": "pending"}, "index": 12}})
	// Hostile shapes: a lying header, an oversized one, a truncated one, a
	// frame whose body is not a map.
	f.Add(append(header(MaxFrame), "0123456789"...))
	f.Add(header(MaxFrame + 1))
	f.Add([]byte{0, 0})
	f.Add(append(header(3), 0x92, 0x01, 0x02))
	f.Add(append(header(5), 0xdb, 0x7f, 0xff, 0xff, 0xff))
}

// FuzzReadFrame feeds arbitrary bytes to readFrame: it must never panic,
// never allocate much more than it was given, and whatever decodes must
// survive writeFrame and readFrame unchanged.
func FuzzReadFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, data, rawHandle, func() any { return new(Request) })
		fuzzOne(t, data, rawHandle, func() any { return new(rawResponse) })
	})
}

func fuzzOne(t *testing.T, data []byte, h *codec.MsgpackHandle, fresh func() any) {
	v1 := fresh()
	before := heapAllocs()
	err := readFrame(bufio.NewReader(bytes.NewReader(data)), v1)
	if used := heapAllocs() - before; used > fuzzAllocBound(len(data)) {
		// The counter is process-wide and the fuzzing engine allocates
		// too: only a readFrame that exceeds the bound on every retry
		// (it allocates the same each time) is a failure.
		for range 3 {
			before := heapAllocs()
			_ = readFrame(bufio.NewReader(bytes.NewReader(data)), fresh())
			used = min(used, heapAllocs()-before)
		}
		if used > fuzzAllocBound(len(data)) {
			t.Fatalf("readFrame of %d bytes allocated %d bytes (bound %d)", len(data), used, fuzzAllocBound(len(data)))
		}
	}
	if err != nil {
		return
	}
	var buf bytes.Buffer
	if err := writeFrame(&buf, h, v1); err != nil {
		t.Fatalf("decoded %+v does not re-encode: %v", v1, err)
	}
	v2 := fresh()
	if err := readFrame(bufio.NewReader(&buf), v2); err != nil {
		t.Fatalf("re-encoded %+v does not decode: %v", v1, err)
	}
	normalizeRaw(v1)
	normalizeRaw(v2)
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("round trip changed the value:\n got %#v\nwant %#v", v2, v1)
	}
}
