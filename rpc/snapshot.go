package rpc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
)

// MaxSnapshotSize bounds a snapshot uploaded for restore.
const MaxSnapshotSize = 8 << 30

// SnapshotRequest opens a snapshot stream connection (type byte 0x03).
type SnapshotRequest struct {
	// Op is "save" or "restore".
	Op string `codec:"op"`
	// Stale lets a follower serve a save from its own state; otherwise a
	// follower answers not_leader with the leader's address.
	Stale bool `codec:"stale"`
	// Size is the number of snapshot bytes that follow a restore request.
	Size int64 `codec:"size"`
	// Token is the caller's ACL token secret: snapshots need management.
	Token string `codec:"token"`
}

// SnapshotResponse answers a SnapshotRequest. For a successful save the
// snapshot bytes follow the frame until the server closes the connection.
type SnapshotResponse struct {
	Error *Error `codec:"error"`
	// Index is the applied index the save was taken at, or the index the
	// restore was installed at.
	Index uint64 `codec:"index"`
}

// SnapshotInspectArgs asks a server to check an uploaded snapshot. Unused
// by the CLI, which inspects files locally; kept for remote tooling.
type SnapshotInspectArgs struct {
	Data []byte `codec:"data"`
}

// snapshotRequestTimeout is how long a snapshot stream's opening request
// may take to arrive; the stream itself then runs without a deadline (the
// client bounds it).
const snapshotRequestTimeout = 10 * time.Second

func (s *Server) snapshotInspect(ctx context.Context, req *Request) (any, error) {
	var a SnapshotInspectArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	info, err := fsm.ReadSnapshotInfo(bytes.NewReader(a.Data))
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "not a valid rctl snapshot: %v", err)
	}
	return &info, nil
}

// maxSnapshotStreams bounds snapshot streams served at once; more are
// refused with unavailable. A restore spools to a temporary file, removed
// when the stream ends however it ends.
const maxSnapshotStreams = 2

// ServeSnapshot serves one snapshot stream (the type byte already read);
// id is the peer's verified identity (zero on an --insecure server).
// Snapshots need a management token (or a server certificate).
func (s *Server) ServeSnapshot(c net.Conn, id pki.Identity) {
	defer c.Close()
	if !s.track(c, true) {
		return
	}
	defer s.track(c, false)
	br := bufio.NewReader(c)
	var req SnapshotRequest
	_ = c.SetReadDeadline(time.Now().Add(snapshotRequestTimeout))
	if err := readFrame(br, &req); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	bw := bufio.NewWriterSize(c, 256<<10)
	reply := func(r *SnapshotResponse) error {
		_ = c.SetWriteDeadline(time.Now().Add(FrameTimeout))
		defer c.SetWriteDeadline(time.Time{})
		if err := writeFrame(bw, handle, r); err != nil {
			return err
		}
		return bw.Flush()
	}
	who := s.resolveCaller(id, &Request{Token: req.Token})
	if err := s.authorize(who, "snapshot "+req.Op, access{token: levelManagement}); err != nil {
		_ = reply(&SnapshotResponse{Error: toError(err)})
		return
	}
	select {
	case s.snapStreams <- struct{}{}:
		defer func() { <-s.snapStreams }()
	default:
		_ = reply(&SnapshotResponse{Error: Errorf(CodeUnavailable, "server %s is already serving %d snapshot streams; retry later", s.b.Self().ID, maxSnapshotStreams)})
		return
	}
	switch req.Op {
	case "save":
		if !req.Stale && !s.isLeader() {
			addr, id := s.leader()
			_ = reply(&SnapshotResponse{Error: &Error{Code: CodeNotLeader, LeaderAddr: addr, LeaderID: id,
				Message: fmt.Sprintf("server %s is not the leader; save from the leader (%s) or use --stale", s.b.Self().ID, orNone(id))}})
			return
		}
		if !req.Stale {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
			err := s.readBarrier(ctx)
			cancel()
			if err != nil {
				_ = reply(&SnapshotResponse{Error: toError(err)})
				return
			}
		}
		if err := reply(&SnapshotResponse{Index: s.fsm.Indexes().Applied}); err != nil {
			return
		}
		if err := s.fsm.WriteSnapshot(bw); err != nil {
			s.log.Warn("snapshot save stream failed", "err", err)
			return
		}
		_ = bw.Flush()
	case "restore":
		idx, err := s.restore(context.Background(), br, req.Size)
		_ = reply(&SnapshotResponse{Error: toError(err), Index: idx})
	default:
		_ = reply(&SnapshotResponse{Error: Errorf(CodeInvalidArgument, "unknown snapshot op %q; use save or restore", req.Op)})
	}
}

func (s *Server) restore(ctx context.Context, r io.Reader, size int64) (uint64, error) {
	if size <= 0 || size > MaxSnapshotSize {
		return 0, Errorf(CodeInvalidArgument, "snapshot size %d out of range (1..%d bytes)", size, int64(MaxSnapshotSize))
	}
	if !s.isLeader() {
		addr, id := s.leader()
		return 0, &Error{Code: CodeNotLeader, LeaderAddr: addr, LeaderID: id,
			Message: fmt.Sprintf("restore must go to the leader (%s)", orNone(id))}
	}
	tmp, err := os.CreateTemp("", "rctl-restore-*.snap")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// Verify the upload as it arrives, before touching the cluster: it is
	// spooled to tmp (raft's Restore reads it from there) and, in the same
	// pass, checked and decoded into a new state exactly as the FSM's
	// Restore would, checksum included. The leader's Restore then installs
	// that state instead of decoding the snapshot again.
	t0 := time.Now()
	up := &upload{r: io.LimitReader(r, size), w: tmp}
	p, err := fsm.PrepareRestore(up)
	if err != nil {
		// Take the rest of the upload, so that the client (still sending)
		// reads this answer rather than a broken connection.
		up.w = nil
		_, _ = io.Copy(io.Discard, up)
		switch {
		case up.werr != nil:
			return 0, fmt.Errorf("spool snapshot: %w", up.werr)
		case up.n < size:
			msg := "connection closed"
			if up.rerr != nil {
				msg = up.rerr.Error()
			}
			return 0, Errorf(CodeInvalidArgument, "snapshot upload ended early after %d of %d bytes (%s); nothing changed", up.n, size, msg)
		}
		return 0, Errorf(CodeInvalidArgument, "not a valid rctl snapshot, nothing changed: %v", err)
	}
	t1 := time.Now()
	s.log.Info("snapshot restore: uploaded and verified", "bytes", size, "tasks", p.Tasks(), "took", t1.Sub(t0))
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	disarm := s.fsm.Expect(p) // the state machine takes the verified snapshot as is
	idx, err := s.b.Restore(ctx, tmp, size)
	disarm()
	if err != nil {
		return 0, err
	}
	s.log.Info("snapshot restored by operator", "bytes", size, "applied_index", idx,
		"verify", t1.Sub(t0), "raft_restore", time.Since(t1))
	return idx, nil
}

// upload is the restore stream as the leader reads it: it copies what it
// reads to w and remembers how much arrived and how reading or writing
// failed, to tell a broken upload from an invalid snapshot.
type upload struct {
	r    io.Reader
	w    io.Writer
	n    int64
	rerr error // a read error other than the end of the upload
	werr error
}

func (u *upload) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.n += int64(n)
	if err != nil && err != io.EOF && u.rerr == nil {
		u.rerr = err
	}
	if n > 0 && u.werr == nil && u.w != nil {
		if _, werr := u.w.Write(p[:n]); werr != nil {
			u.werr = werr
			return n, werr
		}
	}
	return n, err
}
