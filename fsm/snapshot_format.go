package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The snapshot file format (see doc.go for the full description):
//
//	"RCTLSNAP" | record(header) | record(task)… | record(node)… |
//	record(server)… | record(token)… | record(retired)… |
//	sha256(everything before)
//
// where record(v) is a 4-byte big-endian length and the msgpack of v.
//
// Version 2 added the ACL tokens: the header's tokens, acl_index and
// acl_bootstrap_index (omitted when zero) and the token records. A state
// without ACL data is still written as version 1, byte for byte what the
// previous code wrote, so servers that do not know tokens read it; one
// with ACL data is written as version 2, which such servers refuse by its
// version instead of misreading it. Readers take both; a version 1 header
// has no ACL fields, which decode as zero.
//
// Version 3 added the record of retired tasks, the same way: the header's
// retired count (omitted when zero) and the retired records, in
// retirement order. A state with an empty record is written as version 1
// or 2 as before; one with retired ids as version 3, which older servers
// refuse by its version rather than forget the record.
const (
	snapshotMagic = "RCTLSNAP"
	// snapshotVersion is the newest format version, the one written when
	// the state remembers retired tasks; snapshotVersionACL is written
	// when it holds ACL data but no retired task, snapshotVersionNoACL
	// when it holds neither.
	snapshotVersion      = 3
	snapshotVersionACL   = 2
	snapshotVersionNoACL = 1
	// maxRecordLen bounds one record. The largest task the limits allow
	// (64 payload values of 64 KiB, plus output and error) is about 4.2 MiB.
	maxRecordLen = 16 << 20
	// snapshotBufSize is the bufio size used on both sides.
	snapshotBufSize = 256 << 10
)

// snapshotHeader is the first record of a snapshot.
type snapshotHeader struct {
	Version      int    `codec:"version"`
	Index        uint64 `codec:"index"` // last applied log index
	TasksIndex   uint64 `codec:"tasks_index"`
	NodesIndex   uint64 `codec:"nodes_index"`
	ServersIndex uint64 `codec:"servers_index"`
	Tasks        int    `codec:"tasks"`
	Nodes        int    `codec:"nodes"`
	Servers      int    `codec:"servers"`
	// Since version 2; omitted when zero, so that a state without ACL
	// data encodes exactly as version 1 did.
	Tokens            int    `codec:"tokens,omitempty"`
	ACLIndex          uint64 `codec:"acl_index,omitempty"`
	ACLBootstrapIndex uint64 `codec:"acl_bootstrap_index,omitempty"`
	// Since version 3; omitted when zero, so that a state without
	// retired tasks encodes exactly as version 1 or 2 did.
	Retired int `codec:"retired,omitempty"`
}

// hasACL reports whether the header announces any ACL data.
func (h *snapshotHeader) hasACL() bool {
	return h.Tokens != 0 || h.ACLIndex != 0 || h.ACLBootstrapIndex != 0
}

// snapshotData is a point-in-time view of the state. Stored objects are
// copy-on-write, so copying the pointers under the read lock is enough;
// encoding happens later, without the lock.
type snapshotData struct {
	hdr     snapshotHeader
	tasks   []*Task // in table order; writeSnapshot sorts its own copy by ID
	nodes   []*Node // sorted by ID
	servers []*Server
	tokens  []*ACLToken    // sorted by AccessorID
	retired []*RetiredTask // oldest first
}

// capture takes a snapshotData. The caller holds the FSM lock.
func (s *state) capture() *snapshotData {
	d := &snapshotData{
		tasks:   s.tasks.all(),
		nodes:   s.sortedNodes(),
		servers: s.sortedServers(),
		tokens:  s.acl.sorted(),
		retired: s.retired.records(),
	}
	d.hdr = snapshotHeader{
		Version:           snapshotVersion,
		Index:             s.idx.Applied,
		TasksIndex:        s.idx.Tasks,
		NodesIndex:        s.idx.Nodes,
		ServersIndex:      s.idx.Servers,
		Tasks:             len(d.tasks),
		Nodes:             len(d.nodes),
		Servers:           len(d.servers),
		Tokens:            len(d.tokens),
		ACLIndex:          s.idx.ACL,
		ACLBootstrapIndex: s.acl.bootstrapIndex,
		Retired:           len(d.retired),
	}
	switch {
	case d.hdr.Retired > 0:
	case d.hdr.hasACL():
		d.hdr.Version = snapshotVersionACL
	default:
		d.hdr.Version = snapshotVersionNoACL
	}
	return d
}

