package rpc

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: servers, pools and clients
// are closed, forwarded calls and blocking queries end (issue 15).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
