package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// Operator.RTT from any server measures every ordered pair of servers,
// through the servers; a stopped server shows as an error and a warning,
// not as a failed call.
func TestOperatorRTTMeasuresEveryPair(t *testing.T) {
	c := newTestClusterWith(t, 3, func(i int, cfg *Config) { cfg.Cloud, cfg.Region = "local", "dev" })
	l := c.waitLeader(10 * time.Second)
	f := (l + 1) % 3
	ids := []string{c.cfgs[0].NodeID, c.cfgs[1].NodeID, c.cfgs[2].NodeID}
	// Each server records its labels through the leader after it starts;
	// the pairs carry the labels the measuring server has applied.
	succeedsWithin(t, 10*time.Second, func() error {
		for i, s := range c.servers {
			for _, id := range ids {
				if s.FSM().Server(id) == nil {
					return fmt.Errorf("%s has not applied %s's labels yet", c.cfgs[i].NodeID, id)
				}
			}
		}
		return nil
	})

	var r rpc.RTTReply
	if err := c.client(f).Call(ctxT(t, 20*time.Second), rpc.MethodOperatorRTT, &rpc.RTTArgs{Samples: 3}, &r); err != nil {
		t.Fatal(err)
	}
	if r.From != ids[f] || r.Timing != "lan" || r.MaxRTTMS != 20 {
		t.Errorf("reply from %q timing %q max %v, want %s, lan, 20", r.From, r.Timing, r.MaxRTTMS, ids[f])
	}
	var got []string
	for _, p := range r.Pairs {
		got = append(got, p.From+">"+p.To)
		if p.Error != "" || p.Samples != 3 {
			t.Errorf("%s→%s: %d samples, error %q", p.From, p.To, p.Samples, p.Error)
		}
		if !(0 < p.MinMS && p.MinMS <= p.MedianMS && p.MedianMS <= p.MaxMS && p.MaxMS < 5000) {
			t.Errorf("%s→%s: min %v median %v max %v ms", p.From, p.To, p.MinMS, p.MedianMS, p.MaxMS)
		}
		if p.FromCloud != "local" || p.ToCloud != "local" {
			t.Errorf("%s→%s: clouds %q→%q, want the labels", p.From, p.To, p.FromCloud, p.ToCloud)
		}
	}
	want := fmt.Sprintf("%[1]s>%[2]s %[1]s>%[3]s %[2]s>%[1]s %[2]s>%[3]s %[3]s>%[1]s %[3]s>%[2]s", ids[0], ids[1], ids[2])
	if strings.Join(got, " ") != want {
		t.Fatalf("pairs %v, want %s (sorted)", got, want)
	}

	var local rpc.RTTReply
	if err := c.client(f).Call(ctxT(t, 20*time.Second), rpc.MethodOperatorRTT, &rpc.RTTArgs{Local: true}, &local); err != nil {
		t.Fatal(err)
	}
	if len(local.Pairs) != 2 || local.Pairs[0].From != ids[f] || local.Pairs[1].From != ids[f] || local.Pairs[0].Samples != 5 {
		t.Errorf("local: %+v, want 2 pairs from %s with the default 5 samples", local.Pairs, ids[f])
	}

	for _, n := range []int{-1, 21} {
		err := c.client(f).Call(ctxT(t, 5*time.Second), rpc.MethodOperatorRTT, &rpc.RTTArgs{Samples: n}, nil)
		if !isCode(err, rpc.CodeInvalidArgument) {
			t.Errorf("samples %d: %v, want %s", n, err, rpc.CodeInvalidArgument)
		}
	}

	// A server that is down: its pairs from the others fail, it cannot be
	// asked for its own, and the call still answers.
	down := (l + 2) % 3
	c.stop(down)
	var r2 rpc.RTTReply
	if err := c.client(f).Call(ctxT(t, 40*time.Second), rpc.MethodOperatorRTT, &rpc.RTTArgs{Samples: 2}, &r2); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, p := range r2.Pairs {
		if p.From == ids[down] {
			t.Errorf("pair %s→%s measured by a stopped server", p.From, p.To)
		}
		if p.To == ids[down] {
			failed++
			if p.Error == "" || p.Samples != 0 {
				t.Errorf("%s→%s (stopped): %d samples, error %q", p.From, p.To, p.Samples, p.Error)
			}
		}
	}
	if failed != 2 || len(r2.Pairs) != 4 {
		t.Errorf("pairs with the stopped server: %+v", r2.Pairs)
	}
	// (A loaded machine may add round-trip warnings: loopback under the
	// race detector can take longer than lan's 20 ms.)
	asked := 0
	for _, w := range r2.Warnings {
		switch {
		case strings.Contains(w, "could not ask "+ids[down]):
			asked++
		case !strings.HasPrefix(w, "round trip "):
			t.Errorf("unexpected warning %q", w)
		}
	}
	if asked != 1 {
		t.Errorf("warnings %q, want one saying %s could not be asked", r2.Warnings, ids[down])
	}
}

// Status.Members carries the leader's round trip to each member.
func TestMembersShowRoundTrips(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	var r rpc.MembersReply
	if err := c.client(l).Call(ctxT(t, 10*time.Second), rpc.MethodMembers, &rpc.MembersArgs{}, &r); err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Members {
		switch {
		case m.Leader && m.RTTMS != 0:
			t.Errorf("leader %s: rtt_ms %v, want 0", m.ID, m.RTTMS)
		case !m.Leader && !(m.RTTMS > 0 && m.RTTMS < 5000):
			t.Errorf("member %s: rtt_ms %v, want a measured round trip", m.ID, m.RTTMS)
		}
	}
	var stale rpc.MembersReply // a follower's own view: no probes
	if err := c.client((l+1)%3).Call(ctxT(t, 10*time.Second), rpc.MethodMembers, &rpc.MembersArgs{Stale: true}, &stale); err != nil {
		t.Fatal(err)
	}
	for _, m := range stale.Members {
		if m.RTTMS != -1 {
			t.Errorf("stale: member %s rtt_ms %v, want -1 (not probed)", m.ID, m.RTTMS)
		}
	}
}
