//go:build !linux

package cli

import "os"

// syncMethod names what datasync calls, as check-disk reports it.
const syncMethod = "fsync"

// datasync flushes f to the disk. Outside Linux it is fsync(2) (on macOS
// Go's File.Sync is F_FULLFSYNC), what bbolt uses there too.
func datasync(f *os.File) error { return f.Sync() }

// freeBytes cannot tell the free space outside Linux: ok is false.
func freeBytes(string) (uint64, bool) { return 0, false }
