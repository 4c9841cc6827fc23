//go:build linux

package cli

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// syncMethod names what datasync calls, as check-disk reports it.
const syncMethod = "fdatasync"

// datasync flushes f's data (and the size, when it grew) to the disk, as
// bbolt (raft-boltdb) does after each batch of log entries: fdatasync(2).
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// freeBytes is how many bytes unprivileged users may still write on the
// filesystem holding dir; ok is false when it cannot be told.
func freeBytes(dir string) (free uint64, ok bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}
