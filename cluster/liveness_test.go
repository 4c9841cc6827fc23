package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

func nodes(statuses ...fsm.NodeStatus) []*fsm.Node {
	var out []*fsm.Node
	for i, st := range statuses {
		out = append(out, &fsm.Node{ID: fmt.Sprintf("n%d", i+1), Status: st, Capacity: 4})
	}
	return out
}

func TestLivenessTransitions(t *testing.T) {
	clk := newFakeClock()
	lv := newLiveness(DefaultLiveness(), clk) // interval 1s, TTL 4s
	ns := nodes(fsm.NodeHealthy)
	lv.Heartbeat("n1", false)

	steps := []struct {
		advance time.Duration
		want    fsm.NodeStatus // "" = no change proposed
	}{
		{1500 * time.Millisecond, ""},              // 1.5s: within 2 intervals
		{600 * time.Millisecond, fsm.NodeDegraded}, // 2.1s: degraded
		{1800 * time.Millisecond, ""},              // 3.9s: still degraded, within TTL
		{200 * time.Millisecond, fsm.NodeUnreachable},
		{time.Hour, ""}, // stays unreachable, no repeated commits
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		ch := lv.Judge(ns)
		var got fsm.NodeStatus
		if len(ch) == 1 {
			got = ch[0].To
			ns[0] = &fsm.Node{ID: "n1", Status: got, Capacity: 4}
		} else if len(ch) > 1 {
			t.Fatalf("step %d: %d changes", i, len(ch))
		}
		if got != st.want {
			t.Fatalf("step %d (+%s): change %q, want %q", i, st.advance, got, st.want)
		}
	}
	// A heartbeat brings it back.
	lv.Heartbeat("n1", false)
	if ch := lv.Judge(ns); len(ch) != 1 || ch[0].To != fsm.NodeHealthy {
		t.Fatalf("after a heartbeat: %+v, want healthy", ch)
	}
}

func TestNewLeaderGivesGraceOfOneTTL(t *testing.T) {
	clk := newFakeClock()
	lv := newLiveness(DefaultLiveness(), clk) // a new leader: never heard from anyone
	ns := nodes(fsm.NodeHealthy, fsm.NodeHealthy, fsm.NodeDegraded)
	clk.Advance(1900 * time.Millisecond)
	if ch := lv.Judge(ns); len(ch) != 0 {
		t.Fatalf("judged nodes %s after the new leader started: %+v", 1900*time.Millisecond, ch)
	}
	// The agents find the new leader in time; n2 does not.
	lv.Heartbeat("n1", false)
	lv.Heartbeat("n3", false)
	clk.Advance(2100 * time.Millisecond) // 4.0s since start: exactly the TTL
	ch := lv.Judge(ns)
	for _, c := range ch {
		if c.To == fsm.NodeUnreachable {
			t.Fatalf("%s judged unreachable at exactly one TTL: %+v", c.NodeID, ch)
		}
	}
	lv.Heartbeat("n1", false) // n1 and n3 keep heartbeating
	lv.Heartbeat("n3", false)
	clk.Advance(10 * time.Millisecond)
	ch = lv.Judge(ns)
	found := false
	for _, c := range ch {
		if c.NodeID == "n2" && c.To == fsm.NodeUnreachable {
			found = true
		}
		if c.NodeID == "n1" {
			t.Fatalf("n1 heartbeated and must not change: %+v", c)
		}
	}
	if !found {
		t.Fatalf("silent n2 not unreachable after one TTL: %+v", ch)
	}
}

func TestIntervalScalesWithFleet(t *testing.T) {
	lv := newLiveness(LivenessConfig{MinInterval: time.Second, MaxRate: 1000, TTLFactor: 3, TTLSlack: time.Second}, newFakeClock())
	cases := []struct {
		nodes int
		want  time.Duration
	}{
		{1, time.Second}, {1000, time.Second}, {2000, 2 * time.Second}, {10000, 10 * time.Second}, {1500, 1500 * time.Millisecond},
	}
	for _, tc := range cases {
		iv := lv.Interval(tc.nodes)
		if iv != tc.want {
			t.Errorf("%d nodes: interval %s, want %s", tc.nodes, iv, tc.want)
		}
		if rate := float64(tc.nodes) / iv.Seconds(); rate > 1000.0001 {
			t.Errorf("%d nodes: %.0f heartbeats/s exceeds the bound", tc.nodes, rate)
		}
		if ttl := lv.TTL(tc.nodes); ttl != 3*iv+time.Second {
			t.Errorf("%d nodes: ttl %s", tc.nodes, ttl)
		}
	}
}

