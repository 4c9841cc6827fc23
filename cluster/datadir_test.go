package cluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDataDirRefusals(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddrs(t, 1)[0]
	cfg := testConfig(t, "a", addr, dir)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, cfgs: []Config{cfg}, servers: []*Server{s}}
	c.waitLeader(10 * time.Second)

	t.Run("second server on the same dir", func(t *testing.T) {
		cfg2 := testConfig(t, "a", freeAddrs(t, 1)[0], dir)
		_, err := New(cfg2)
		if err == nil || !strings.Contains(err.Error(), "in use by another rctl server") {
			t.Fatalf("got %v, want a refusal naming the lock", err)
		}
	})
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}

	t.Run("another node id", func(t *testing.T) {
		cfg2 := testConfig(t, "b", addr, dir)
		_, err := New(cfg2)
		if err == nil || !strings.Contains(err.Error(), `belongs to node "a"`) {
			t.Fatalf("got %v, want a refusal naming the owner", err)
		}
	})

	t.Run("corrupt raft log", func(t *testing.T) {
		db := filepath.Join(dir, "raft", "raft.db")
		garbage := bytes.Repeat([]byte("not a bolt file "), 512)
		if err := os.WriteFile(db, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(testConfig(t, "a", addr, dir))
		if err == nil || !strings.Contains(err.Error(), "cannot open the raft log") || !strings.Contains(err.Error(), db) {
			t.Fatalf("got %v, want one clear error naming %s", err, db)
		}
		after, _ := os.ReadFile(db)
		if !bytes.Equal(after, garbage) {
			t.Fatal("a refused start changed the corrupt file")
		}
		// The refusal released the lock: a fixed directory starts again.
		if err := os.Remove(db); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	base := func() Config {
		c := Default()
		c.NodeID, c.DataDir, c.Bind = "a", "/tmp/x", "127.0.0.1:1234"
		c.Insecure = true
		return c
	}
	cases := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"missing node id", func(c *Config) { c.NodeID = "" }, "node-id is required"},
		{"bad node id", func(c *Config) { c.NodeID = "a b" }, "node-id"},
		{"missing data dir", func(c *Config) { c.DataDir = "" }, "data-dir is required"},
		{"bad bind", func(c *Config) { c.Bind = "nope" }, "bind"},
		{"wildcard bind needs advertise", func(c *Config) { c.Bind = "0.0.0.0:1" }, "advertise is required"},
		{"bad timing", func(c *Config) { c.Timing = "fast" }, "timing"},
		{"peers and join", func(c *Config) {
			c.Peers = []Peer{{ID: "a", Address: "127.0.0.1:1234"}}
			c.Join = []string{"127.0.0.1:9"}
		}, "exclusive"},
		{"self missing from peers", func(c *Config) { c.Peers = []Peer{{ID: "b", Address: "127.0.0.1:9"}} }, "not in the list"},
		{"self address mismatch", func(c *Config) { c.Peers = []Peer{{ID: "a", Address: "127.0.0.1:9"}} }, "make them match"},
		{"duplicate peer", func(c *Config) {
			c.Peers = []Peer{{ID: "a", Address: "127.0.0.1:1234"}, {ID: "a", Address: "127.0.0.1:1234"}}
		}, "twice"},
		{"nonvoter without join", func(c *Config) { c.NonVoter = true }, "nonvoter needs join"},
		{"tiny heartbeat interval", func(c *Config) { c.Liveness.MinInterval = time.Millisecond }, "heartbeat-interval"},
		{"neither TLS nor insecure", func(c *Config) { c.Insecure = false }, "--insecure"},
		{"negative connection limit", func(c *Config) { c.ConnLimits = ConnLimits{PerIP: -1, Total: 5} }, "connection limits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mut(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	ok := base()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if ok.Advertise != ok.Bind {
		t.Fatalf("advertise %q not defaulted from bind", ok.Advertise)
	}
}

// Defaults and checks are separate steps: withDefaults fills what is unset
// and fails on nothing, check reports problems and changes nothing, and
// Validate is the one then the other.
func TestConfigDefaultsThenCheck(t *testing.T) {
	var c Config
	c.withDefaults()
	if c.Bind != fmt.Sprintf("0.0.0.0:%d", DefaultPort) || c.Advertise != "" || c.SnapshotThreshold == 0 ||
		c.Liveness != DefaultLiveness() || c.Retention != DefaultRetention() || c.ConnLimits == (ConnLimits{}) || c.Dial == nil {
		t.Fatalf("withDefaults on an empty config: %+v", c)
	}
	c = Config{NodeID: "s1", DataDir: t.TempDir(), Bind: "127.0.0.1:7000", Timing: "lan", Insecure: true}
	c.withDefaults()
	if c.Advertise != c.Bind {
		t.Errorf("advertise %q, want the bind address %q", c.Advertise, c.Bind)
	}
	before := fmt.Sprintf("%+v", c)
	if err := c.check(); err != nil {
		t.Fatalf("a defaulted valid config: %v", err)
	}
	c.Retention.MaxAge, c.Retention.MaxPerStatus = 0, 0
	bad := fmt.Sprintf("%+v", c)
	if err := c.check(); err == nil || !strings.Contains(err.Error(), "retention") {
		t.Errorf("check of a config without retention limits: %v", err)
	}
	if after := fmt.Sprintf("%+v", c); after != bad || before == bad {
		t.Error("check changed the configuration")
	}
	// A wildcard bind gets no advertise address: check says so.
	w := Config{NodeID: "s1", DataDir: t.TempDir(), Timing: "lan", Insecure: true}
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "advertise is required") {
		t.Errorf("wildcard bind without advertise: %v", err)
	}
}
