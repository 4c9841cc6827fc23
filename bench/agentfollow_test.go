package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// BenchmarkAgentFollow: how fast a fleet of simulated agents reaches a new
// leader after kill -9 of the old one, and what that costs the new leader.
// Each simulated agent behaves as the Python agent does (docs/rpc.md,
// "Following elections"): its own TCP connection to the leader for
// heartbeats at the interval handed out, and, with watch, one Status.Get
// with known_leader waiting on another server; on a new leader it sends
// its next heartbeat there after a random delay of up to the
// follow_spread_ms the leader hands out (250 ms at 10,000 agents). Without watch (the agent before this) it finds
// the new leader only when a heartbeat fails, through not_leader
// redirects with 100 ms–2 s backoff.
//
// Figures per mode: follow latency from the new leader's election (its own
// last_leader_change_ms) to each agent's first acknowledged heartbeat
// there, p50/p99/max over every agent and round; the new leader's peak
// heartbeat rate (100 ms buckets) and CPU in the 2 s after the election.
// RCTL_BENCH_FOLLOW_AGENTS sets the fleet (default 10000), rounds 3.
func BenchmarkAgentFollow(b *testing.B) {
	n := 10000
	if s := os.Getenv("RCTL_BENCH_FOLLOW_AGENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("RCTL_BENCH_FOLLOW_AGENTS=%q: want a positive number", s)
		}
		n = v
	}
	// Agents share heartbeat connections, perConn each (default 25): one
	// connection per agent, as real agents hold, made this 2-core machine
	// the bottleneck (the load generator and three servers on it timed
	// heartbeats out before any kill). RCTL_BENCH_FOLLOW_PER_CONN=1 gives
	// every agent its own (and, under TLS, its own certificate).
	perConn := 25
	if s := os.Getenv("RCTL_BENCH_FOLLOW_PER_CONN"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("RCTL_BENCH_FOLLOW_PER_CONN=%q: want a positive number", s)
		}
		perConn = v
	}
	need := n/perConn + 3*watchConns + 1024
	if perConn == 1 {
		need = 3*n + 1024 // a connection to each server, as real agents keep
	}
	if !raiseFileLimit(uint64(need)) {
		b.Skipf("needs an open-file limit of %d for %d agents (ulimit -n; root may raise it)", need, n)
	}
	for _, mode := range []struct {
		tls, watch bool
	}{{false, false}, {false, true}, {true, true}} {
		sec := "plain"
		if mode.tls {
			sec = "tls"
		}
		b.Run(fmt.Sprintf("agents=%d/%s/watch=%v", n, sec, mode.watch), func(b *testing.B) {
			runFollow(b, n, perConn, mode.tls, mode.watch, 3)
		})
	}
}

// followPKI is the TLS material of a run: the CA, an observer with a
// server certificate (every right) and one agent certificate per agent,
// as a fleet has (Node.* calls are checked against the certificate name).
type followPKI struct {
	caDir    string
	observer rpc.Credentials
	agents   []*pki.Store
}

func newFollowPKI(b *testing.B, n int) *followPKI {
	p := &followPKI{caDir: b.TempDir(), agents: make([]*pki.Store, n)}
	if err := pki.CreateCA(p.caDir, 0); err != nil {
		b.Fatal(err)
	}
	load := func(role pki.Role, name string) (*pki.Store, error) {
		crt, key, err := pki.CreateCert(pki.CertRequest{CADir: p.caDir, Role: role, Name: name, OutDir: filepath.Join(p.caDir, "certs")})
		if err != nil {
			return nil, err
		}
		return pki.Load(pki.Files{CA: filepath.Join(p.caDir, pki.CACertFile), Cert: crt, Key: key})
	}
	obs, err := load(pki.RoleServer, "bench-observer")
	if err != nil {
		b.Fatal(err)
	}
	p.observer = rpc.Credentials{TLS: obs}
	var wg sync.WaitGroup
	var failed atomic.Value
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := load(pki.RoleAgent, simID(i))
			if err != nil {
				failed.Store(err)
				return
			}
			p.agents[i] = st
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return p
}

