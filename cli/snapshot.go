package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

func newSnapshotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Save, restore and inspect snapshots of the manifest"}
	cmd.AddCommand(newSnapshotSaveCommand(g), newSnapshotRestoreCommand(g), newSnapshotInspectCommand(g))
	return cmd
}

// newSnapshotSaveCommand is `rctl snapshot save FILE`.
func newSnapshotSaveCommand(g *globals) *cobra.Command {
	var stale bool
	save := &cobra.Command{
		Use:   "save FILE",
		Short: "Save the cluster's manifest to FILE (taken on the leader unless --stale)",
		Args:  exactArgs(1, "one file name"),
		RunE:  func(_ *cobra.Command, a []string) error { return snapshotSave(g, a[0], stale) },
	}
	save.Flags().BoolVar(&stale, "stale", false, "let a follower serve the snapshot from its local state")
	return save
}

// snapshotSave saves the cluster's manifest to path: it streams the
// snapshot into path.part, verifies it, then renames it into place.
func snapshotSave(g *globals, path string, stale bool) error {
	ctx, cancel := g.ctx()
	defer cancel()
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	defer os.Remove(tmp)
	bw := bufio.NewWriterSize(f, 1<<20)
	idx, err := rpc.SnapshotSave(ctx, g.credentials(), g.addrs(), stale, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Verify what we wrote before claiming success.
	info, err := inspectFile(tmp)
	if err != nil {
		return fmt.Errorf("snapshot save: the received snapshot does not verify: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if g.json() {
		return g.printJSON(info)
	}
	fmt.Fprintf(g.stdout, "saved %s: index %d, %d tasks, %d nodes, %d servers, %d bytes\n", path, idx, info.Tasks, info.Nodes, info.Servers, info.Size)
	return nil
}

// newSnapshotRestoreCommand is `rctl snapshot restore FILE`.
func newSnapshotRestoreCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster's manifest with the snapshot in FILE (verified before anything changes)",
		Args:  exactArgs(1, "one file name"),
		RunE:  func(_ *cobra.Command, a []string) error { return snapshotRestore(g, a[0]) },
	}
}

// snapshotRestore verifies the snapshot in path, then replaces the
// cluster's manifest with it.
func snapshotRestore(g *globals, path string) error {
	if _, err := inspectFile(path); err != nil {
		return fmt.Errorf("snapshot restore: %s is not a valid rctl snapshot, nothing changed: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	ctx, cancel := g.ctx()
	defer cancel()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	idx, err := rpc.SnapshotRestore(ctx, g.credentials(), g.addrs(), st.Size(), func() (io.Reader, error) {
		if f != nil {
			f.Close()
		}
		f, err = os.Open(path)
		return bufio.NewReaderSize(f, 1<<20), err
	})
	if err != nil {
		return err
	}
	if g.json() {
		return g.printJSON(map[string]any{"restored": path, "index": idx})
	}
	fmt.Fprintf(g.stdout, "restored %s at index %d\n", path, idx)
	return nil
}

// newSnapshotInspectCommand is `rctl snapshot inspect FILE`.
func newSnapshotInspectCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Verify a snapshot file and print what it holds (offline, no server needed)",
		Args:  exactArgs(1, "one file name"),
		RunE:  func(_ *cobra.Command, a []string) error { return snapshotInspect(g, a[0]) },
	}
}

// snapshotInspect verifies the snapshot file at path and prints what it
// holds.
func snapshotInspect(g *globals, path string) error {
	info, err := inspectFile(path)
	if err != nil {
		return fmt.Errorf("snapshot inspect: %s: %w", path, err)
	}
	if g.json() {
		return g.printJSON(info)
	}
	w := g.stdout
	fmt.Fprintf(w, "format version: %d\nindex:          %d\nsize:           %d bytes\nsha256:         %s\ntasks:          %d\n",
		info.Version, info.Index, info.Size, termsafe.Field(info.SHA256), info.Tasks)
	keys := make([]string, 0, len(info.TasksByStatus))
	for k := range info.TasksByStatus {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-12s  %d\n", termsafe.Field(k), info.TasksByStatus[fsm.TaskStatus(k)])
	}
	fmt.Fprintf(w, "nodes:          %d\nservers:        %d\n", info.Nodes, info.Servers)
	return nil
}

func inspectFile(path string) (fsm.SnapshotInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return fsm.SnapshotInfo{}, err
	}
	defer f.Close()
	return fsm.ReadSnapshotInfo(bufio.NewReaderSize(f, 1<<20))
}
