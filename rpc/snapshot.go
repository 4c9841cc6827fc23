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

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
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

// ServeSnapshot serves one snapshot stream (the type byte already read).
func (s *Server) ServeSnapshot(c net.Conn) {
	defer c.Close()
	if !s.track(c, true) {
		return
	}
	defer s.track(c, false)
	br := bufio.NewReader(c)
	var req SnapshotRequest
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := readFrame(br, &req); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	bw := bufio.NewWriterSize(c, 256<<10)
	reply := func(r *SnapshotResponse) error {
		if err := writeFrame(bw, handle, r); err != nil {
			return err
		}
		return bw.Flush()
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
		idx, err := s.restore(br, req.Size)
		_ = reply(&SnapshotResponse{Error: toError(err), Index: idx})
	default:
		_ = reply(&SnapshotResponse{Error: Errorf(CodeInvalidArgument, "unknown snapshot op %q; use save or restore", req.Op)})
	}
}

func (s *Server) restore(r io.Reader, size int64) (uint64, error) {
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
	if _, err := io.CopyN(tmp, r, size); err != nil {
		return 0, Errorf(CodeInvalidArgument, "snapshot upload ended early: %v", err)
	}
	// Verify the whole file before touching the cluster.
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := fsm.ReadSnapshotInfo(bufio.NewReader(tmp)); err != nil {
		return 0, Errorf(CodeInvalidArgument, "not a valid rctl snapshot, nothing changed: %v", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: size}
	if err := s.raft.Restore(meta, tmp, 2*time.Minute); err != nil {
		return 0, fmt.Errorf("restore snapshot: %w", err)
	}
	s.log.Info("snapshot restored by operator", "bytes", size, "applied_index", s.raft.AppliedIndex())
	return s.raft.AppliedIndex(), nil
}