func raiseFileLimit(want uint64) bool {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return false
	}
	if r.Cur >= want {
		return true
	}
	r.Cur = want
	r.Max = max(r.Max, want)
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r) == nil
}

func runFollow(b *testing.B, n, perConn int, secure, watch bool, rounds int) {
	var p *followPKI
	var c *cluster
	cred := rpc.Credentials{}
	if secure {
		certs := 0 // shared connections carry the observer's certificate
		if perConn == 1 {
			certs = n
		}
		t0 := time.Now()
		p = newFollowPKI(b, certs)
		fmt.Printf("agents=%d: %d agent certificates made in %s\n", n, certs, time.Since(t0).Round(time.Millisecond))
		c = startClusterTLS(b, 3, "lan", p.caDir)
		cred = p.observer
	} else {
		c = startCluster(b, 3, "lan")
	}
	cl := rpc.NewClientWith(c.addrs(nil), cred)
	defer cl.Close()
	l := c.leader(cl, 10*time.Second)
	f := newFollowFleet(b, c, n, watch, p)
	f.cred, f.perConn = cred, perConn
	defer f.close()
	f.register(b, l.addr, cred)
	f.start(l)
	time.Sleep(5 * time.Second) // every agent heartbeating, past the new-leader grace
	_, rss := procStat(l.cmd.Process.Pid)
	fmt.Printf("agents=%d tls=%v: leader RSS %.0f MiB with every agent connected\n", n, secure, rss)

	var follow []time.Duration
	var peaks []float64
	var cpus []float64
	for round := 0; round < rounds; round++ {
		old := c.leader(cl, 10*time.Second)
		if !f.allFollow(old.id, 10*time.Second) {
			b.Fatalf("round %d: %d agents do not follow %s before the kill; %d heartbeat errors, the last: %v",
				round+1, f.notFollowing(old.id), old.id, f.errs.Load(), f.lastErr.Load())
		}
		f.beginRound()
		c.kill(old)
		killed := time.Now()
		var nl *server
		var st rpc.StatusReply
		for time.Since(killed) < 10*time.Second {
			nl = c.leader(cl, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := cl.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st)
			cancel()
			if nl != old && err == nil && st.LeaderID == nl.id && st.LastLeaderChangeMS > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var leaderSt rpc.StatusReply
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lc := rpc.NewClientWith([]string{nl.addr}, cred)
		err := lc.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &leaderSt)
		lc.Close()
		cancel()
		if err != nil {
			b.Fatalf("round %d: status of new leader %s: %v", round+1, nl.id, err)
		}
		elected := time.UnixMilli(leaderSt.LastLeaderChangeMS)
		cpu0, _ := procStat(nl.cmd.Process.Pid)
		cpuAt := time.Now()
		if !f.allFollow(nl.id, 20*time.Second) {
			b.Fatalf("round %d: %d agents still not following %s after 20 s; %d heartbeat errors, the last: %v",
				round+1, f.notFollowing(nl.id), nl.id, f.errs.Load(), f.lastErr.Load())
		}
		time.Sleep(max(0, 2*time.Second-time.Since(elected)))
		cpu1, _ := procStat(nl.cmd.Process.Pid)
		cpu := 100 * (cpu1 - cpu0) / time.Since(cpuAt).Seconds()
		lat, learn, peak := f.roundResult(nl.id, elected)
		learned := ""
		if len(learn) > 0 {
			learned = fmt.Sprintf(" (%d learned it from the watch: p50 %s p99 %s)", len(learn), pct(learn, 0.5).Round(time.Millisecond), pct(learn, 0.99).Round(time.Millisecond))
		}
		follow = append(follow, lat...)
		peaks = append(peaks, peak)
		cpus = append(cpus, cpu)
		fmt.Printf("agents=%d tls=%v watch=%v round %d: killed %s, %s elected %s after the kill; agents follow p50 %s p99 %s max %s after the election%s; new leader peak %.0f heartbeats/s (100 ms buckets), CPU %.0f%% over the first 2 s\n",
			n, secure, watch, round+1, old.id, nl.id, elected.Sub(killed).Round(time.Millisecond),
			pct(lat, 0.5).Round(time.Millisecond), pct(lat, 0.99).Round(time.Millisecond), slices.Max(lat).Round(time.Millisecond), learned, peak, cpu)
		c.start(old)
	}
	fmt.Printf("agents=%d tls=%v watch=%v over %d rounds: follow p50 %s p99 %s max %s after the election; peak %.0f heartbeats/s, CPU up to %.0f%%; heartbeat errors %d\n",
		n, secure, watch, rounds, pct(follow, 0.5).Round(time.Millisecond), pct(follow, 0.99).Round(time.Millisecond),
		slices.Max(follow).Round(time.Millisecond), slices.Max(peaks), slices.Max(cpus), f.errs.Load())
	b.ReportMetric(pct(follow, 0.99).Seconds(), "s-p99-follow")
}

