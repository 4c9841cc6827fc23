package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

func freeAddrs(t *testing.T, n int) []string { return testutil.FreeAddrs(t, n) }

// testCluster is n in-process servers on 127.0.0.1 talking real TCP.
type testCluster struct {
	t       *testing.T
	cfgs    []Config
	servers []*Server // nil when stopped
}

func testConfig(t *testing.T, id, addr, dir string) Config {
	cfg := Default()
	cfg.NodeID, cfg.DataDir, cfg.Bind = id, dir, addr
	cfg.Timing = "lan"
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.LogOutput = t.Output()
	cfg.LogLevel = "warn"
	cfg.Dial = testNet.dialer(addr)
	t.Cleanup(func() { testNet.isolate(addr, false) })
	cfg.Insecure = true
	return cfg
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with each server's configuration
// passed through tweak (if not nil) before it starts.
func newTestClusterWith(t *testing.T, n int, tweak func(i int, cfg *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: testClusterConfigs(t, n, tweak)}
	for i := range c.cfgs {
		c.start(i)
	}
	t.Cleanup(c.stopAll)
	return c
}

// testClusterConfigs are the configurations of n servers s1…sN on free
// loopback addresses, bootstrapped together, each passed through tweak.
func testClusterConfigs(t *testing.T, n int, tweak func(i int, cfg *Config)) []Config {
	t.Helper()
	addrs := freeAddrs(t, n)
	var peers []Peer
	for i, a := range addrs {
		peers = append(peers, Peer{ID: fmt.Sprintf("s%d", i+1), Address: a})
	}
	var cfgs []Config
	for i, a := range addrs {
		cfg := testConfig(t, peers[i].ID, a, t.TempDir())
		cfg.Peers = peers
		if tweak != nil {
			tweak(i, &cfg)
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	s, err := New(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].NodeID, err)
	}
	for len(c.servers) <= i {
		c.servers = append(c.servers, nil)
	}
	c.servers[i] = s
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	if s := c.servers[i]; s != nil {
		if err := s.Shutdown(); err != nil {
			c.t.Logf("shutdown %s: %v", c.cfgs[i].NodeID, err)
		}
		c.servers[i] = nil
	}
}

func (c *testCluster) stopAll() {
	for i := range c.servers {
		c.stop(i)
	}
}

func (c *testCluster) addrs() []string {
	var out []string
	for i, s := range c.servers {
		if s != nil {
			out = append(out, c.cfgs[i].Bind)
		}
	}
	return out
}

// waitLeader waits until every running server agrees on one leader that
// has established leadership, and returns its index.
func (c *testCluster) waitLeader(within time.Duration) int {
	c.t.Helper()
	var idx int
	succeedsWithin(c.t, within, func() error {
		idx = -1
		for i, s := range c.servers {
			if s != nil && s.LeaderReady() {
				idx = i
			}
		}
		if idx < 0 {
			return fmt.Errorf("no ready leader")
		}
		want := raft.ServerID(c.cfgs[idx].NodeID)
		for i, s := range c.servers {
			if s == nil {
				continue
			}
			if _, id := s.raft.LeaderWithID(); id != want {
				return fmt.Errorf("%s follows %q, want %q", c.cfgs[i].NodeID, id, want)
			}
		}
		return nil
	})
	return idx
}

func (c *testCluster) client(i int) *rpc.Client {
	cl := rpc.NewClient([]string{c.cfgs[i].Bind})
	c.t.Cleanup(cl.Close)
	return cl
}

func succeedsWithin(t *testing.T, within time.Duration, fn func() error) {
	t.Helper()
	testutil.Eventually(t, within, fn)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func isCode(err error, codes ...rpc.Code) bool {
	got := rpc.CodeOf(err)
	for _, c := range codes {
		if got == c {
			return true
		}
	}
	return false
}

func codes(cs ...rpc.Code) string {
	var s []string
	for _, c := range cs {
		s = append(s, string(c))
	}
	return strings.Join(s, "|")
}
