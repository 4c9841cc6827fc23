//go:build !unix

package cluster

// openFileLimit: no RLIMIT_NOFILE here; assume a common default.
func openFileLimit() int { return 8192 }