// followFleet simulates agents that each keep their own connections.
type followFleet struct {
	c       *cluster
	watch   bool
	agents  []*simAgent
	stop    chan struct{}
	wg      sync.WaitGroup
	errs    atomic.Int64
	lastErr atomic.Value // string: the last heartbeat error

	mu     sync.Mutex
	acks   []ack // heartbeats acknowledged this round
	record bool

	cred    rpc.Credentials // the shared connections'
	perConn int             // agents per heartbeat connection; 1: one each
	wmu     sync.Mutex
	wconns  map[string][]*rpc.Conn // pooled: watch and shared heartbeat connections
}

type ack struct {
	leader string
	agent  int
	at     time.Time
	watch  bool // learned by the watch, not acknowledged by the leader
}

type simAgent struct {
	i     int
	local net.IP
	tls   *pki.Store // nil: plaintext
	f     *followFleet
	wake  chan struct{}

	mu       sync.Mutex
	leaderID string        // the leader followed (learned from a heartbeat or the watch)
	leader   string        // address heartbeats go to
	acked    string        // leader id of the last acknowledged heartbeat
	spread   time.Duration // follow_spread_ms of the last heartbeat reply
	conns    map[string]*rpc.Conn
}

func newFollowFleet(b *testing.B, c *cluster, n int, watch bool, p *followPKI) *followFleet {
	f := &followFleet{c: c, watch: watch, stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		// Spread the agents over 127.0.0.0/8 source addresses, as a fleet
		// comes from many hosts (and within --max-conns-per-ip).
		ip := net.IPv4(127, 1, byte(i/200/250), byte(1+(i/200)%250))
		a := &simAgent{i: i, local: ip, f: f, wake: make(chan struct{}, 1), conns: map[string]*rpc.Conn{}}
		if p != nil && i < len(p.agents) {
			a.tls = p.agents[i]
		}
		f.agents = append(f.agents, a)
	}
	return f
}

func (f *followFleet) register(b *testing.B, leader string, cred rpc.Credentials) {
	conn, err := rpc.DialWith(context.Background(), leader, cred.Dialer())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var regErr atomic.Value
	for _, a := range f.agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var r rpc.NodeRegisterReply
			if err := conn.Call(ctx, rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: simID(a.i), Capacity: 1, Cloud: "sim"}, &r); err != nil {
				regErr.Store(err)
				return
			}
			a.leader, a.leaderID = r.LeaderAddr, r.LeaderID
		}()
	}
	wg.Wait()
	if err, _ := regErr.Load().(error); err != nil {
		b.Fatalf("register: %v", err)
	}
}

func (f *followFleet) start(leader *server) {
	for _, a := range f.agents {
		a.leader, a.leaderID = leader.addr, leader.id
		f.wg.Add(1)
		go a.heartbeats()
		if f.watch {
			f.wg.Add(1)
			go a.watcher()
		}
	}
}

func (f *followFleet) close() {
	close(f.stop)
	f.wmu.Lock()
	for _, cs := range f.wconns {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}
	f.wmu.Unlock()
	for _, a := range f.agents {
		a.mu.Lock()
		for _, c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
	}
	f.wg.Wait()
}

func (f *followFleet) beginRound() {
	f.mu.Lock()
	f.acks, f.record = f.acks[:0], true
	f.mu.Unlock()
}

