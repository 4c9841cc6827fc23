package fault_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fault"
	"github.com/rctl-dev/rctl/rpc"
)

// TestBlackholedFirstAddress (issue 11 item 8): the real CLI, run from the
// AWS client namespace with --addr naming a server that silently drops
// every packet first, answers within about one dial stagger (300 ms) plus
// a round trip to a live server, not after a dial timeout per dead
// address. Two cases, 5 `rctl task add` calls each: an AWS follower cut
// off, listed first; and a cloud split, with a GCP server listed first.
// Before the client dialled addresses concurrently, these took 2.3 s and
// 3.0 s. The median must stay under one dial timeout (rpc.DialTimeout),
// which every call paid before.
func TestBlackholedFirstAddress(t *testing.T) {
	t.Parallel()
	c, mon := startClusterWith(t, clusterOpts{aws: 3, gcp: 2})
	nem := fault.NewNemesis(c, mon, 1)
	leader, err := nem.Leader(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, first *fault.Server, rest []*fault.Server) []time.Duration {
		addrs := append([]string{first.Addr}, c.Addrs(rest...)...)
		var took []time.Duration
		for i := range 5 {
			cmd := c.CLI("c-aws", addrs, "task", "add", "--type", "sleep", "--id", fmt.Sprintf("bh-%s-%d", name, i))
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			d := time.Since(t0)
			if err != nil {
				t.Fatalf("%s: rctl task add (--addr %s first): %v\n%s", name, first.Name, err, out)
			}
			took = append(took, d)
		}
		t.Logf("%s: --addr %s (cut off) first: rctl task add took %s", name, first.Name, durations(took))
		if med := percentile(took, 50); med >= rpc.DialTimeout {
			t.Errorf("%s: median CLI call %s, want under one dial timeout (%s)", name, ms(med), rpc.DialTimeout)
		}
		return took
	}

	cut := fault.InCloud(nem.Followers(leader), "aws")[0]
	nem.Isolate(cut)
	run("follower-cut-off", cut, fault.Without(c.Servers, cut))
	nem.Heal()

	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	nem.CloudSplit()
	gcp := fault.InCloud(c.Servers, "gcp")[0]
	run("cloud-split", gcp, fault.InCloud(c.Servers, "aws"))
	nem.Heal()
	if _, err := mon.WaitStable(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = ms(d)
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return fmt.Sprintf("%s (median %s)", strings.Join(s, ", "), ms(sorted[len(sorted)/2]))
}
