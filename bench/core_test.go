// Package bench measures rctl with real server processes on loopback and
// prints the figures. Run with `make bench` (or go test -bench=. ./bench/).
// Results are recorded in bench/RESULTS.md.
package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

var rctlBin string

func TestMain(m *testing.M) {
	rctlBin = os.Getenv("RCTL_BIN")
	if rctlBin == "" {
		dir, err := os.MkdirTemp("", "rctl-bench-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		rctlBin = filepath.Join(dir, "rctl")
		if out, err := exec.Command("go", "build", "-o", rctlBin, "..").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build rctl: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

type server struct {
	id, addr, dir string
	args          []string
	cmd           *exec.Cmd
	done          chan struct{}
}

type cluster struct {
	b       testing.TB
	servers []*server
}

func startCluster(b testing.TB, n int, timing string) *cluster {
	return startClusterTLS(b, n, timing, "")
}

// startClusterTLS starts n servers; with caDir (a CA made by pki.CreateCA)
// they run mutual TLS with server certificates signed by it, else
// plaintext (--insecure).
func startClusterTLS(b testing.TB, n int, timing, caDir string) *cluster {
	addrs := testutil.FreeAddrs(b, n)
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("s%d=%s", i+1, a))
	}
	c := &cluster{b: b}
	for i, a := range addrs {
		s := &server{id: fmt.Sprintf("s%d", i+1), addr: a, dir: b.TempDir()}
		s.args = []string{"serve", "--node-id", s.id, "--data-dir", s.dir, "--bind", a,
			"--peers", strings.Join(peers, ","), "--timing", timing, "--log-level", "warn"}
		if caDir == "" {
			s.args = append(s.args, "--insecure")
		} else {
			host, _, _ := net.SplitHostPort(a)
			crt, key, err := pki.CreateCert(pki.CertRequest{CADir: caDir, Role: pki.RoleServer, Name: s.id, Hosts: []string{host}, OutDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			s.args = append(s.args, "--tls-ca", filepath.Join(caDir, pki.CACertFile), "--tls-cert", crt, "--tls-key", key)
		}
		c.servers = append(c.servers, s)
		c.start(s)
	}
	b.Cleanup(c.stopAll)
	return c
}

func (c *cluster) start(s *server) {
	s.cmd = exec.Command(rctlBin, s.args...)
	if err := s.cmd.Start(); err != nil {
		c.b.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
}

func (c *cluster) kill(s *server) {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (c *cluster) stopAll() {
	for _, s := range c.servers {
		select {
		case <-s.done:
		default:
			c.kill(s)
		}
	}
}

func (c *cluster) addrs(except *server) []string {
	var out []string
	for _, s := range c.servers {
		if s != except {
			out = append(out, s.addr)
		}
	}
	return out
}

// leaderClients returns a client of every server, the leader (waited
// for up to 10 s) and a client of the leader alone; both clients are
// closed when the benchmark ends.
func (c *cluster) leaderClients() (cl *rpc.Client, l *server, lc *rpc.Client) {
	cl = rpc.NewClient(c.addrs(nil))
	c.b.Cleanup(cl.Close)
	l = c.leader(cl, 10*time.Second)
	lc = rpc.NewClient([]string{l.addr})
	c.b.Cleanup(lc.Close)
	return cl, l, lc
}

// other returns the first server that is not s (a follower of leader s).
func (c *cluster) other(s *server) *server {
	for _, o := range c.servers {
		if o != s {
			return o
		}
	}
	c.b.Fatal("a one-server cluster has no other server")
	return nil
}

// leader polls until some server names a leader and returns it.
func (c *cluster) leader(cl *rpc.Client, within time.Duration) *server {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		var st rpc.StatusReply
		err := cl.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st)
		cancel()
		if err == nil && st.LeaderID != "" {
			for _, s := range c.servers {
				if s.id == st.LeaderID {
					return s
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.b.Fatalf("no leader within %s", within)
	return nil
}

func add(ctx context.Context, cl *rpc.Client, id string) error {
	return cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "sleep"}, nil)
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func summary(ds []time.Duration) string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(ds), pct(ds, 0.5).Round(time.Millisecond),
		pct(ds, 0.99).Round(time.Millisecond), pct(ds, 1).Round(time.Millisecond))
}

// BenchmarkColdStart: processes started → every server's port accepting →
// leader elected → first write committed, fresh clusters of 3 and of 5
// servers (RCTL_BENCH_COLDSTART_ROUNDS each, default 5). The time to the
// ports is the binaries' own start-up; the rest is raft's first election
// (lan: a randomized 0.5–1 s heartbeat timeout, then a pre-vote and a
// vote), which needs many rounds to compare two builds.
func BenchmarkColdStart(b *testing.B) {
	rounds := 5
	if s := os.Getenv("RCTL_BENCH_COLDSTART_ROUNDS"); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 {
			b.Fatalf("RCTL_BENCH_COLDSTART_ROUNDS=%q: want a positive number", s)
		}
	}
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			var toPorts, toLeader, toWrite []time.Duration
			for round := 0; round < rounds; round++ {
				start := time.Now()
				c := startCluster(b, n, "lan")
				c.portsAccepting(10 * time.Second)
				toPorts = append(toPorts, time.Since(start))
				cl := rpc.NewClient(c.addrs(nil))
				c.leader(cl, 10*time.Second)
				toLeader = append(toLeader, time.Since(start))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := add(ctx, cl, "first"); err != nil {
					b.Fatal(err)
				}
				cancel()
				toWrite = append(toWrite, time.Since(start))
				cl.Close()
				c.stopAll()
			}
			fmt.Printf("cold start, %d servers, lan: ports %s | leader %s | first write %s\n", n,
				summary(toPorts), summary(toLeader), summary(toWrite))
			b.ReportMetric(float64(pct(toLeader, 0.5).Milliseconds()), "ms-to-leader-p50")
		})
	}
}

