// Package testutil holds helpers shared by rctl's tests.
package testutil

import (
	"net"
	"testing"
	"time"
)

// Eventually retries fn with backoff until it returns nil or within has
// passed, then fails the test with fn's last error. Tests poll with it
// instead of sleeping and asserting.
func Eventually(t testing.TB, within time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := 5 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", within, err)
		}
		time.Sleep(wait)
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// FreeAddrs reserves n loopback addresses by listening on port 0 and
// closing again. Another process may take one in between; tests accept
// that small risk.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve a port: %v", err)
		}
		out[i] = ln.Addr().String()
		ln.Close()
	}
	return out
}