// allFollow waits until every agent's last acknowledged heartbeat came
// from leader id.
func (f *followFleet) allFollow(id string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		all := true
		for _, a := range f.agents {
			a.mu.Lock()
			ok := a.acked == id
			a.mu.Unlock()
			if !ok {
				all = false
				break
			}
		}
		if all {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (f *followFleet) notFollowing(id string) int {
	n := 0
	for _, a := range f.agents {
		a.mu.Lock()
		if a.acked != id {
			n++
		}
		a.mu.Unlock()
	}
	return n
}

// roundResult: each agent's first heartbeat acknowledged by leader id after
// elected, and the peak rate of acknowledged heartbeats in 100 ms buckets.
func (f *followFleet) roundResult(id string, elected time.Time) ([]time.Duration, []time.Duration, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record = false
	first := map[int]time.Time{}
	buckets := map[int64]int{}
	learned := map[int]time.Time{}
	for _, a := range f.acks {
		if a.leader != id {
			continue
		}
		if a.watch {
			if _, ok := learned[a.agent]; !ok {
				learned[a.agent] = a.at
			}
			continue
		}
		if _, ok := first[a.agent]; !ok {
			first[a.agent] = a.at
		}
		buckets[a.at.Sub(elected).Milliseconds()/100]++
	}
	var lat, learn []time.Duration
	for _, t := range first {
		lat = append(lat, max(t.Sub(elected), 0))
	}
	for _, t := range learned {
		learn = append(learn, max(t.Sub(elected), 0))
	}
	peak := 0
	for _, v := range buckets {
		peak = max(peak, v)
	}
	return lat, learn, float64(peak) * 10
}

func (a *simAgent) conn(addr string) (*rpc.Conn, error) {
	a.mu.Lock()
	c := a.conns[addr]
	a.mu.Unlock()
	if c != nil && !c.Dead() {
		return c, nil
	}
	d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: a.local}}
	cred := rpc.Credentials{TLS: a.tls, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}}
	c, err := rpc.DialWith(context.Background(), addr, cred.Dialer())
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	// Like a real agent, keep the connections made to every server (its
	// watch rotates over the followers), so the one to a new leader is
	// usually open already: no handshake when following an election.
	if old := a.conns[addr]; old != nil {
		old.Close()
	}
	a.conns[addr] = c
	a.mu.Unlock()
	return c, nil
}

func (a *simAgent) target() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leader
}

// heartbeats is the agent's main loop: a heartbeat every interval to the
// leader it follows; on failure, the next server in turn after backoff
// (100 ms doubling to 2 s, half jittered), following not_leader redirects.
func (a *simAgent) heartbeats() {
	defer a.f.wg.Done()
	interval := time.Second
	next := time.Now().Add(time.Duration(a.i%1000) * time.Millisecond)
	failures := 0
	rr := a.i
	for {
		select {
		case <-time.After(time.Until(next)):
		case <-a.wake:
		case <-a.f.stop:
			return
		}
		addr := a.target()
		if addr == "" {
			servers := a.f.c.addrs(nil)
			addr = servers[rr%len(servers)]
			rr++
		}
		sent := time.Now()
		var r rpc.HeartbeatReply
		err := func() error {
			var c *rpc.Conn
			var err error
			if a.f.perConn > 1 {
				c, err = a.f.sharedConn(addr, a.i/a.f.perConn)
			} else {
				c, err = a.conn(addr)
			}
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), max(interval, 2*time.Second))
			defer cancel()
			return c.Call(ctx, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: simID(a.i)}, &r)
		}()
		if err == nil {
			failures = 0
			if r.HeartbeatIntervalMS > 0 {
				interval = time.Duration(r.HeartbeatIntervalMS) * time.Millisecond
			}
			a.mu.Lock()
			a.leader, a.leaderID, a.acked = addr, r.LeaderID, r.LeaderID
			a.spread = time.Duration(r.FollowSpreadMS) * time.Millisecond
			a.mu.Unlock()
			a.f.acked(r.LeaderID, a.i)
			next = sent.Add(interval)
			continue
		}
		var re *rpc.Error
		if errors.As(err, &re) && re.Code == rpc.CodeNotLeader && re.LeaderAddr != "" {
			a.mu.Lock()
			a.leader = re.LeaderAddr
			a.mu.Unlock()
			next = time.Now()
			continue
		}
		a.f.errs.Add(1)
		a.f.lastErr.Store(fmt.Sprintf("%s: %v", addr, err))
		a.mu.Lock()
		if a.leader == addr {
			a.leader = ""
		}
		a.mu.Unlock()
		failures++
		d := min(2*time.Second, 100*time.Millisecond<<min(failures-1, 5))
		next = time.Now().Add(d - time.Duration(rand.Float64()*0.5*float64(d)))
	}
}

