//go:build linux

package fault_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fault"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

// TestOperatorRTT: `rctl operator rtt`, run from a client namespace,
// reports the emulated network's round trips (25 ms within a cloud, 243
// ms across) within 10 % (its least sample), and agrees within 10 % and
// 1 ms with an independent TCP echo between the same namespaces. `rctl members` shows the same
// figures from the leader. On the wan profile nothing is out of range.
func TestOperatorRTT(t *testing.T) {
	t.Parallel()
	c, mon := startCluster(t, 3, 2, false)
	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Independent figures: a TCP echo between the servers' namespaces.
	class := func(a, b string) string {
		if a[:3] == b[:3] {
			return "intra-" + a[:3]
		}
		return "cross"
	}
	independent := map[string][2]float64{} // least, median
	for _, p := range [][2]string{{"aws1", "aws2"}, {"gcp1", "gcp2"}, {"aws1", "gcp1"}} {
		r, err := fault.MeasureRTT(c.Net.Node(p[0]), c.Net.Node(p[1]), 20)
		if err != nil {
			t.Fatal(err)
		}
		independent[class(p[0], p[1])] = [2]float64{msf(r.Min), msf(r.Median)}
		t.Logf("independent: %s", r)
	}
	nominal := map[string]float64{"intra-aws": 25, "intra-gcp": 25, "cross": 243}

	out, err := c.CLI("c-aws", c.Addrs(), "operator", "rtt", "--samples", "20", "-o", "json").Output()
	if err != nil {
		t.Fatalf("rctl operator rtt: %v\n%s", err, exitStderr(err))
	}
	var r rpc.RTTReply
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("rctl operator rtt -o json: %v\n%s", err, out)
	}
	if len(r.Pairs) != 20 {
		t.Fatalf("%d pairs, want 5×4:\n%s", len(r.Pairs), out)
	}
	var lines []string
	for _, p := range r.Pairs {
		k := class(p.From, p.To)
		lines = append(lines, fmt.Sprintf("%s→%s median %.1f ms, min %.1f, max %.1f (echo: min %.1f, median %.1f)",
			p.From, p.To, p.MedianMS, p.MinMS, p.MaxMS, independent[k][0], independent[k][1]))
		if p.Error != "" || p.Samples != 20 {
			t.Errorf("%s→%s: %d samples, error %q", p.From, p.To, p.Samples, p.Error)
			continue
		}
		// The least round trip is the network's own (the medians of both
		// measurements carry the emulator's scheduling on a loaded machine).
		if off := math.Abs(p.MinMS-nominal[k]) / nominal[k]; off > 0.10 {
			t.Errorf("%s→%s: least %.1f ms, the network's %s RTT is %.0f ms (%.0f%% off)", p.From, p.To, p.MinMS, k, nominal[k], off*100)
		}
		// rctl's figure also holds the serving of a Status.Get (under a
		// millisecond on a quiet machine): 10 % and 1 ms.
		if diff := math.Abs(p.MinMS - independent[k][0]); diff > 0.10*independent[k][0]+1 {
			t.Errorf("%s→%s: least %.1f ms, a TCP echo's least %.1f ms (%.1f ms off)", p.From, p.To, p.MinMS, independent[k][0], diff)
		}

	}
	t.Logf("rctl operator rtt (from %s, timing %s):\n  %s", r.From, r.Timing, strings.Join(lines, "\n  "))
	if r.Timing != "wan" || len(r.Warnings) != 0 {
		t.Errorf("timing %q, warnings %q: want wan and none", r.Timing, r.Warnings)
	}

	// The table, as an operator reads it (docs/cli.md shows one).
	table, err := c.CLI("c-aws", c.Addrs(), "operator", "rtt", "--samples", "5").Output()
	if err != nil || !strings.Contains(string(table), "MEDIAN") {
		t.Fatalf("rctl operator rtt: %v\n%s%s", err, table, exitStderr(err))
	}
	t.Logf("rctl operator rtt:\n%s", table)

	// rctl members: the leader's round trip to each member, the least of
	// its last probes (one per 2 s while someone asks).
	testutil.Eventually(t, 20*time.Second, func() error {
		out, err := c.CLI("c-aws", c.Addrs(), "members", "-o", "json").Output()
		if err != nil {
			return fmt.Errorf("rctl members: %v\n%s", err, exitStderr(err))
		}
		var m rpc.MembersReply
		if err := json.Unmarshal(out, &m); err != nil {
			return err
		}
		var leader string
		for _, mb := range m.Members {
			if mb.Leader {
				leader = mb.ID
			}
		}
		for _, mb := range m.Members {
			if mb.Leader {
				continue
			}
			k := class(leader, mb.ID)
			if off := math.Abs(mb.RTTMS-nominal[k]) / nominal[k]; off > 0.10 {
				return fmt.Errorf("members: rtt %s→%s %.1f ms, the network's %s RTT is %.0f ms", leader, mb.ID, mb.RTTMS, k, nominal[k])
			}
		}
		return nil
	})
}

// TestRTTWarnsAboutTheTimingProfile: servers 25 ms apart on the lan
// profile (made for round trips under 20 ms) get a warning from `rctl
// operator rtt` and from `rctl members`.
func TestRTTWarnsAboutTheTimingProfile(t *testing.T) {
	t.Parallel()
	fault.SkipUnlessCapable(t)
	c := fault.StartCluster(t, fault.ClusterConfig{Bin: rctlBin, Servers: fault.Shape(3, 0),
		Clients: fault.ClientsPerCloud(), Timing: "lan", Insecure: os.Getenv("RCTL_FAULT_INSECURE") == "1"})
	mon := c.StartMonitor(25 * time.Millisecond)
	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	out, err := c.CLI("c-aws", c.Addrs(), "operator", "rtt", "--samples", "3").Output()
	if err != nil {
		t.Fatalf("rctl operator rtt: %v\n%s", err, exitStderr(err))
	}
	t.Logf("rctl operator rtt:\n%s", out)
	if n := strings.Count(string(out), "WARNING: round trip"); n != 6 {
		t.Errorf("%d round-trip warnings, want one per pair (6)", n)
	}
	if !strings.Contains(string(out), "--timing wan") {
		t.Error("the warning does not say to use --timing wan")
	}
	var members string
	testutil.Eventually(t, 10*time.Second, func() error {
		o, err := c.CLI("c-aws", c.Addrs(), "members").Output()
		members = string(o)
		if err != nil {
			return fmt.Errorf("rctl members: %v", err)
		}
		if strings.Count(members, "WARNING: round trip") != 2 {
			return fmt.Errorf("members shows no warning for the two followers:\n%s", members)
		}
		return nil
	})
	t.Logf("rctl members:\n%s", members)
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// exitStderr is what a failed command printed on stderr.
func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