func TestPlanSpreadsAndHonoursConstraints(t *testing.T) {
	ns := []*fsm.Node{
		{ID: "a1", Cloud: "aws", Capacity: 2, Status: fsm.NodeHealthy},
		{ID: "a2", Cloud: "aws", Capacity: 2, Status: fsm.NodeHealthy},
		{ID: "g1", Cloud: "gcp", Capacity: 1, Status: fsm.NodeHealthy},
		{ID: "bad", Cloud: "gcp", Capacity: 8, Status: fsm.NodeDegraded},
	}
	var pending []*fsm.Task
	for i := 0; i < 4; i++ {
		pending = append(pending, &fsm.Task{ID: fmt.Sprintf("t%d", i)})
	}
	pending = append(pending, &fsm.Task{ID: "gcp-only", Cloud: "gcp"}, &fsm.Task{ID: "azure-only", Cloud: "azure"})
	held := map[string]int{"a1": 1}
	got := plan(pending, ns, func(id string) int { return held[id] },
		func(n *fsm.Node) bool { return n.Status == fsm.NodeHealthy }, 100)
	per := map[string]int{}
	where := map[string]string{}
	for _, a := range got {
		per[a.NodeID]++
		where[a.TaskID] = a.NodeID
	}
	// Free slots: a1 1, a2 2, g1 1 = 4 in all; the gcp task needs g1.
	if len(got) != 4 {
		t.Fatalf("assigned %d tasks (%+v), want 4 (all free slots)", len(got), got)
	}
	if per["bad"] != 0 {
		t.Fatal("assigned to a degraded node")
	}
	if per["a1"] > 1 || per["a2"] > 2 || per["g1"] > 1 {
		t.Fatalf("capacity exceeded: %v", per)
	}
	if _, ok := where["azure-only"]; ok {
		t.Fatal("placed a task whose cloud has no node")
	}
	if where["t0"] != "a2" {
		t.Fatalf("first task went to %s, want a2 (most free slots)", where["t0"])
	}
	if w, ok := where["gcp-only"]; ok && w != "g1" {
		t.Fatalf("gcp task on %s", w)
	}
	if limited := plan(pending, ns, func(string) int { return 0 }, func(*fsm.Node) bool { return true }, 2); len(limited) != 2 {
		t.Fatalf("limit ignored: %d", len(limited))
	}
}

func TestAssignableOnlyAfterAHeartbeatWithoutDrain(t *testing.T) {
	lv := newLiveness(DefaultLiveness(), realClock{})
	if lv.Assignable("n1") {
		t.Fatal("a node this leader never heard from is assignable: a drain asked of the previous leader would be ignored")
	}
	lv.Heartbeat("n1", true)
	if lv.Assignable("n1") {
		t.Fatal("a draining node is assignable")
	}
	lv.Heartbeat("n1", false)
	if !lv.Assignable("n1") {
		t.Fatal("a heartbeating node that stopped draining is not assignable")
	}
	lv.Forget("n1")
	if lv.Assignable("n1") {
		t.Fatal("a forgotten node is assignable")
	}
}

// A fleet following an election spreads its first heartbeats to the new
// leader over n / (4 × MaxRate), at most a quarter interval: a handful of
// agents pay nothing, 10,000 at the default 10,000/s spread over 250 ms.
func TestFollowSpreadScalesWithFleet(t *testing.T) {
	lv := newLiveness(DefaultLiveness(), newFakeClock())
	cases := []struct {
		nodes int
		want  time.Duration
	}{
		{2, 0}, {100, 3 * time.Millisecond}, {4000, 100 * time.Millisecond}, {10000, 250 * time.Millisecond},
		{20000, 500 * time.Millisecond}, {100000, 2500 * time.Millisecond},
	}
	for _, tc := range cases {
		if got := lv.FollowSpread(tc.nodes); got != tc.want {
			t.Errorf("%d nodes: spread %s, want %s", tc.nodes, got, tc.want)
		}
		if got, iv := lv.FollowSpread(tc.nodes), lv.Interval(tc.nodes); got > iv/4 {
			t.Errorf("%d nodes: spread %s longer than a quarter interval %s", tc.nodes, got, iv)
		}
		// The burst on the new leader stays within 4 × the steady rate.
		if s := lv.FollowSpread(tc.nodes); s > 0 {
			if rate := float64(tc.nodes) / s.Seconds(); rate > 4*DefaultLiveness().MaxRate*1.01 {
				t.Errorf("%d nodes over %s: %.0f heartbeats/s", tc.nodes, s, rate)
			}
		}
	}
}
