//go:build linux

package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// Manifest is one server's copy of the manifest, as a verified snapshot.
type Manifest struct {
	Server string
	Info   fsm.SnapshotInfo
	Data   []byte
}

// Manifests takes a stale snapshot (the server's local state) of every
// running, unpaused server, over the observer's link.
func (c *Cluster) Manifests(ctx context.Context) ([]Manifest, error) {
	var out []Manifest
	var errs []error
	for _, sv := range c.Servers {
		if !sv.Running() || sv.Paused() {
			continue
		}
		var buf bytes.Buffer
		err := c.Net.Observer().Do(func() error {
			cred := c.opsCredentials()
			cred.Dial = nil // Do already runs in the observer's namespace
			_, err := rpc.SnapshotSave(ctx, cred, []string{sv.Addr}, true, &buf)
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("snapshot of %s: %w", sv.Name, err))
			continue
		}
		info, err := fsm.ReadSnapshotInfo(bytes.NewReader(buf.Bytes()))
		if err != nil {
			errs = append(errs, fmt.Errorf("snapshot of %s: %w", sv.Name, err))
			continue
		}
		out = append(out, Manifest{Server: sv.Name, Info: info, Data: buf.Bytes()})
	}
	return out, errors.Join(errs...)
}

// WaitConverged waits until every running server holds a byte-identical
// manifest (same snapshot checksum, hence same applied index and state)
// at an applied index of at least minIndex, and returns it. Stop writing
// first: it compares snapshots, which move with every commit. Pass the
// index of a write acknowledged since the servers last started: a server
// that just restarted holds an empty state until a leader's commit index
// reaches it, and empty states are identical too.
func (c *Cluster) WaitConverged(ctx context.Context, minIndex uint64) (Manifest, error) {
	var last string
	for {
		ms, err := c.Manifests(ctx)
		if err == nil && len(ms) > 0 {
			same := ms[0].Info.Index >= minIndex
			for _, m := range ms[1:] {
				if m.Info.SHA256 != ms[0].Info.SHA256 {
					same = false
				}
			}
			if same {
				return ms[0], nil
			}
		}
		last = describeManifests(ms, err)
		select {
		case <-ctx.Done():
			return Manifest{}, fmt.Errorf("manifests did not converge: %s", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func describeManifests(ms []Manifest, err error) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s: index %d, %d tasks, sha256 %.12s", m.Server, m.Info.Index, m.Info.Tasks, m.Info.SHA256))
	}
	if err != nil {
		parts = append(parts, err.Error())
	}
	return strings.Join(parts, "; ")
}

// Tasks lists the tasks of one server's local state (stale read over the
// observer's link).
func (c *Cluster) Tasks(ctx context.Context, sv *Server) (map[string]*fsm.Task, error) {
	var reply rpc.TaskListReply
	if err := c.ObserverCall(ctx, sv, rpc.MethodTaskList, &rpc.TaskListArgs{Limit: rpc.MaxTaskListLimit, QueryOptions: rpc.QueryOptions{Stale: true}}, &reply); err != nil {
		return nil, err
	}
	if reply.NextCursor != "" {
		return nil, fmt.Errorf("%s holds more than %d tasks: the checker reads them in one call", sv.Name, rpc.MaxTaskListLimit)
	}
	out := make(map[string]*fsm.Task, len(reply.Tasks))
	for _, t := range reply.Tasks {
		out[t.ID] = t
	}
	return out, nil
}

// CheckAcknowledged verifies that no acknowledged write of h is lost on
// any running server: every acknowledged add exists, every acknowledged
// cancel left its task cancelled.
func (c *Cluster) CheckAcknowledged(ctx context.Context, h *History) error {
	added, cancelled := h.Acknowledged()
	var problems []string
	for _, sv := range c.Servers {
		if !sv.Running() || sv.Paused() {
			continue
		}
		tasks, err := c.Tasks(ctx, sv)
		if err != nil {
			return fmt.Errorf("list tasks on %s: %w", sv.Name, err)
		}
		for id := range added {
			if tasks[id] == nil {
				problems = append(problems, fmt.Sprintf("%s lost acknowledged add of %s", sv.Name, id))
			}
		}
		for id := range cancelled {
			if t := tasks[id]; t == nil || t.Status != fsm.TaskCancelled {
				problems = append(problems, fmt.Sprintf("%s lost acknowledged cancel of %s", sv.Name, id))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… %d more", len(problems)-20))
		}
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