// portsAccepting waits until every server's port accepts a TCP connection,
// trying each every 2 ms.
func (c *cluster) portsAccepting(within time.Duration) {
	deadline := time.Now().Add(within)
	for _, s := range c.servers {
		for {
			conn, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
			if err == nil {
				_ = conn.Close()
				break
			}
			if time.Now().After(deadline) {
				c.b.Fatalf("%s: port not accepting within %s: %v", s.id, within, err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// BenchmarkFailover: kill -9 the leader of 3 servers, time until a write
// commits through the survivors; 12 rounds, the victim restarted between.
func BenchmarkFailover(b *testing.B) {
	c := startCluster(b, 3, "lan")
	all := rpc.NewClient(c.addrs(nil))
	defer all.Close()
	var took []time.Duration
	for round := 0; round < 12; round++ {
		l := c.leader(all, 10*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := add(ctx, all, fmt.Sprintf("warm-%d", round)); err != nil {
			b.Fatal(err)
		}
		cancel()
		rest := rpc.NewClient(c.addrs(l))
		// Keep the connections to the survivors warm, as a real client would.
		_ = rest.Call(context.Background(), rpc.MethodStatus, &rpc.StatusArgs{}, nil)
		start := time.Now()
		c.kill(l)
		ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
		err := add(ctx, rest, fmt.Sprintf("after-%d", round))
		cancel()
		if err != nil {
			b.Fatalf("round %d: %v", round, err)
		}
		took = append(took, time.Since(start))
		rest.Close()
		c.start(l)
		time.Sleep(2 * time.Second) // let the restarted server catch up
	}
	fmt.Printf("failover, 3 servers, lan, kill -9 leader → next committed write: %s\n", summary(took))
	b.ReportMetric(float64(pct(took, 0.5).Milliseconds()), "ms-failover-p50")
}

// drive runs clients concurrent clients against addr for dur, each on its
// own connection calling op(ctx, client, worker, i) back to back, and
// returns every call's latency.
func drive(b *testing.B, addr string, clients int, dur time.Duration,
	op func(ctx context.Context, cl *rpc.Client, w, i int) error) []time.Duration {
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	stop := time.Now().Add(dur)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := rpc.NewClient([]string{addr})
			defer cl.Close()
			var mine []time.Duration
			for i := 0; time.Now().Before(stop); i++ {
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := op(ctx, cl, w, i)
				cancel()
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lats
}

// BenchmarkTaskAdd: committed Task.Add throughput and latency with 1 and
// 32 concurrent clients (one connection each), 5 s per setting.
func BenchmarkTaskAdd(b *testing.B) {
	c := startCluster(b, 3, "lan")
	probe := rpc.NewClient(c.addrs(nil))
	defer probe.Close()
	l := c.leader(probe, 10*time.Second)
	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			const dur = 5 * time.Second
			lats := drive(b, l.addr, clients, dur, func(ctx context.Context, cl *rpc.Client, w, i int) error {
				return add(ctx, cl, fmt.Sprintf("c%d-w%d-%d", clients, w, i))
			})
			rate := float64(len(lats)) / dur.Seconds()
			fmt.Printf("task add, 3 servers, lan, %2d clients: %.0f writes/s, latency %s\n", clients, rate, summary(lats))
			b.ReportMetric(rate, "writes/s")
		})
	}
}

// BenchmarkTaskAddBatch: committed tasks per second when clients send
// Task.AddBatch entries of 100 tasks (one raft entry each).
func BenchmarkTaskAddBatch(b *testing.B) {
	c := startCluster(b, 3, "lan")
	probe := rpc.NewClient(c.addrs(nil))
	defer probe.Close()
	l := c.leader(probe, 10*time.Second)
	const size = 100
	for _, clients := range []int{1, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			const dur = 5 * time.Second
			lats := drive(b, l.addr, clients, dur, func(ctx context.Context, cl *rpc.Client, w, i int) error {
				args := rpc.TaskAddBatchArgs{Tasks: make([]rpc.TaskAddArgs, size)}
				for j := range args.Tasks {
					args.Tasks[j] = rpc.TaskAddArgs{ID: fmt.Sprintf("b%d-w%d-%d-%d", clients, w, i, j), Type: "sleep"}
				}
				return cl.Call(ctx, rpc.MethodTaskAddBatch, &args, nil)
			})
			rate := float64(len(lats)*size) / dur.Seconds()
			fmt.Printf("task add batch (100/entry), 3 servers, lan, %2d clients: %.0f tasks/s, batch latency %s\n", clients, rate, summary(lats))
			b.ReportMetric(rate, "tasks/s")
		})
	}
}
