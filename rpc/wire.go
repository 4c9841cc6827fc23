package rpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/rctl-dev/rctl/fsm"
)

// Connection-type bytes: the first byte a client writes on a new TCP
// connection to a server's single port selects the protocol.
const (
	ConnRaft     byte = 0x01 // hashicorp/raft's NetworkTransport
	ConnRPC      byte = 0x02 // msgpack request/response frames (this package)
	ConnSnapshot byte = 0x03 // one snapshot save or restore stream
)

// MaxFrame bounds one frame's body. A peer announcing more is cut off.
const MaxFrame = 16 << 20

// Request is the envelope of a call. Args is kept raw and decoded by the
// endpoint into its own argument struct.
type Request struct {
	Seq    uint64    `codec:"seq"`
	Method string    `codec:"method"`
	Args   codec.Raw `codec:"args"`
	// TimeoutMS bounds how long the server works on the call (0: the
	// server's default, see docs/rpc.md).
	TimeoutMS int64 `codec:"timeout_ms"`
	// Forwarded is set by a server that forwards a call to the leader, so
	// the leader never forwards it again.
	Forwarded bool `codec:"forwarded"`
	// Token is the caller's ACL token secret (servers with TLS; see
	// docs/security.md). Forwarded calls carry it unchanged.
	Token string `codec:"token"`
}

// Response is the envelope of a reply. Exactly one of Error and Result is
// meaningful.
type Response struct {
	Seq    uint64 `codec:"seq"`
	Error  *Error `codec:"error"`
	Result any    `codec:"result"`
}

// rawResponse is how a client decodes a response: the result stays raw
// until the caller's reply type is known.
type rawResponse struct {
	Seq    uint64    `codec:"seq"`
	Error  *Error    `codec:"error"`
	Result codec.Raw `codec:"result"`
}

var (
	// handle is used for everything on the wire: the current msgpack spec
	// (str and bin distinct), maps decoded as map[string]any.
	handle = fsm.MsgpackHandle()
	// rawHandle may additionally encode codec.Raw values verbatim.
	rawHandle = func() *codec.MsgpackHandle { h := fsm.MsgpackHandle(); h.Raw = true; return h }()
)

// writeFrame writes v as one frame: a 4-byte big-endian length, then the
// msgpack body.
func writeFrame(w io.Writer, h *codec.MsgpackHandle, v any) error {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	if err := codec.NewEncoder(&buf, h).Encode(v); err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	b := buf.Bytes()
	n := len(b) - 4
	if n > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte limit", n, MaxFrame)
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame and decodes it into v.
func readFrame(r *bufio.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds the %d-byte limit", n, MaxFrame)
	}
	body, err := readBody(r, int(n))
	if err != nil {
		return fmt.Errorf("read frame body: %w", err)
	}
	if err := decode(body, v); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}

// frameChunk is the most readBody allocates for a frame before any of its
// body has arrived.
const frameChunk = 64 << 10

// readBody reads the n-byte body of a frame. The announced length is not
// trusted: the buffer starts at min(n, frameChunk) and doubles only as bytes
// actually arrive, so a peer that announces 16 MiB and stalls holds at most
// frameChunk of memory, and a body costs at most about twice its size in
// allocations. Frames of up to frameChunk bytes take one allocation, as
// before. Errors are those of io.ReadFull over the whole body: io.EOF when
// no body byte came, io.ErrUnexpectedEOF when some did.
func readBody(r io.Reader, n int) ([]byte, error) {
	body := make([]byte, min(n, frameChunk))
	got := 0
	for {
		m, err := io.ReadFull(r, body[got:])
		got += m
		if err != nil {
			if err == io.EOF && got > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if got == n {
			return body, nil
		}
		grown := make([]byte, min(n, 2*len(body)))
		copy(grown, body)
		body = grown
	}
}

// decode decodes msgpack bytes into v; it never panics.
func decode(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed msgpack: %v", r)
		}
	}()
	return codec.NewDecoderBytes(b, handle).Decode(v)
}

// encode encodes v as msgpack.
func encode(v any) ([]byte, error) {
	var b []byte
	err := codec.NewEncoderBytes(&b, handle).Encode(v)
	return b, err
}
