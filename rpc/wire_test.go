package rpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func smallRequestFrame(tb testing.TB) []byte {
	tb.Helper()
	args, err := encode(map[string]any{"id": "task-1", "type": "shell", "payload": map[string]string{"cmd": "echo hi"}})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeFrame(&buf, rawHandle, &Request{Seq: 7, Method: MethodTaskAdd, Args: args, TimeoutMS: 5000}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// header returns a frame header announcing n body bytes.
func header(n uint32) []byte {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], n)
	return h[:]
}

func TestFrameRoundTripSizes(t *testing.T) {
	// Sizes around the first chunk and its doublings, and one of several MiB.
	for _, size := range []int{0, 1, 100, 1000, frameChunk - 10, frameChunk, frameChunk + 1, 3*frameChunk + 7, 1 << 20, 5<<20 + 3} {
		want := &Response{Seq: uint64(size) + 1, Result: strings.Repeat("x", size)}
		var buf bytes.Buffer
		if err := writeFrame(&buf, handle, want); err != nil {
			t.Fatalf("size %d: write: %v", size, err)
		}
		// Two frames back to back, the second read through a reader that
		// returns one byte at a time, so every chunk boundary is crossed
		// with short reads.
		frame := buf.Bytes()
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(frame),
			"bytewise": iotest.OneByteReader(bytes.NewReader(frame)),
		} {
			if name == "bytewise" && size > 1<<20 {
				continue // slow under -race, and nothing new to learn
			}
			var got rawResponse
			if err := readFrame(bufio.NewReader(r), &got); err != nil {
				t.Fatalf("size %d %s: read: %v", size, name, err)
			}
			var s string
			if err := decode(got.Result, &s); err != nil {
				t.Fatalf("size %d %s: result: %v", size, name, err)
			}
			if got.Seq != want.Seq || got.Error != nil || s != want.Result {
				t.Fatalf("size %d %s: got seq %d err %v result of %d bytes", size, name, got.Seq, got.Error, len(s))
			}
		}
	}
}

func TestFrameRoundTripRequestsAndErrors(t *testing.T) {
	var buf bytes.Buffer
	args, _ := encode(&TaskGetArgs{ID: "t1"})
	req := &Request{Seq: 1, Method: MethodTaskGet, Args: args, TimeoutMS: 250, Forwarded: true}
	resp := &Response{Seq: 2, Error: &Error{Code: CodeNotLeader, Message: "not the leader", LeaderID: "s2", LeaderAddr: "10.0.0.2:50051"}}
	if err := writeFrame(&buf, rawHandle, req); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(&buf, handle, resp); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(&buf)
	var gotReq Request
	if err := readFrame(br, &gotReq); err != nil {
		t.Fatal(err)
	}
	if gotReq.Seq != 1 || gotReq.Method != MethodTaskGet || !bytes.Equal(gotReq.Args, args) || gotReq.TimeoutMS != 250 || !gotReq.Forwarded {
		t.Fatalf("request: got %+v", gotReq)
	}
	var gotResp rawResponse
	if err := readFrame(br, &gotResp); err != nil {
		t.Fatal(err)
	}
	if gotResp.Seq != 2 || gotResp.Error == nil || *gotResp.Error != *resp.Error {
		t.Fatalf("response: got %+v", gotResp)
	}
	if err := readFrame(br, &gotResp); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: got %v, want EOF", err)
	}
}

// stopReader serves its data, then fails the test if read again.
type stopReader struct {
	t    *testing.T
	data []byte
}

func (s *stopReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		s.t.Error("readFrame read past the header of an oversized frame")
		return 0, io.EOF
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestFrameOverMaxRefusedWithoutReadingBody(t *testing.T) {
	for _, n := range []uint32{MaxFrame + 1, 1<<32 - 1} {
		err := readFrame(bufio.NewReader(&stopReader{t: t, data: header(n)}), new(Request))
		if err == nil || !strings.Contains(err.Error(), "exceeds the") {
			t.Fatalf("announced %d: got %v, want a limit error", n, err)
		}
	}
	// MaxFrame itself is allowed: reading goes on (and here hits EOF).
	err := readFrame(bufio.NewReader(bytes.NewReader(header(MaxFrame))), new(Request))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("announced MaxFrame then EOF: got %v, want EOF", err)
	}
}