// watcher keeps one Status.Get with known_leader waiting on a server other
// than the leader; on a new leader it brings the next heartbeat forward.
func (a *simAgent) watcher() {
	defer a.f.wg.Done()
	rr := a.i
	for {
		select {
		case <-a.f.stop:
			return
		default:
		}
		a.mu.Lock()
		known, leader := a.leaderID, a.leader
		a.mu.Unlock()
		servers := a.f.c.addrs(nil)
		addr := servers[rr%len(servers)]
		if addr == leader {
			rr++
			addr = servers[rr%len(servers)]
		}
		var st rpc.StatusReply
		err := func() error {
			watchConn := a.f.watchConn
			if a.f.perConn == 1 {
				watchConn = func(addr string, _ int) (*rpc.Conn, error) { return a.conn(addr) }
			}
			c, err := watchConn(addr, a.i)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
			defer cancel()
			return c.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{KnownLeader: known, MaxWaitMS: 60_000}, &st)
		}()
		if err != nil || st.LeaderID == "" || st.LeaderID == known {
			rr++
			select {
			case <-time.After(100*time.Millisecond + time.Duration(rand.Float64()*float64(400*time.Millisecond))):
			case <-a.f.stop:
				return
			}
			continue
		}
		a.mu.Lock()
		if a.leaderID == known {
			a.leader, a.leaderID = st.LeaderAddr, st.LeaderID
		}
		spread := time.Duration(rand.Float64() * float64(a.spread))
		a.mu.Unlock()
		a.f.learned(st.LeaderID, a.i)
		select {
		case <-time.After(spread):
		case <-a.f.stop:
			return
		}
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// watchConns is how many connections to each server the fleet's leader
// watches share. A real agent holds its watch on a connection of its own;
// the simulation multiplexes them (a waiting watch costs the server a
// goroutine either way) so that the fleet's heartbeat connections, one
// per agent, fit the open-file limit of one process.
const watchConns = 64

// watchConn is the connection agent i's watch at addr goes through.
func (f *followFleet) watchConn(addr string, i int) (*rpc.Conn, error) {
	return f.pooled("watch "+addr, addr, i%watchConns)
}

// sharedConn is heartbeat connection group at addr, shared by perConn
// agents (RCTL_BENCH_FOLLOW_PER_CONN).
func (f *followFleet) sharedConn(addr string, group int) (*rpc.Conn, error) {
	return f.pooled("heartbeat "+addr, addr, group)
}

// pooled is connection k of the pool named key, dialled to addr with the
// fleet's credentials (the observer's under TLS: every right).
func (f *followFleet) pooled(key, addr string, k int) (*rpc.Conn, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.wconns == nil {
		f.wconns = map[string][]*rpc.Conn{}
	}
	cs := f.wconns[key]
	for len(cs) <= k {
		cs = append(cs, nil)
	}
	f.wconns[key] = cs
	if cs[k] != nil && !cs[k].Dead() {
		return cs[k], nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := rpc.DialWith(ctx, addr, f.cred.Dialer())
	if err != nil {
		return nil, err
	}
	cs[k] = c
	return c, nil
}

func (f *followFleet) learned(leader string, agent int) {
	f.mu.Lock()
	if f.record {
		f.acks = append(f.acks, ack{leader: leader, agent: agent, at: time.Now(), watch: true})
	}
	f.mu.Unlock()
}

func (f *followFleet) acked(leader string, agent int) {
	f.mu.Lock()
	if f.record {
		f.acks = append(f.acks, ack{leader: leader, agent: agent, at: time.Now()})
	}
	f.mu.Unlock()
}