// writeSnapshot encodes d to w, one record at a time through a bufio
// writer: memory use is one record, not the whole snapshot.
func writeSnapshot(w io.Writer, d *snapshotData) error {
	slices.SortFunc(d.tasks, func(a, b *Task) int { return strings.Compare(a.ID, b.ID) })
	bw := bufio.NewWriterSize(w, snapshotBufSize)
	sum := sha256.New()
	rw := &recordWriter{w: io.MultiWriter(bw, sum)}
	rw.enc = codec.NewEncoderBytes(&rw.buf, MsgpackHandle())
	if _, err := io.WriteString(rw.w, snapshotMagic); err != nil {
		return fmt.Errorf("write magic: %w", err)
	}
	if err := rw.record("header", &d.hdr); err != nil {
		return err
	}
	for _, t := range d.tasks {
		if err := rw.record("task", t); err != nil {
			return err
		}
	}
	for _, n := range d.nodes {
		if err := rw.record("node", n); err != nil {
			return err
		}
	}
	for _, sv := range d.servers {
		if err := rw.record("server", sv); err != nil {
			return err
		}
	}
	for _, tk := range d.tokens {
		if err := rw.record("token", tk); err != nil {
			return err
		}
	}
	for _, r := range d.retired {
		if err := rw.record("retired", r); err != nil {
			return err
		}
	}
	if _, err := bw.Write(sum.Sum(nil)); err != nil {
		return fmt.Errorf("write checksum: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flush snapshot: %w", err)
	}
	return nil
}

type recordWriter struct {
	w   io.Writer
	enc *codec.Encoder
	buf []byte
}

func (rw *recordWriter) record(what string, v any) error {
	rw.buf = rw.buf[:0]
	rw.enc.ResetBytes(&rw.buf)
	if err := rw.enc.Encode(v); err != nil {
		return fmt.Errorf("encode %s record: %w", what, err)
	}
	if len(rw.buf) > maxRecordLen {
		return fmt.Errorf("encode %s record: %d bytes exceeds the %d-byte record limit", what, len(rw.buf), maxRecordLen)
	}
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], uint32(len(rw.buf)))
	if _, err := rw.w.Write(lb[:]); err != nil {
		return fmt.Errorf("write %s record: %w", what, err)
	}
	if _, err := rw.w.Write(rw.buf); err != nil {
		return fmt.Errorf("write %s record: %w", what, err)
	}
	if cap(rw.buf) > 1<<20 { // do not keep one huge task's buffer around
		rw.buf = nil
	}
	return nil
}

// snapshotVisitor receives the decoded records of a snapshot in order.
// Each object is freshly allocated and may be kept.
type snapshotVisitor interface {
	header(h *snapshotHeader) error
	task(t *Task) error
	node(n *Node) error
	server(sv *Server) error
	token(t *ACLToken) error
	retired(r *RetiredTask) error
}

// readSnapshot decodes and verifies a snapshot: magic, version, record
// bounds, the counts the header announced, ID order (which also rules out
// duplicates), known statuses, the checksum and the end of the stream. It
// returns the header, the total size and the checksum. The visitor may
// have seen records before an error is found (the checksum is checked
// last), so callers build into a fresh state and discard it on error.
func readSnapshot(r io.Reader, v snapshotVisitor) (hdr snapshotHeader, size int64, sum [sha256.Size]byte, err error) {
	sr := newRecordReader(r)
	if hdr, err = sr.readHeader(); err != nil {
		return hdr, 0, sum, err
	}
	if err := v.header(&hdr); err != nil {
		return hdr, 0, sum, err
	}
	size, sum, err = sr.readBody(&hdr, v)
	return hdr, size, sum, err
}

