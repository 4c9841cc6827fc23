package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// BenchmarkIdleAgentConnections: what a server pays for the ready
// connections agents keep to every server (docs/rpc.md, "Ready
// connections"): a follower of a 3-server mutual-TLS cluster takes n idle
// agent connections (RCTL_BENCH_IDLE_CONNS, default 10,000; each opened
// with a TLS handshake and checked with one Status.Get), and the figures
// are its resident memory before and after (MiB, KiB per connection) and
// its CPU over 10 s of holding them idle. The leader holds one connection
// per agent in any case; ready connections put as many on each follower.
func BenchmarkIdleAgentConnections(b *testing.B) {
	n := 10000
	if s := os.Getenv("RCTL_BENCH_IDLE_CONNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("RCTL_BENCH_IDLE_CONNS=%q: want a positive number", s)
		}
		n = v
	}
	// This process holds one end of each connection, the server the other
	// (it inherits the limit).
	if !raiseFileLimit(uint64(n + 1024)) {
		b.Skipf("needs an open-file limit of %d for %d connections (ulimit -n; root may raise it)", n+1024, n)
	}
	caDir := b.TempDir()
	if err := pki.CreateCA(caDir, 0); err != nil {
		b.Fatal(err)
	}
	store := benchCert(b, caDir, pki.RoleAgent, "bench-idle")
	obsStore := benchCert(b, caDir, pki.RoleServer, "bench-observer")
	for i := 0; i < b.N; i++ {
		c := startClusterTLS(b, 3, "lan", caDir)
		cl := rpc.NewClientWith(c.addrs(nil), rpc.Credentials{TLS: obsStore})
		l := c.leader(cl, 10*time.Second)
		cl.Close()
		f := c.other(l)
		time.Sleep(2 * time.Second) // settled: labels recorded, connections warm
		_, rss0 := procStat(f.cmd.Process.Pid)

		// From many loopback addresses: a server takes at most 512
		// connections from one (cluster/mux.go), as from one agent host.
		dialFrom := func(k int) rpc.DialFunc {
			ip := net.IPv4(127, 3, byte(k/400/250), byte(k/400%250+1))
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
			return rpc.Credentials{TLS: store, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", addr)
			}}.Dialer()
		}
		conns := make([]*rpc.Conn, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		next := make(chan int)
		t0 := time.Now()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range next {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					cn, err := rpc.DialWith(ctx, f.addr, dialFrom(k))
					if err == nil {
						err = cn.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &rpc.StatusReply{})
					}
					cancel()
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("connection %d: %w", k, err)
						}
						mu.Unlock()
						if cn != nil {
							cn.Close()
						}
						continue
					}
					conns[k] = cn
				}
			}()
		}
		for k := range n {
			next <- k
		}
		close(next)
		wg.Wait()
		opened := time.Since(t0)
		b.Cleanup(func() {
			for _, cn := range conns {
				if cn != nil {
					cn.Close()
				}
			}
		})
		if firstErr != nil {
			b.Fatal(firstErr)
		}
		time.Sleep(2 * time.Second)
		cpu0, rss1 := procStat(f.cmd.Process.Pid)
		time.Sleep(10 * time.Second)
		cpu1, rss2 := procStat(f.cmd.Process.Pid)
		for _, cn := range conns {
			if cn.Dead() {
				b.Fatal("the server closed an idle connection within 14 s")
			}
		}
		perConn := (max(rss1, rss2) - rss0) * 1024 / float64(n)
		fmt.Printf("idle agent connections=%d on a follower (mutual TLS): opened in %s; RSS %.1f → %.1f MiB (%.1f KiB per connection); CPU while idle %.1f%% of a core\n",
			n, opened.Round(time.Millisecond), rss0, max(rss1, rss2), perConn, (cpu1-cpu0)/10*100)
		b.ReportMetric(perConn, "KiB/conn")
		b.ReportMetric((cpu1-cpu0)/10*100, "idle-cpu-%")
	}
}

// benchCert makes a certificate of role signed by the CA in caDir and
// loads it.
func benchCert(b *testing.B, caDir string, role pki.Role, name string) *pki.Store {
	crt, key, err := pki.CreateCert(pki.CertRequest{CADir: caDir, Role: role, Name: name, OutDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	st, err := pki.Load(pki.Files{CA: filepath.Join(caDir, pki.CACertFile), Cert: crt, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	return st
}
