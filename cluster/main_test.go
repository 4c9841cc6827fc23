package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: servers shut down their raft,
// transports, warm connections, leader duties and RPC pools (issue 15).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
