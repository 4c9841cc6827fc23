package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

// startClusterMetrics is startCluster (3 servers, --insecure) whose
// servers also serve --metrics-addr when metrics is set; it returns the
// metrics addresses (nil without).
func startClusterMetrics(b testing.TB, n int, timing string, metrics bool) (*cluster, []string) {
	addrs := testutil.FreeAddrs(b, n)
	var maddrs []string
	if metrics {
		maddrs = testutil.FreeAddrs(b, n)
	}
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("s%d=%s", i+1, a))
	}
	c := &cluster{b: b}
	for i, a := range addrs {
		s := &server{id: fmt.Sprintf("s%d", i+1), addr: a, dir: b.TempDir()}
		s.args = []string{"serve", "--node-id", s.id, "--data-dir", s.dir, "--bind", a,
			"--peers", strings.Join(peers, ","), "--timing", timing, "--log-level", "warn", "--insecure"}
		if metrics {
			s.args = append(s.args, "--metrics-addr", maddrs[i])
		}
		c.servers = append(c.servers, s)
		c.start(s)
	}
	b.Cleanup(c.stopAll)
	return c, maddrs
}

// scrapeEvery scrapes /metrics of every address once per interval until
// stop is closed (Prometheus does so every 15 s by default; once a second
// makes a scrape's cost visible), and returns how many scrapes succeeded.
func scrapeEvery(b testing.TB, addrs []string, every time.Duration, stop <-chan struct{}) func() int {
	var n int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			for _, a := range addrs {
				resp, err := client.Get("http://" + a + "/metrics")
				if err != nil {
					b.Errorf("scrape %s: %v", a, err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				// Every server reports raft's metrics (the leader its commit
				// time, followers their AppendEntries) and rctl's.
				if s := string(body); resp.StatusCode != http.StatusOK || !strings.Contains(s, "\nraft_") || !strings.Contains(s, "\nrctl_tasks") {
					b.Errorf("scrape %s: %d, raft's or rctl's metrics missing", a, resp.StatusCode)
					continue
				}
				n++
			}
		}
	}()
	return func() int { wg.Wait(); return n }
}

// BenchmarkTaskAddMetrics: what --metrics-addr costs. Committed Task.Add
// throughput and latency (as BenchmarkTaskAdd: 1 and 32 clients, 5 s
// each) on a 3-server cluster without the metrics listener, and on one
// with it on every server and each scraped once a second; two rounds of
// each, alternated, so load from other work on the machine falls on both.
func BenchmarkTaskAddMetrics(b *testing.B) {
	type result struct {
		rate float64
		lats []time.Duration
	}
	results := map[string][]result{}
	const dur = 5 * time.Second
	for round := 1; round <= 2; round++ {
		for _, on := range []bool{false, true} {
			c, maddrs := startClusterMetrics(b, 3, "lan", on)
			probe := rpc.NewClient(c.addrs(nil))
			l := c.leader(probe, 10*time.Second)
			probe.Close()
			for _, clients := range []int{1, 32} {
				stop := make(chan struct{})
				scrapes := func() int { return 0 }
				if on {
					scrapes = scrapeEvery(b, maddrs, time.Second, stop)
				}
				lats := drive(b, l.addr, clients, dur, func(ctx context.Context, cl *rpc.Client, w, i int) error {
					return add(ctx, cl, fmt.Sprintf("r%d-m%v-c%d-w%d-%d", round, on, clients, w, i))
				})
				close(stop)
				n := scrapes()
				key := fmt.Sprintf("metrics=%s clients=%d", map[bool]string{false: "off", true: "on"}[on], clients)
				rate := float64(len(lats)) / dur.Seconds()
				results[key] = append(results[key], result{rate, lats})
				fmt.Printf("task add, 3 servers, lan, round %d, %-26s %6.0f writes/s, latency %s, scrapes %d\n", round, key+":", rate, summary(lats), n)
			}
			c.stopAll()
		}
	}
	fmt.Println("side by side (both rounds pooled):")
	for _, clients := range []int{1, 32} {
		var line []string
		for _, m := range []string{"off", "on"} {
			key := fmt.Sprintf("metrics=%s clients=%d", m, clients)
			var rate float64
			var lats []time.Duration
			for _, r := range results[key] {
				rate += r.rate / float64(len(results[key]))
				lats = append(lats, r.lats...)
			}
			line = append(line, fmt.Sprintf("metrics %-3s %6.0f writes/s, p50 %s p99 %s", m, rate,
				pct(lats, 0.5).Round(10*time.Microsecond), pct(lats, 0.99).Round(10*time.Microsecond)))
			b.ReportMetric(rate, fmt.Sprintf("writes/s-metrics-%s-c%d", m, clients))
		}
		fmt.Printf("  %2d clients: %s | %s\n", clients, line[0], line[1])
	}
}
