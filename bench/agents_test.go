package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// simFleet is a load generator: n simulated node agents speaking the real
// protocol (Node.Register, then Node.Heartbeat at the interval the leader
// hands out), multiplexed over a few pipelined connections to the leader.
type simFleet struct {
	leader string
	conns  []*rpc.Conn
	stop   chan struct{}
	wg     sync.WaitGroup
	dead   sync.Map // node id → true once it stops heartbeating
	sent   atomic.Int64
	errs   atomic.Int64
	late   atomic.Int64 // heartbeats answered later than the interval
}

func startFleet(b *testing.B, leader string, n, conns int) *simFleet {
	f := &simFleet{leader: leader, stop: make(chan struct{})}
	for i := 0; i < conns; i++ {
		c, err := rpc.Dial(context.Background(), leader)
		if err != nil {
			b.Fatal(err)
		}
		f.conns = append(f.conns, c)
	}
	// Register in parallel batches.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var regErr atomic.Value
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := f.conns[i%conns].Call(ctx, rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: simID(i), Capacity: 1, Cloud: "sim"}, nil)
			if err != nil {
				regErr.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := regErr.Load().(error); err != nil {
		b.Fatalf("register: %v", err)
	}
	for i := 0; i < n; i++ {
		f.wg.Add(1)
		go f.agent(i, f.conns[i%conns])
	}
	return f
}

func simID(i int) string { return "sim-" + strconv.Itoa(i) }

func (f *simFleet) agent(i int, c *rpc.Conn) {
	defer f.wg.Done()
	id := simID(i)
	interval := time.Second
	// Spread the first heartbeats over one interval, as real agents do.
	select {
	case <-time.After(time.Duration(i%1000) * time.Millisecond):
	case <-f.stop:
		return
	}
	for {
		if _, dead := f.dead.Load(id); dead {
			return
		}
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var r rpc.HeartbeatReply
		err := c.Call(ctx, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: id}, &r)
		cancel()
		f.sent.Add(1)
		if err != nil {
			f.errs.Add(1)
		} else if r.HeartbeatIntervalMS > 0 {
			interval = time.Duration(r.HeartbeatIntervalMS) * time.Millisecond
		}
		took := time.Since(t0)
		if took > interval {
			f.late.Add(1)
		}
		select {
		case <-time.After(interval - min(took, interval)):
		case <-f.stop:
			return
		}
	}
}

func (f *simFleet) close() {
	close(f.stop)
	f.wg.Wait()
	for _, c := range f.conns {
		c.Close()
	}
}

// procStat returns a process's CPU seconds (user+system) and RSS in MiB.
func procStat(pid int) (cpu float64, rssMiB float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	rss, _ := strconv.ParseFloat(fields[21], 64)
	return (ut + st) / 100, rss * float64(os.Getpagesize()) / (1 << 20)
}

// BenchmarkAgentScale: how many simulated agents one leader keeps at a 1 s
// heartbeat interval with deaths still detected within the TTL (4 s).
// Fleet sizes come from RCTL_BENCH_FLEETS (default 1000,2000,5000,10000).
func BenchmarkAgentScale(b *testing.B) {
	sizes := []int{1000, 2000, 5000, 10000}
	if env := os.Getenv("RCTL_BENCH_FLEETS"); env != "" {
		sizes = nil
		for _, s := range strings.Split(env, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				b.Fatalf("RCTL_BENCH_FLEETS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			c := startCluster(b, 3, "lan")
			cl := rpc.NewClient(c.addrs(nil))
			defer cl.Close()
			l := c.leader(cl, 10*time.Second)
			fleet := startFleet(b, l.addr, n, 32)
			defer fleet.close()

			time.Sleep(6 * time.Second) // steady state: several intervals, past the new-leader grace
			cpu0, _ := procStat(l.cmd.Process.Pid)
			sent0, late0 := fleet.sent.Load(), fleet.late.Load()
			t0 := time.Now()

			// Kill 10 agents and time their detection.
			const victims = 10
			killed := time.Now()
			for i := 0; i < victims; i++ {
				fleet.dead.Store(simID(i*(n/victims)), true)
			}
			var detect []time.Duration
			got := map[string]bool{}
			for time.Since(killed) < 15*time.Second && len(got) < victims {
				for i := 0; i < victims; i++ {
					id := simID(i * (n / victims))
					if got[id] {
						continue
					}
					var r rpc.NodeGetReply
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					err := cl.Call(ctx, rpc.MethodNodeGet, &rpc.NodeGetArgs{ID: id, QueryOptions: rpc.QueryOptions{Stale: true}}, &r)
					cancel()
					if err == nil && r.Node.Status == fsm.NodeUnreachable {
						got[id] = true
						detect = append(detect, time.Since(killed))
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			elapsed := time.Since(t0)
			cpu1, rss := procStat(l.cmd.Process.Pid)
			sent, late := fleet.sent.Load()-sent0, fleet.late.Load()-late0

			// False positives: live agents that are not healthy.
			var list rpc.NodeListReply
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := cl.Call(ctx, rpc.MethodNodeList, &rpc.NodeListArgs{QueryOptions: rpc.QueryOptions{Stale: true}}, &list); err != nil {
				b.Fatal(err)
			}
			cancel()
			falsePos := 0
			for _, nd := range list.Nodes {
				if _, dead := fleet.dead.Load(nd.ID); !dead && nd.Status != fsm.NodeHealthy {
					falsePos++
				}
			}
			detected := fmt.Sprintf("%d/%d", len(detect), victims)
			worst := time.Duration(0)
			for _, d := range detect {
				worst = max(worst, d)
			}
			interval := max(time.Second, time.Duration(float64(n)/10000*float64(time.Second)))
			ttl := 3*interval + time.Second // the server's defaults (docs/operations.md)
			fmt.Printf("agents=%5d: interval %s, %.0f heartbeats/s, late %d, errors %d, deaths detected %s, worst detection %s (TTL %s), false unhealthy %d, leader CPU %.0f%%, RSS %.0f MiB\n",
				n, interval, float64(sent)/elapsed.Seconds(), late, fleet.errs.Load(), detected, worst.Round(time.Millisecond), ttl,
				falsePos, 100*(cpu1-cpu0)/elapsed.Seconds(), rss)
			b.ReportMetric(worst.Seconds(), "s-worst-detection")
		})
	}
}
