package rpc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// snapshotMaxDuration bounds a snapshot save or restore whose context has
// no deadline: long enough for a large manifest over a slow link.
const snapshotMaxDuration = 30 * time.Minute

// SnapshotSave streams a snapshot of the manifest from the cluster into w.
// It tries each address in turn and follows a not_leader answer to the
// leader. It returns the applied index the snapshot was taken at.
func SnapshotSave(ctx context.Context, cred Credentials, addrs []string, stale bool, w io.Writer) (uint64, error) {
	var idx uint64
	err := snapshotCall(ctx, cred, addrs, &SnapshotRequest{Op: "save", Stale: stale, Token: cred.Token}, nil, func(br *bufio.Reader, r *SnapshotResponse) error {
		idx = r.Index
		if _, err := io.Copy(w, br); err != nil {
			return fmt.Errorf("snapshot stream broke: %w", err)
		}
		return nil
	})
	return idx, err
}

// SnapshotRestore uploads size bytes from r to the leader, which verifies
// them and installs them as the cluster's manifest. r is read only once, so
// the caller passes a re-openable source via open.
func SnapshotRestore(ctx context.Context, cred Credentials, addrs []string, size int64, open func() (io.Reader, error)) (uint64, error) {
	var idx uint64
	err := snapshotCall(ctx, cred, addrs, &SnapshotRequest{Op: "restore", Size: size, Token: cred.Token}, open, func(_ *bufio.Reader, r *SnapshotResponse) error {
		idx = r.Index
		return nil
	})
	return idx, err
}

func snapshotCall(ctx context.Context, cred Credentials, addrs []string, req *SnapshotRequest, body func() (io.Reader, error),
	onOK func(*bufio.Reader, *SnapshotResponse) error) error {
	if len(addrs) == 0 {
		return Errorf(CodeInvalidArgument, "no server address given; set --addr or RCTL_ADDR")
	}
	queue := append([]string(nil), addrs...)
	var lastErr error
	for hops := 0; len(queue) > 0 && hops < len(addrs)+3; hops++ {
		addr := queue[0]
		queue = queue[1:]
		resp, br, conn, err := snapshotOnce(ctx, cred.Dialer(), addr, req, body)
		if err == nil && resp.Error == nil {
			err = onOK(br, resp)
			conn.Close()
			return err
		}
		if conn != nil {
			conn.Close()
		}
		if err == nil {
			err = resp.Error
			if resp.Error.Code == CodeNotLeader && resp.Error.LeaderAddr != "" {
				queue = append([]string{resp.Error.LeaderAddr}, queue...)
			} else if resp.Error.Code != CodeUnavailable {
				return resp.Error
			}
		}
		lastErr = err
	}
	return lastErr
}

func snapshotOnce(ctx context.Context, dial DialFunc, addr string, req *SnapshotRequest, body func() (io.Reader, error)) (*SnapshotResponse, *bufio.Reader, net.Conn, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, nil, nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot connect to %s: %v", addr, unwrapNetErr(err))}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(snapshotMaxDuration))
	}
	bw := bufio.NewWriterSize(c, 256<<10)
	if err := bw.WriteByte(ConnSnapshot); err != nil {
		return nil, nil, c, err
	}
	if err := writeFrame(bw, handle, req); err != nil {
		return nil, nil, c, err
	}
	if body != nil {
		r, err := body()
		if err != nil {
			return nil, nil, c, err
		}
		if _, err := io.CopyN(bw, r, req.Size); err != nil {
			return nil, nil, c, fmt.Errorf("upload snapshot: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, c, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("send to %s: %v", addr, unwrapNetErr(err))}
	}
	br := bufio.NewReaderSize(c, 256<<10)
	var resp SnapshotResponse
	if err := readFrame(br, &resp); err != nil {
		return nil, nil, c, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("no answer from %s: %v", addr, unwrapNetErr(err))}
	}
	return &resp, br, c, nil
}