func newRecordReader(r io.Reader) *recordReader {
	sr := &recordReader{br: bufio.NewReaderSize(r, snapshotBufSize), h: sha256.New()}
	sr.dec = codec.NewDecoderBytes(nil, MsgpackHandle())
	return sr
}

// readHeader reads and checks the magic and the header record.
func (sr *recordReader) readHeader() (hdr snapshotHeader, err error) {
	magic := make([]byte, len(snapshotMagic))
	if err := sr.read("magic", "", magic); err != nil {
		return hdr, err
	}
	if string(magic) != snapshotMagic {
		return hdr, fmt.Errorf("not an rctl snapshot: magic %q, want %q", magic, snapshotMagic)
	}
	if err := sr.record("header", &hdr); err != nil {
		return hdr, err
	}
	if hdr.Version < snapshotVersionNoACL || hdr.Version > snapshotVersion {
		return hdr, fmt.Errorf("snapshot format version %d is not supported (this build reads %d to %d)", hdr.Version, snapshotVersionNoACL, snapshotVersion)
	}
	if hdr.Tasks < 0 || hdr.Nodes < 0 || hdr.Servers < 0 || hdr.Tokens < 0 || hdr.Retired < 0 {
		return hdr, fmt.Errorf("snapshot header announces negative counts (%d tasks, %d nodes, %d servers, %d tokens, %d retired)", hdr.Tasks, hdr.Nodes, hdr.Servers, hdr.Tokens, hdr.Retired)
	}
	if hdr.Version == snapshotVersionNoACL && hdr.hasACL() {
		// Servers that read only version 1 would skip the ACL data.
		return hdr, fmt.Errorf("snapshot format version %d cannot hold ACL data, but the header announces %d tokens", hdr.Version, hdr.Tokens)
	}
	if hdr.Version < snapshotVersion && hdr.Retired != 0 {
		// Servers that read only versions 1 and 2 would skip the record.
		return hdr, fmt.Errorf("snapshot format version %d cannot hold retired tasks, but the header announces %d", hdr.Version, hdr.Retired)
	}
	return hdr, nil
}

// readBody reads and checks the records after the header, the checksum
// and the end of the stream.
func (sr *recordReader) readBody(hdr *snapshotHeader, v snapshotVisitor) (size int64, sum [sha256.Size]byte, err error) {
	prev := ""
	for i := range hdr.Tasks {
		t := new(Task)
		if err := sr.taskRecord(t); err != nil {
			return 0, sum, fmt.Errorf("task %d of %d: %w", i+1, hdr.Tasks, err)
		}
		if err := checkStoredTask(t, prev); err != nil {
			return 0, sum, err
		}
		prev = t.ID
		if err := v.task(t); err != nil {
			return 0, sum, err
		}
	}
	prev = ""
	for i := range hdr.Nodes {
		n := new(Node)
		if err := sr.record("node", n); err != nil {
			return 0, sum, fmt.Errorf("node %d of %d: %w", i+1, hdr.Nodes, err)
		}
		if n.ID == "" || n.ID <= prev {
			return 0, sum, fmt.Errorf("node %s is out of order or duplicated (after %s)", quote(n.ID), quote(prev))
		}
		if !n.Status.Valid() {
			return 0, sum, fmt.Errorf("node %s has unknown status %s", quote(n.ID), quote(string(n.Status)))
		}
		prev = n.ID
		if err := v.node(n); err != nil {
			return 0, sum, err
		}
	}
	prev = ""
	for i := range hdr.Servers {
		sv := new(Server)
		if err := sr.record("server", sv); err != nil {
			return 0, sum, fmt.Errorf("server %d of %d: %w", i+1, hdr.Servers, err)
		}
		if sv.ID == "" || sv.ID <= prev {
			return 0, sum, fmt.Errorf("server %s is out of order or duplicated (after %s)", quote(sv.ID), quote(prev))
		}
		prev = sv.ID
		if err := v.server(sv); err != nil {
			return 0, sum, err
		}
	}
	prev = ""
	hashes := make(map[string]string, min(hdr.Tokens, 1024))
	for i := range hdr.Tokens {
		tk := new(ACLToken)
		if err := sr.record("token", tk); err != nil {
			return 0, sum, fmt.Errorf("token %d of %d: %w", i+1, hdr.Tokens, err)
		}
		if err := checkStoredToken(tk, prev, hashes); err != nil {
			return 0, sum, err
		}
		prev = tk.AccessorID
		if err := v.token(tk); err != nil {
			return 0, sum, err
		}
	}
	retired := make(map[string]struct{}, min(hdr.Retired, 1024))
	for i := range hdr.Retired {
		r := new(RetiredTask)
		if err := sr.record("retired", r); err != nil {
			return 0, sum, fmt.Errorf("retired task %d of %d: %w", i+1, hdr.Retired, err)
		}
		if err := checkStoredRetired(r, retired); err != nil {
			return 0, sum, err
		}
		if err := v.retired(r); err != nil {
			return 0, sum, err
		}
	}

	if sum, err = sr.readTrailer(); err != nil {
		return 0, sum, err
	}
	return sr.n + sha256.Size, sum, nil
}

