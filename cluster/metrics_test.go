package cluster

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// newMetricsCluster is newTestClusterWith whose servers also serve the
// metrics listener on a free loopback port (Server.MetricsAddr). A server
// restarted with c.start comes back without it.
func newMetricsCluster(t *testing.T, n int, tweak func(i int, cfg *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: testClusterConfigs(t, n, tweak)}
	t.Cleanup(c.stopAll)
	for _, cfg := range c.cfgs {
		s, err := New(cfg, WithMetrics(MetricsConfig{Addr: "127.0.0.1:0"}))
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		c.servers = append(c.servers, s)
	}
	return c
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// get fetches url with client (httpClient when nil) and an optional
// bearer token; it returns the status and body.
func get(t *testing.T, client *http.Client, url, token string) (int, string, error) {
	t.Helper()
	if client == nil {
		client = httpClient
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format (what
// promhttp serves without content negotiation).
func parseMetrics(t *testing.T, body string) []sample {
	t.Helper()
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("malformed metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("malformed value in %q: %v", line, err)
		}
		series := line[:i]
		smp := sample{name: series, labels: map[string]string{}, value: v}
		if j := strings.IndexByte(series, '{'); j >= 0 {
			smp.name = series[:j]
			for _, kv := range strings.Split(strings.TrimSuffix(series[j+1:], "}"), ",") {
				if k, val, ok := strings.Cut(kv, "="); ok {
					smp.labels[k] = strings.Trim(val, `"`)
				}
			}
		}
		out = append(out, smp)
	}
	return out
}

// find returns the value of the first sample named name whose labels
// include every pair of want.
func find(samples []sample, name string, want ...string) (float64, bool) {
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if s.labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// TestMetricsOfAThreeServerCluster scrapes /metrics of a 3-server cluster
// and finds raft's own metrics (commit time, the leader's per-follower
// last contact, boltdb's), the follower's time since it heard from the
// leader, and rctl's task counts, RPC latency and forwarded calls after
// tasks were added through a follower.
func TestMetricsOfAThreeServerCluster(t *testing.T) {
	c := newMetricsCluster(t, 3, nil)
	li := c.waitLeader(15 * time.Second)
	termBefore := c.servers[li].raft.CurrentTerm()
	fi := (li + 1) % 3
	follower := c.servers[fi]

	cl := c.client(fi) // through a follower: Task.Add is forwarded
	const tasks = 7
	for i := 0; i < tasks; i++ {
		if err := cl.Call(ctxT(t, 10*time.Second), rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: fmt.Sprintf("m-%d", i), Type: "sleep"}, nil); err != nil {
			t.Fatalf("add task %d: %v", i, err)
		}
	}

	// Scrape all three until they agree: one leader, two ready followers
	// (on a loaded machine leadership may move meanwhile; roles are read
	// from the scrape, not assumed).
	var scrapes [3][]sample
	var lead int
	succeedsWithin(t, 20*time.Second, func() error {
		lead = -1
		for i, s := range c.servers {
			code, body, err := get(t, nil, "http://"+s.MetricsAddr()+"/metrics", "")
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("%s /metrics: %d %v", c.cfgs[i].NodeID, code, err)
			}
			m := parseMetrics(t, body)
			scrapes[i] = m
			if v, _ := find(m, "rctl_tasks", "status", "pending"); v != tasks {
				return fmt.Errorf("%s: rctl_tasks{status=pending} = %v, want %d", c.cfgs[i].NodeID, v, tasks)
			}
			// raft's own metrics arrive through the go-metrics sinks:
			// the commit time (a summary of milliseconds), the leader's
			// per-follower last contact and raft-boltdb's gauges. A sink
			// registered with a library raft does not emit to would
			// leave them missing.
			if v, ok := find(m, "raft_commitTime_count"); !ok || v < tasks {
				return fmt.Errorf("raft_commitTime_count = %v (present %v), want >= %d: raft's metrics do not reach the sink", v, ok, tasks)
			}
			if _, ok := find(m, "raft_leader_lastContact_count"); !ok {
				return fmt.Errorf("raft_leader_lastContact missing")
			}
			if _, ok := find(m, "raft_boltdb_numFreePages"); !ok {
				return fmt.Errorf("raft-boltdb's raft_boltdb_numFreePages missing (RunMetrics)")
			}
			if v, _ := find(m, "rctl_ready"); v != 1 {
				return fmt.Errorf("%s: rctl_ready = %v", c.cfgs[i].NodeID, v)
			}
			if v, _ := find(m, "rctl_raft_state", "state", "leader"); v == 1 {
				lead = i
			} else if v, _ := find(m, "rctl_raft_state", "state", "follower"); v != 1 {
				return fmt.Errorf("%s: neither leader nor follower", c.cfgs[i].NodeID)
			}
		}
		if lead < 0 {
			return fmt.Errorf("no leader in the scrapes")
		}
		return nil
	})
	ls := scrapes[lead]
	for i, fs := range scrapes {
		if i == lead {
			if v, _ := find(fs, "rctl_raft_last_contact_seconds"); v != 0 {
				t.Errorf("leader's rctl_raft_last_contact_seconds = %v, want 0", v)
			}
			continue
		}
		lc, ok := find(fs, "rctl_raft_last_contact_seconds")
		if et := c.servers[i].timing.ElectionTimeout.Seconds(); !ok || lc < 0 || lc > et {
			t.Errorf("follower %s's rctl_raft_last_contact_seconds = %v (present %v), want within the election timeout (ready)", c.cfgs[i].NodeID, lc, ok)
		}
		if v, _ := find(fs, "rctl_raft_leader_elected_total"); v < 1 {
			t.Errorf("follower %s's rctl_raft_leader_elected_total = %v, want >= 1", c.cfgs[i].NodeID, v)
		}
	}
	fs := scrapes[fi]
	for _, st := range fsm.TaskStatuses {
		if _, ok := find(fs, "rctl_tasks", "status", string(st)); !ok {
			t.Errorf("rctl_tasks{status=%s} missing: every status is reported, zero included", st)
		}
	}
	if _, ok := find(fs, "rctl_nodes", "status", "unreachable"); !ok {
		t.Errorf("rctl_nodes{status=unreachable} missing")
	}
	// The server the client called served every call; the leader served
	// them again, marked forwarded (unless leadership moved meanwhile).
	if v, _ := find(fs, "rctl_rpc_request_duration_seconds_count", "method", rpc.MethodTaskAdd, "code", "ok"); v < tasks {
		t.Errorf("%s's Task.Add ok count = %v, want >= %d", c.cfgs[fi].NodeID, v, tasks)
	}
	if v, _ := find(ls, "rctl_raft_leadership_acquired_total"); v < 1 {
		t.Errorf("leader's rctl_raft_leadership_acquired_total = %v, want >= 1", v)
	}
	if v, _ := find(ls, "rctl_raft_term"); v < float64(termBefore) {
		t.Errorf("leader's rctl_raft_term = %v, want >= %d", v, termBefore)
	}
	if lead == li && c.servers[li].raft.CurrentTerm() == termBefore {
		if v, _ := find(ls, "rctl_rpc_forwarded_requests_total", "method", rpc.MethodTaskAdd); v < tasks {
			t.Errorf("leader's rctl_rpc_forwarded_requests_total{method=Task.Add} = %v, want >= %d", v, tasks)
		}
		if v, _ := find(ls, "rctl_rpc_request_duration_seconds_count", "method", rpc.MethodTaskAdd, "code", "ok"); v < tasks {
			t.Errorf("leader's Task.Add ok count = %v, want >= %d", v, tasks)
		}
	} else {
		t.Logf("leadership moved during the test (%s → %s); forwarded counts not checked", c.cfgs[li].NodeID, c.cfgs[lead].NodeID)
	}

	// A method name the server does not know is counted as "unknown",
	// never as a label of the caller's choosing.
	_ = cl.Call(ctxT(t, 5*time.Second), "No.Such.Method", nil, nil)
	_, body, _ := get(t, nil, "http://"+follower.MetricsAddr()+"/metrics", "")
	if strings.Contains(body, "No.Such.Method") {
		t.Errorf("an unknown method name became a label value")
	}
	if v, _ := find(parseMetrics(t, body), "rctl_rpc_request_duration_seconds_count", "method", "unknown", "code", "invalid_argument"); v < 1 {
		t.Errorf("unknown method not counted: %v", v)
	}

	code, body, err := get(t, nil, "http://"+follower.MetricsAddr()+"/healthz", "")
	if err != nil || code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q %v, want 200 ok", code, body, err)
	}
}

// TestHeartbeatsAndVerdictsCounted: a node agent's heartbeats, its
// unreachable verdict and the requeue of its task show on the leader.
func TestHeartbeatsAndVerdictsCounted(t *testing.T) {
	c := newMetricsCluster(t, 1, func(_ int, cfg *Config) {
		cfg.Liveness = LivenessConfig{MinInterval: 100 * time.Millisecond, MaxRate: 10000, TTLFactor: 3}
	})
	c.waitLeader(15 * time.Second)
	cl := c.client(0)
	ctx := ctxT(t, 20*time.Second)
	if err := cl.Call(ctx, rpc.MethodNodeRegister, &rpc.NodeRegisterArgs{ID: "n1", Capacity: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "held", Type: "sleep"}, nil); err != nil {
		t.Fatal(err)
	}
	// Heartbeat until the scheduler hands the task to n1.
	succeedsWithin(t, 10*time.Second, func() error {
		if err := cl.Call(ctx, rpc.MethodNodeHeartbeat, &rpc.HeartbeatArgs{NodeID: "n1"}, nil); err != nil {
			return err
		}
		if tk := c.servers[0].fsm.Task("held"); tk == nil || tk.NodeID != "n1" {
			return fmt.Errorf("task not assigned to n1 yet")
		}
		return nil
	})
	// Then go silent: n1 is marked degraded, then unreachable, and the
	// task is requeued.
	succeedsWithin(t, 15*time.Second, func() error {
		_, body, err := get(t, nil, "http://"+c.servers[0].MetricsAddr()+"/metrics", "")
		if err != nil {
			return err
		}
		s := parseMetrics(t, body)
		if v, _ := find(s, "rctl_node_heartbeats_total"); v < 1 {
			return fmt.Errorf("rctl_node_heartbeats_total = %v", v)
		}
		if v, _ := find(s, "rctl_node_status_changes_total", "to", "unreachable"); v != 1 {
			return fmt.Errorf("rctl_node_status_changes_total{to=unreachable} = %v, want 1", v)
		}
		if v, _ := find(s, "rctl_tasks_requeued_total"); v != 1 {
			return fmt.Errorf("rctl_tasks_requeued_total = %v, want 1", v)
		}
		if v, _ := find(s, "rctl_node_unreachable_detection_seconds_count"); v != 1 {
			return fmt.Errorf("rctl_node_unreachable_detection_seconds_count = %v, want 1", v)
		}
		if v, _ := find(s, "rctl_nodes", "status", "unreachable"); v != 1 {
			return fmt.Errorf("rctl_nodes{status=unreachable} = %v, want 1", v)
		}
		return nil
	})
}

// readyz fetches /readyz and decodes it.
func readyz(t *testing.T, client *http.Client, url string) (int, Readiness, error) {
	t.Helper()
	code, body, err := get(t, client, url+"/readyz", "")
	if err != nil {
		return 0, Readiness{}, err
	}
	var rd Readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		return code, rd, fmt.Errorf("readyz body %q: %v", body, err)
	}
	return code, rd, nil
}

