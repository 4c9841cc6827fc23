//go:build linux

package fault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNetworkDelaysAndPartitions builds a small two-cloud network and
// checks, with real TCP, the emulated round trips, a partition and its
// heal, and that nothing is left behind.
func TestNetworkDelaysAndPartitions(t *testing.T) {
	SkipUnlessCapable(t)
	var prefix string
	t.Run("network", func(t *testing.T) {
		n := NewNetwork(t, DefaultNet(),
			NodeSpec{"a1", "aws"}, NodeSpec{"a2", "aws"}, NodeSpec{"g1", "gcp"}, NodeSpec{"g2", "gcp"})
		prefix = n.Prefix
		if got := n.Node("a1").IP.String(); got != "10.77.1.11" {
			t.Fatalf("a1 has %s, want 10.77.1.11", got)
		}
		if got := n.Node("g2").IP.String(); got != "10.77.2.12" {
			t.Fatalf("g2 has %s, want 10.77.2.12", got)
		}
		cases := []struct {
			from, to string
			want     time.Duration
		}{
			{"a1", "a2", 25 * time.Millisecond},
			{"g1", "g2", 25 * time.Millisecond},
			{"a1", "g1", 243 * time.Millisecond},
			{"g2", "a2", 243 * time.Millisecond},
			{ObserverName, "g1", 0},
		}
		for _, tc := range cases {
			r, err := MeasureRTT(n.Node(tc.from), n.Node(tc.to), 5)
			if err != nil {
				t.Fatalf("measure %s→%s: %v", tc.from, tc.to, err)
			}
			t.Logf("emulated RTT %s (want ≈ %s)", r, tc.want)
			if r.Median < tc.want-tc.want/10-time.Millisecond || r.Median > tc.want+tc.want/10+5*time.Millisecond {
				t.Errorf("%s→%s: echo RTT %s, want %s ± 10%%", tc.from, tc.to, r.Median, tc.want)
			}
		}

		n.Switch.Partition([]string{"a1", "a2"}, []string{"g1", "g2"})
		if _, err := MeasureRTT(n.Node("a1"), n.Node("g1"), 1); err == nil {
			t.Fatal("a1 reached g1 across a cloud split")
		}
		if _, err := MeasureRTT(n.Node("g1"), n.Node("g2"), 1); err != nil {
			t.Fatalf("g1 cannot reach g2 on its own side: %v", err)
		}
		if _, err := MeasureRTT(n.Node(ObserverName), n.Node("a1"), 1); err != nil {
			t.Fatalf("the observer cannot reach a1 during a split: %v", err)
		}
		n.Switch.Heal()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		ln, err := n.Node("g1").Listen("10.77.2.11:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := n.Node("a1").Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatalf("a1 cannot reach g1 after heal: %v", err)
		}
		c.Close()
	})
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", filepath.Join(netnsDir, e.Name()))
		}
	}
}
