package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Data directory layout:
//
//	<data-dir>/rctl.lock        flock held while a server runs; holds its pid
//	<data-dir>/node-id          the id the directory belongs to
//	<data-dir>/raft/raft.db     raft-boltdb log and stable store
//	<data-dir>/raft/snapshots/  raft.FileSnapshotStore
const (
	lockFile   = "rctl.lock"
	nodeIDFile = "node-id"
)

// dataDir is an opened, locked data directory.
type dataDir struct {
	path string
	lock *os.File
}

// openDataDir creates (if needed) and locks dir for nodeID. A directory
// locked by another live process, or belonging to another node id, is
// refused with an error that says what to do.
func openDataDir(dir, nodeID string) (*dataDir, error) {
	if err := os.MkdirAll(filepath.Join(dir, "raft", "snapshots"), 0o750); err != nil {
		return nil, fmt.Errorf("data-dir %s: cannot create it: %w", dir, err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data-dir %s: cannot open lock file: %w", dir, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := "unknown"
		if b, rerr := os.ReadFile(lf.Name()); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			pid = strings.TrimSpace(string(b))
		}
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data-dir %s is in use by another rctl server (pid %s); stop it or choose another --data-dir", dir, pid)
		}
		return nil, fmt.Errorf("data-dir %s: cannot lock: %w", dir, err)
	}
	_ = lf.Truncate(0)
	_, _ = lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)

	d := &dataDir{path: dir, lock: lf}
	idPath := filepath.Join(dir, nodeIDFile)
	b, err := os.ReadFile(idPath)
	switch {
	case err == nil:
		if got := strings.TrimSpace(string(b)); got != nodeID {
			d.close()
			return nil, fmt.Errorf("data-dir %s belongs to node %q, not %q; pass --node-id %s or use another --data-dir", dir, got, nodeID, got)
		}
	case errors.Is(err, os.ErrNotExist):
		if err := writeFileSync(idPath, []byte(nodeID+"\n")); err != nil {
			d.close()
			return nil, fmt.Errorf("data-dir %s: %w", dir, err)
		}
	default:
		d.close()
		return nil, fmt.Errorf("data-dir %s: read node-id: %w", dir, err)
	}
	return d, nil
}

func (d *dataDir) raftDB() string      { return filepath.Join(d.path, "raft", "raft.db") }
func (d *dataDir) snapshotDir() string { return filepath.Join(d.path, "raft") }
func (d *dataDir) close()              { d.lock.Close() }

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