// TestReadyzFollowerLosesAndRegainsLeader: a follower's /readyz turns 503
// within one election timeout of losing its leader (the leader and the
// other follower stopped, so no leader can be elected), and 200 again
// once a leader is seen.
func TestReadyzFollowerLosesAndRegainsLeader(t *testing.T) {
	c := newMetricsCluster(t, 3, nil)
	var li, fi, oi int
	var f *Server
	var url string
	succeedsWithin(t, 20*time.Second, func() error {
		li = c.waitLeader(15 * time.Second) // again, should leadership move
		fi, oi = (li+1)%3, (li+2)%3
		f = c.servers[fi]
		url = "http://" + f.MetricsAddr()
		code, rd, err := readyz(t, nil, url)
		if err != nil || code != http.StatusOK || !rd.Ready || rd.State != "follower" || rd.LeaderID != c.cfgs[li].NodeID {
			return fmt.Errorf("follower /readyz = %d %+v %v, want 200 ready following %s", code, rd, err, c.cfgs[li].NodeID)
		}
		return nil
	})
	c.stop(oi) // the leader and this follower still form a quorum
	succeedsWithin(t, 10*time.Second, func() error {
		if code, rd, err := readyz(t, nil, url); err != nil || code != http.StatusOK || rd.LeaderID != c.cfgs[li].NodeID {
			return fmt.Errorf("follower unready with its leader and a quorum: %d %+v %v", code, rd, err)
		}
		return nil
	})

	et := f.timing.ElectionTimeout
	oldTerm := c.servers[li].raft.CurrentTerm()
	stopStart := time.Now()
	c.stop(li)
	lost := time.Now() // the stopped leader sent nothing after this
	var unready Readiness
	for {
		code, rd, err := readyz(t, nil, url)
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		if code == http.StatusServiceUnavailable {
			if rd.Ready || rd.Reason == "" {
				t.Fatalf("503 with ready=%v reason=%q", rd.Ready, rd.Reason)
			}
			unready = rd
			break
		}
		if time.Since(lost) > 10*et {
			t.Fatalf("follower still ready %s after its leader stopped: %+v", time.Since(lost), rd)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(lost)
	t.Logf("follower unready %s after the leader's shutdown returned (%s after it began); election timeout %s; %+v",
		took, time.Since(stopStart), et, unready)
	// The bound: within one election timeout. The follower decides
	// by its own clock (last contact older than the timeout), so what may
	// add to it is only the delay of this poll: 5 ms plus one request
	// on a loaded machine, allowed for below.
	const pollAllowance = 200 * time.Millisecond
	if took > et+pollAllowance {
		t.Errorf("follower turned unready %s after losing its leader; want within the election timeout %s (+%s for polling)", took, et, pollAllowance)
	}

	// A leader again: the other follower comes back, the two elect one.
	c.start(oi)
	succeedsWithin(t, 20*time.Second, func() error {
		code, rd, err := readyz(t, nil, url)
		if err != nil || code != http.StatusOK || !rd.Ready || rd.LeaderID == "" || rd.Term <= oldTerm {
			return fmt.Errorf("follower /readyz = %d %+v %v, want 200 with a leader of a later term than %d", code, rd, err, oldTerm)
		}
		return nil
	})
}

// TestReadinessRule walks the /readyz rule case by case.
func TestReadinessRule(t *testing.T) {
	now := time.Unix(1000, 0)
	base := readinessInput{state: raft.Follower, leader: "s1", term: 3, commit: 100, applied: 100, last: 100,
		lastContact: now.Add(-100 * time.Millisecond), now: now, electionTimeout: 500 * time.Millisecond,
		profile: "lan", maxLag: 10}
	for _, tc := range []struct {
		name   string
		change func(in *readinessInput)
		ready  bool
		reason string
	}{
		{"follower in contact and caught up", func(*readinessInput) {}, true, ""},
		{"follower lagging by exactly the max", func(in *readinessInput) { in.applied = 90 }, true, ""},
		{"follower lagging beyond the max", func(in *readinessInput) { in.applied = 89 }, false, "11 committed entries not applied"},
		{"default max lag", func(in *readinessInput) { in.maxLag = 0; in.commit = 100 + DefaultReadyMaxLag + 1 }, false, "more than --ready-max-lag 1000"},
		{"contact exactly one election timeout ago", func(in *readinessInput) { in.lastContact = now.Add(-500 * time.Millisecond) }, true, ""},
		{"contact older than one election timeout", func(in *readinessInput) { in.lastContact = now.Add(-501 * time.Millisecond) }, false, "no contact with the leader s1 for 501 ms"},
		{"no leader known", func(in *readinessInput) { in.leader = "" }, false, "no leader known"},
		{"candidate", func(in *readinessInput) { in.state, in.leader = raft.Candidate, "" }, false, "no leader known"},
		{"never heard from the leader", func(in *readinessInput) { in.lastContact = time.Time{} }, false, "since this server started"},
		{"established leader", func(in *readinessInput) { in.state, in.leaderReady, in.lastContact = raft.Leader, true, time.Time{} }, true, ""},
		{"leader before its leadership is established", func(in *readinessInput) { in.state = raft.Leader }, false, "earlier terms"},
		{"leader lagging", func(in *readinessInput) { in.state, in.leaderReady, in.applied = raft.Leader, true, 50 }, false, "50 committed entries"},
		{"shutting down", func(in *readinessInput) { in.state = raft.Shutdown }, false, "shutting down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.change(&in)
			rd := in.decide()
			if rd.Ready != tc.ready || !strings.Contains(rd.Reason, tc.reason) || (tc.ready && rd.Reason != "") {
				t.Fatalf("decide(%+v) = ready %v reason %q; want ready %v, reason containing %q", in, rd.Ready, rd.Reason, tc.ready, tc.reason)
			}
			if rd.Term != in.term || rd.AppliedIndex != in.applied || rd.LastIndex != in.last || rd.LeaderID != in.leader {
				t.Fatalf("fields not reported: %+v from %+v", rd, in)
			}
			if in.state == raft.Leader && rd.LastContactMS != 0 {
				t.Fatalf("leader's last_contact_ms = %d, want 0", rd.LastContactMS)
			}
		})
	}
}

// TestMetricsListenerSecurity: under TLS the listener speaks HTTPS with
// the server's certificate; /metrics needs a reader token (or a server
// certificate), /healthz and /readyz are open; a plaintext client gets
// nothing.
func TestMetricsListenerSecurity(t *testing.T) {
	p := newPKI(t)
	c := newMetricsCluster(t, 1, func(_ int, cfg *Config) {
		cfg.Insecure = false
		cfg.TLS = p.store(pki.RoleServer, cfg.NodeID)
	})
	c.waitLeader(15 * time.Second)
	addr := c.servers[0].MetricsAddr()
	url := "https://" + addr

	caPEM, err := os.ReadFile(filepath.Join(p.caDir, pki.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	httpsClient := func(cert *pki.Store) *http.Client {
		tc := &tls.Config{RootCAs: pool, ServerName: pki.ServerName, MinVersion: tls.VersionTLS13}
		if cert != nil {
			tc.Certificates = cert.ClientConfig().Certificates
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	anon := httpsClient(nil)

	// Plaintext against the TLS listener: no metrics, no health.
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		code, body, err := get(t, nil, "http://"+addr+path, "")
		if err == nil && (code == http.StatusOK || strings.Contains(body, "rctl_")) {
			t.Errorf("plaintext GET %s: %d %q, want a refusal", path, code, body)
		}
	}
	// The health endpoints are open over TLS, without a certificate.
	if code, body, err := get(t, anon, url+"/healthz", ""); err != nil || code != http.StatusOK {
		t.Errorf("/healthz without a certificate: %d %q %v", code, body, err)
	}
	if code, rd, err := readyz(t, anon, url); err != nil || code != http.StatusOK || !rd.Ready {
		t.Errorf("/readyz without a certificate: %d %+v %v", code, rd, err)
	}

	// Before bootstrap: no token can be valid; a server certificate reads.
	if code, body, _ := get(t, anon, url+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics with no token before bootstrap: %d %q, want 401", code, body)
	}
	if code, body, _ := get(t, anon, url+"/metrics", "made-up"); code != http.StatusForbidden || !strings.Contains(body, "not bootstrapped") {
		t.Errorf("/metrics with a token before bootstrap: %d %q, want 403 saying ACLs are not bootstrapped", code, body)
	}
	srvCert := httpsClient(p.store(pki.RoleServer, "s9"))
	if code, body, _ := get(t, srvCert, url+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "rctl_tasks") {
		t.Errorf("/metrics with a server certificate: %d, want 200 with metrics", code)
	}

	root := c.bootstrap(p)
	mgmt := c.clientWith(rpc.Credentials{TLS: p.store(pki.RoleOperator, "root"), Token: root})
	var reader, operator rpc.ACLTokenReply
	if err := mgmt.Call(ctxT(t, 10*time.Second), rpc.MethodACLTokenCreate, &rpc.ACLTokenCreateArgs{Role: fsm.ACLReader}, &reader); err != nil {
		t.Fatal(err)
	}
	if err := mgmt.Call(ctxT(t, 10*time.Second), rpc.MethodACLTokenCreate, &rpc.ACLTokenCreateArgs{Role: fsm.ACLOperator}, &operator); err != nil {
		t.Fatal(err)
	}
	opCert := httpsClient(p.store(pki.RoleOperator, "prometheus"))
	for _, tc := range []struct {
		name   string
		client *http.Client
		token  string
		want   int
	}{
		{"no token", anon, "", http.StatusUnauthorized},
		{"operator certificate, no token", opCert, "", http.StatusUnauthorized},
		{"unknown token", anon, "not-a-token", http.StatusForbidden},
		{"reader token", anon, reader.Secret, http.StatusOK},
		{"reader token and operator certificate", opCert, reader.Secret, http.StatusOK},
		{"operator token", anon, operator.Secret, http.StatusOK},
		{"management token", anon, root, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := get(t, tc.client, url+"/metrics", tc.token)
			if err != nil || code != tc.want {
				t.Fatalf("/metrics: %d %v, want %d (%q)", code, err, tc.want, firstLine(body))
			}
			if tc.want == http.StatusOK && !strings.Contains(body, "rctl_rpc_request_duration_seconds") {
				t.Fatalf("200 without rctl's metrics")
			}
			if tc.want != http.StatusOK && strings.Contains(body, "rctl_") {
				t.Fatalf("a refusal carried metrics")
			}
		})
	}
	// A revoked token is refused again.
	if err := mgmt.Call(ctxT(t, 10*time.Second), rpc.MethodACLTokenRevoke, &rpc.ACLTokenRevokeArgs{AccessorID: reader.Token.AccessorID}, nil); err != nil {
		t.Fatal(err)
	}
	succeedsWithin(t, 5*time.Second, func() error {
		if code, _, _ := get(t, anon, url+"/metrics", reader.Secret); code != http.StatusForbidden {
			return fmt.Errorf("revoked reader token: %d, want 403", code)
		}
		return nil
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestMetricsAddrInUseFailsStart: a server whose metrics address is taken
// does not start, and leaves nothing running.
func TestMetricsAddrInUseFailsStart(t *testing.T) {
	c := newMetricsCluster(t, 1, nil)
	taken := c.servers[0].MetricsAddr()
	cfg := testConfig(t, "x1", freeAddrs(t, 1)[0], t.TempDir())
	s, err := New(cfg, WithMetrics(MetricsConfig{Addr: taken}))
	if err == nil {
		s.Shutdown()
		t.Fatalf("started with metrics-addr %s in use", taken)
	}
	if !strings.Contains(err.Error(), "metrics-addr") {
		t.Fatalf("error does not name the flag: %v", err)
	}
	// Its raft port is free again.
	s, err = New(cfg)
	if err != nil {
		t.Fatalf("restart on the same data dir and port: %v", err)
	}
	s.Shutdown()
}