// totalAlloc is the bytes the process allocated so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

func TestFrameLyingHeaderAllocatesLittle(t *testing.T) {
	in := append(header(MaxFrame), []byte("0123456789")...)
	// The smallest of a few runs, so an allocation by another goroutine
	// cannot fail the test.
	best := uint64(1 << 62)
	for range 5 {
		br := bufio.NewReader(bytes.NewReader(in))
		var req Request
		before := totalAlloc()
		err := readFrame(br, &req)
		used := totalAlloc() - before
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "read frame body") {
			t.Fatalf("got %v, want read frame body: unexpected EOF", err)
		}
		best = min(best, used)
	}
	if best >= 1<<20 {
		t.Fatalf("a 16 MiB header with 10 body bytes allocated %d bytes; want < 1 MiB", best)
	}
	t.Logf("allocated %d bytes", best)
}

// stallReader sends its data, then blocks until released, like a peer
// that announced a big frame and went quiet.
type stallReader struct {
	data    []byte
	stalled chan struct{}
	release chan struct{}
}

func (s *stallReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		close(s.stalled)
		<-s.release
		return 0, io.EOF
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestFrameStalledPeerHoldsLittle(t *testing.T) {
	sr := &stallReader{data: append(header(MaxFrame-1), make([]byte, 1000)...), stalled: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	runtime.GC()
	before := totalAlloc()
	go func() { done <- readFrame(bufio.NewReader(sr), new(Request)) }()
	<-sr.stalled
	used := totalAlloc() - before
	close(sr.release)
	if err := <-done; err == nil {
		t.Fatal("want an error after the stalled peer hung up")
	}
	if used >= 1<<20 {
		t.Fatalf("while stalled %d bytes were allocated; want < 1 MiB", used)
	}
}

func TestFrameTruncatedHeader(t *testing.T) {
	for _, in := range [][]byte{nil, {0}, {0, 0, 1}} {
		err := readFrame(bufio.NewReader(bytes.NewReader(in)), new(Request))
		if err == nil {
			t.Fatalf("%x: no error", in)
		}
		if len(in) == 0 && !errors.Is(err, io.EOF) {
			t.Fatalf("empty input: got %v, want EOF", err)
		}
		if len(in) > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%x: got %v, want unexpected EOF", in, err)
		}
	}
}

func TestFrameMalformedBody(t *testing.T) {
	bodies := [][]byte{
		{},                                     // empty body
		{0xc1},                                 // the one never-used msgpack byte
		{0x81, 0xa3, 's', 'e'},                 // map cut short
		{0xdf, 0xff, 0xff, 0xff, 0xff},         // map32 announcing 4G entries
		{0xdb, 0x7f, 0xff, 0xff, 0xff},         // str32 announcing 2 GiB
		{0x81, 0xa3, 's', 'e', 'q', 0xa1, 'x'}, // seq as a string
		{0x92, 0x01, 0x02},                     // an array, not a map
	}
	for _, b := range bodies {
		frame := append(header(uint32(len(b))), b...)
		for _, v := range []any{new(Request), new(rawResponse)} {
			err := readFrame(bufio.NewReader(bytes.NewReader(frame)), v)
			if err == nil {
				t.Fatalf("%x into %T: no error", b, v)
			}
			if !strings.HasPrefix(err.Error(), "decode frame") {
				t.Fatalf("%x into %T: got %v, want a decode error", b, v, err)
			}
		}
	}
}

func BenchmarkReadFrameSmall(b *testing.B) {
	frame := smallRequestFrame(b)
	br := bufio.NewReader(nil)
	rd := bytes.NewReader(frame)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(frame)
		br.Reset(rd)
		var req Request
		if err := readFrame(br, &req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrame1MiB(b *testing.B) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, handle, &Response{Seq: 1, Result: strings.Repeat("x", 1<<20)}); err != nil {
		b.Fatal(err)
	}
	frame := buf.Bytes()
	br := bufio.NewReader(nil)
	rd := bytes.NewReader(frame)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(frame)
		br.Reset(rd)
		var resp rawResponse
		if err := readFrame(br, &resp); err != nil {
			b.Fatal(err)
		}
	}
}