// readTrailer reads the checksum, checks it against what was hashed so
// far, and checks that the stream ends there.
func (sr *recordReader) readTrailer() (sum [sha256.Size]byte, err error) {
	want := sr.h.Sum(nil)
	if _, err := io.ReadFull(sr.br, sum[:]); err != nil {
		return sum, fmt.Errorf("read checksum: %w", unexpected(err))
	}
	if !bytes.Equal(sum[:], want) {
		return sum, errors.New("checksum mismatch: the snapshot is corrupt")
	}
	if _, err := sr.br.ReadByte(); err != io.EOF {
		if err == nil {
			return sum, errors.New("unexpected data after the checksum")
		}
		return sum, fmt.Errorf("read after checksum: %w", err)
	}
	return sum, nil
}

// skipBody reads the records after the header without decoding them,
// only hashing them: size is the length of the whole snapshot, checksum
// included. It then checks the checksum and the end like readBody.
func (sr *recordReader) skipBody(size int64) (sum [sha256.Size]byte, err error) {
	rest := size - sha256.Size - sr.n
	if rest < 0 {
		return sum, fmt.Errorf("snapshot is shorter than its header and checksum")
	}
	n, err := io.CopyN(sr.h, sr.br, rest)
	sr.n += n
	if err != nil {
		return sum, fmt.Errorf("read records: %w", unexpected(err))
	}
	return sr.readTrailer()
}

// checkStoredTask verifies what the rest of the package relies on.
func checkStoredTask(t *Task, prev string) error {
	if t.ID == "" || t.ID <= prev {
		return fmt.Errorf("task %s is out of order or duplicated (after %s)", quote(t.ID), quote(prev))
	}
	if !t.Status.Valid() {
		return fmt.Errorf("task %s has unknown status %s", quote(t.ID), quote(string(t.Status)))
	}
	if (t.Status == TaskAssigned || t.Status == TaskRunning) && t.NodeID == "" {
		return fmt.Errorf("task %s is %s but names no node", quote(t.ID), t.Status)
	}
	return nil
}

// checkStoredToken verifies what the rest of the package relies on: ids
// in order (so unique), unique and well-formed secret hashes (the lookup
// by hash) and known roles. hashes maps the hashes seen to their ids.
func checkStoredToken(t *ACLToken, prev string, hashes map[string]string) error {
	if t.AccessorID == "" || t.AccessorID <= prev {
		return fmt.Errorf("token %s is out of order or duplicated (after %s)", quote(t.AccessorID), quote(prev))
	}
	if err := checkSecretHash(t.SecretHash); err != nil {
		return fmt.Errorf("token %s: %s", quote(t.AccessorID), err.Msg)
	}
	if !ValidACLRole(t.Role) {
		return fmt.Errorf("token %s has unknown role %s", quote(t.AccessorID), quote(t.Role))
	}
	if other, dup := hashes[t.SecretHash]; dup {
		return fmt.Errorf("tokens %s and %s have the same secret hash", quote(other), quote(t.AccessorID))
	}
	hashes[t.SecretHash] = t.AccessorID
	return nil
}

// checkStoredRetired verifies a retired record: a well-formed id, seen
// once (seen holds the ids so far), a finished status, a positive time
// and index.
func checkStoredRetired(r *RetiredTask, seen map[string]struct{}) error {
	if err := checkID("retired task id", r.ID); err != nil {
		return errors.New(err.Msg)
	}
	if _, dup := seen[r.ID]; dup {
		return fmt.Errorf("retired task %s is recorded twice", quote(r.ID))
	}
	seen[r.ID] = struct{}{}
	if !r.Status.Terminal() {
		return fmt.Errorf("retired task %s has status %s; only finished tasks are retired", quote(r.ID), quote(string(r.Status)))
	}
	if r.RetiredAt <= 0 || r.RetireIndex == 0 {
		return fmt.Errorf("retired task %s has time %d and index %d; both must be positive", quote(r.ID), r.RetiredAt, r.RetireIndex)
	}
	return nil
}

type recordReader struct {
	br  *bufio.Reader
	h   hash.Hash
	n   int64
	buf []byte
	dec *codec.Decoder
	td  *taskDecoder
}

// read fills b from the stream and adds it to the checksum. what and
// suffix name the field for the error (concatenated only on error: this
// runs twice per record).
func (sr *recordReader) read(what, suffix string, b []byte) error {
	if _, err := io.ReadFull(sr.br, b); err != nil {
		return fmt.Errorf("read %s%s: %w", what, suffix, unexpected(err))
	}
	sr.h.Write(b)
	sr.n += int64(len(b))
	return nil
}

// record reads one length-prefixed record and decodes it into v.
func (sr *recordReader) record(what string, v any) error {
	b, err := sr.recordBytes(what)
	if err != nil {
		return err
	}
	return sr.decode(what, b, v)
}

// taskRecord reads one task record into t (zero), through the fast
// decoder when the record has the shape writeSnapshot gives it.
func (sr *recordReader) taskRecord(t *Task) error {
	b, err := sr.recordBytes("task")
	if err != nil {
		return err
	}
	return sr.decodeTask(b, t)
}

// decodeTask decodes the task record b into t (zero).
func (sr *recordReader) decodeTask(b []byte, t *Task) error {
	if sr.td == nil {
		sr.td = newTaskDecoder()
	}
	if err := sr.td.decodeTask(b, t); err == nil {
		return nil
	}
	*t = Task{}
	return sr.decode("task", b, t)
}

func (sr *recordReader) decode(what string, b []byte, v any) error {
	sr.dec.ResetBytes(b)
	if err := decodeRecover(sr.dec, v); err != nil {
		return fmt.Errorf("decode %s record: %w", what, err)
	}
	return nil
}

// recordBytes reads one length-prefixed record. The bytes are valid until
// the next call.
func (sr *recordReader) recordBytes(what string) ([]byte, error) {
	var lb [4]byte
	if err := sr.read(what, " record length", lb[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 || n > maxRecordLen {
		return nil, fmt.Errorf("%s record is %d bytes; want 1 to %d", what, n, maxRecordLen)
	}
	if cap(sr.buf) > 1<<20 { // do not keep one huge record's buffer around
		sr.buf = nil
	}
	if cap(sr.buf) < int(n) {
		sr.buf = make([]byte, n)
	}
	b := sr.buf[:n]
	if err := sr.read(what, " record", b); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeRecover decodes, turning a codec panic into an error.
func decodeRecover(dec *codec.Decoder, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("codec panic: %v", r)
		}
	}()
	return dec.Decode(v)
}

// unexpected turns a clean EOF in the middle of a snapshot into
// io.ErrUnexpectedEOF: the snapshot is truncated.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
