package cluster

// The metrics listener (rctl serve --metrics-addr): Prometheus /metrics,
// /healthz and /readyz on their own address, apart from the Raft/RPC port.
//
// What /metrics holds:
//   - hashicorp/raft's and raft-boltdb's own metrics, which do not go to
//     the same place: raft 1.8.0 imports github.com/hashicorp/go-metrics
//     itself (whatever the build tags), while raft-boltdb/v2 2.3.1 emits
//     through github.com/hashicorp/go-metrics/compat, which forwards to
//     armon/go-metrics unless the binary is built with -tags
//     hashicorpmetrics (goreleaser.yaml does) and to hashicorp/go-metrics
//     with it. A sink registered with one library alone receives only
//     half. So a Prometheus sink is made the global sink of
//     hashicorp/go-metrics, and another, through compat, of whichever
//     library compat selected when that is a different one.
//     TestMetricsOfAThreeServerCluster fails if raft's commit time or
//     raft-boltdb's gauges are missing.
//   - rctl's own metrics (rctl_…), from prometheus/client_golang: counters
//     bumped where things happen (rpc dispatch, heartbeats, liveness
//     verdicts, elections, placement, succession) and gauges computed on
//     scrape from counts the manifest keeps (no scan of the task table).
//
// Security: with TLS the listener serves HTTPS with the server's own
// certificate (the same pki.Store, so SIGHUP reloads apply); a client
// certificate is verified when one is presented but not required, so a
// load balancer can probe the health endpoints. /metrics needs an ACL
// token of the reader role or higher (Authorization: Bearer), or a server
// certificate, exactly as a reader RPC call would; before ACLs are
// bootstrapped no token exists, so only server certificates may read it.
// /healthz and /readyz are open: they reveal the raft state, term,
// indexes and the leader's id, nothing of the manifest. With --insecure:
// plain HTTP, no token.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	hmetrics "github.com/hashicorp/go-metrics"
	compat "github.com/hashicorp/go-metrics/compat"
	compatprom "github.com/hashicorp/go-metrics/compat/prometheus"
	hmetricsprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// MetricsConfig configures the metrics listener.
type MetricsConfig struct {
	// Addr is the host:port to serve /metrics, /healthz and /readyz on.
	// Empty: no listener, and no metric is recorded at all.
	Addr string
	// ReadyMaxLag is how many committed entries a server may have left to
	// apply and still be ready (/readyz). Default DefaultReadyMaxLag.
	ReadyMaxLag uint64
}

// DefaultReadyMaxLag is MetricsConfig.ReadyMaxLag's default: at the
// write rates measured on loopback (bench/RESULTS.md) a follower applies
// that many entries in well under a second.
const DefaultReadyMaxLag = 1000

// Option adjusts a server being built by New.
type Option func(*Server)

// WithMetrics serves the metrics listener described by mc (see the top of
// metrics.go). New fails if mc.Addr cannot be bound.
func WithMetrics(mc MetricsConfig) Option {
	return func(s *Server) { s.metricsCfg = mc }
}

// metricsHTTPTimeout bounds reading a request and writing a response on
// the metrics listener.
const metricsHTTPTimeout = 10 * time.Second

// raftSink is the process's go-metrics sink: go-metrics has one global
// sink, so every server in the process (tests run several) shares it.
var raftSink struct {
	once sync.Once
	regs prometheus.Gatherers
	err  error
}

// installRaftSink makes Prometheus sinks the global sinks of
// hashicorp/go-metrics (raft) and of the library compat forwards to
// (raft-boltdb), once per process, and returns the registry they report
// into.
func installRaftSink() (prometheus.Gatherers, error) {
	raftSink.once.Do(func() {
		reg := prometheus.NewRegistry()
		opts := hmetricsprom.DefaultPrometheusOpts
		opts.Registerer = reg
		sink, err := hmetricsprom.NewPrometheusSinkFrom(opts)
		if err != nil {
			raftSink.err = fmt.Errorf("raft metrics sink: %w", err)
			return
		}
		conf := hmetrics.DefaultConfig("")
		conf.EnableHostname = false       // no host name in metric names
		conf.EnableHostnameLabel = false  // Prometheus adds instance itself
		conf.EnableRuntimeMetrics = false // client_golang's Go collector has them
		conf.EnableServiceLabel = false
		if _, err := hmetrics.NewGlobal(conf, sink); err != nil {
			raftSink.err = fmt.Errorf("raft metrics sink: %w", err)
			return
		}
		if compatIsHashicorp() {
			raftSink.regs = prometheus.Gatherers{reg} // built with -tags hashicorpmetrics: one library
			return
		}
		creg := prometheus.NewRegistry()
		copts := compatprom.DefaultPrometheusOpts
		copts.Registerer = creg
		csink, err := compatprom.NewPrometheusSinkFrom(copts)
		if err != nil {
			raftSink.err = fmt.Errorf("raft-boltdb metrics sink: %w", err)
			return
		}
		cconf := compat.DefaultConfig("")
		cconf.EnableHostname, cconf.EnableHostnameLabel = false, false
		cconf.EnableRuntimeMetrics, cconf.EnableServiceLabel = false, false
		if _, err := compat.NewGlobal(cconf, csink); err != nil {
			raftSink.err = fmt.Errorf("raft-boltdb metrics sink: %w", err)
			return
		}
		raftSink.regs = prometheus.Gatherers{reg, creg}
	})
	return raftSink.regs, raftSink.err
}

// compatIsHashicorp reports whether go-metrics' compat package forwards
// to hashicorp/go-metrics (built with -tags hashicorpmetrics) rather than
// to armon/go-metrics: its types are then hashicorp's own.
func compatIsHashicorp() bool {
	return reflect.TypeFor[compat.Metrics]() == reflect.TypeFor[hmetrics.Metrics]()
}

// rpcCodes are the codes an RPC answer can carry, "" (success) first;
// their order indexes metrics.rpc's children.
var rpcCodes = []rpc.Code{"", rpc.CodeNotLeader, rpc.CodeNotFound, rpc.CodeInvalidArgument, rpc.CodeConflict,
	rpc.CodeUnavailable, rpc.CodeDeadlineExceeded, rpc.CodePermissionDenied, rpc.CodeInternal}

func codeSlot(c rpc.Code) int {
	switch c {
	case "":
		return 0
	case rpc.CodeNotLeader:
		return 1
	case rpc.CodeNotFound:
		return 2
	case rpc.CodeInvalidArgument:
		return 3
	case rpc.CodeConflict:
		return 4
	case rpc.CodeUnavailable:
		return 5
	case rpc.CodeDeadlineExceeded:
		return 6
	case rpc.CodePermissionDenied:
		return 7
	}
	return 8 // internal, and anything unforeseen
}

func codeLabel(c rpc.Code) string {
	if c == "" {
		return "ok"
	}
	return string(c)
}

// unknownMethod labels calls of a method the server does not know: the
// name is the caller's, so it never becomes a label value.
const unknownMethod = "unknown"

// rpcChildren are one method's pre-resolved metric children.
type rpcChildren struct {
	byCode    [9]prometheus.Observer
	forwarded prometheus.Counter
}

// metrics are the rctl_… metrics one server records. A nil *metrics (no
// --metrics-addr) records nothing; every method checks.
type metrics struct {
	reg *prometheus.Registry

	rpcDur   *prometheus.HistogramVec
	rpcFwd   *prometheus.CounterVec
	rpc      map[string]*rpcChildren // by method; read-only once serving
	rpcOther *rpcChildren

	heartbeats     prometheus.Counter
	nodeMarked     map[fsm.NodeStatus]prometheus.Counter
	detection      prometheus.Observer
	requeued       prometheus.Counter
	leaderElected  prometheus.Counter
	leaderLost     prometheus.Counter
	leaderAcquired prometheus.Counter
	placementMoves prometheus.Counter
	successions    prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, rpc: map[string]*rpcChildren{}}
	f := registrar{reg}

	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rctl_rpc_request_duration_seconds",
		Help:    "Time from decoding an RPC request to its response, by method and code (ok or the error code). Calls of unknown methods count as method=\"unknown\".",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "code"})
	reg.MustRegister(dur)
	fwd := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rctl_rpc_forwarded_requests_total",
		Help: "RPC calls another server forwarded to this one (the leader) on a client's behalf, by method.",
	}, []string{"method"})
	reg.MustRegister(fwd)
	m.rpcDur, m.rpcFwd = dur, fwd
	m.rpcOther = m.resolve(unknownMethod)

	m.heartbeats = f.counter("rctl_node_heartbeats_total", "Node agent heartbeats this server accepted as the established leader.")
	marked := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rctl_node_status_changes_total",
		Help: "Node status changes this server committed as leader (liveness verdicts), by the new status: healthy, degraded or unreachable.",
	}, []string{"to"})
	reg.MustRegister(marked)
	m.nodeMarked = map[fsm.NodeStatus]prometheus.Counter{}
	for _, st := range []fsm.NodeStatus{fsm.NodeHealthy, fsm.NodeDegraded, fsm.NodeUnreachable} {
		m.nodeMarked[st] = marked.WithLabelValues(string(st))
	}
	det := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rctl_node_unreachable_detection_seconds",
		Help:    "Time since a node's last heartbeat when the leader marked it unreachable (its TTL plus the judging delay).",
		Buckets: []float64{1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60, 120, 300},
	})
	reg.MustRegister(det)
	m.detection = det
	m.requeued = f.counter("rctl_tasks_requeued_total", "Tasks the leader took back from nodes it marked unreachable (they went back to pending).")
	m.leaderElected = f.counter("rctl_raft_leader_elected_total", "Times this server saw a (new) leader: elections, transfers, and learning of the leader after a restart.")
	m.leaderLost = f.counter("rctl_raft_leader_lost_total", "Times this server lost track of the leader (no leader known until the next election).")
	m.leaderAcquired = f.counter("rctl_raft_leadership_acquired_total", "Times this server became the leader.")
	m.placementMoves = f.counter("rctl_leader_placement_moves_total", "Leadership transfers this server started as leader to move leadership into the preferred cloud.")
	m.successions = f.counter("rctl_leader_successions_total", "Times this server asked a successor to stand for election in place of a lost leader (succession).")

	reg.MustRegister(stateCollector{s})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) resolve(method string) *rpcChildren {
	c := &rpcChildren{forwarded: m.rpcFwd.WithLabelValues(method)}
	for i, code := range rpcCodes {
		c.byCode[i] = m.rpcDur.WithLabelValues(method, codeLabel(code))
	}
	return c
}

// resolveMethods creates the children of every method the RPC server
// serves. It runs before the first call is served; afterwards m.rpc is
// only read.
func (m *metrics) resolveMethods(methods []string) {
	for _, name := range methods {
		m.rpc[name] = m.resolve(name)
	}
}

// registrar registers plain counters.
type registrar struct{ reg *prometheus.Registry }

func (f registrar) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

// ObserveCall is rpc.CallObserver: one histogram observation (and a
// counter for forwarded calls), on children resolved when the server
// started; no allocation.
func (m *metrics) ObserveCall(method string, code rpc.Code, forwarded bool, took time.Duration) {
	c, ok := m.rpc[method]
	if !ok {
		c = m.rpcOther
	}
	c.byCode[codeSlot(code)].Observe(took.Seconds())
	if forwarded {
		c.forwarded.Inc()
	}
}

func (m *metrics) heartbeat() {
	if m != nil {
		m.heartbeats.Inc()
	}
}

// nodeJudged records a committed liveness verdict: held is how many tasks
// the node held before it (an unreachable verdict requeues them all). The
// detection time is the node's heartbeat age on this leader; a node not
// heard from since this leader took over (its grace period) has none.
func (m *metrics) nodeJudged(lv *liveness, nodeID string, to fsm.NodeStatus, held int) {
	if m == nil {
		return
	}
	if c := m.nodeMarked[to]; c != nil {
		c.Inc()
	}
	if to == fsm.NodeUnreachable {
		m.requeued.Add(float64(held))
		if age, ok := lv.Age(nodeID); ok {
			m.detection.Observe(age.Seconds())
		}
	}
}

func (m *metrics) leaderObserved(id raft.ServerID) {
	switch {
	case m == nil:
	case id == "":
		m.leaderLost.Inc()
	default:
		m.leaderElected.Inc()
	}
}

func (m *metrics) becameLeader() {
	if m != nil {
		m.leaderAcquired.Inc()
	}
}

func (m *metrics) placementMove() {
	if m != nil {
		m.placementMoves.Inc()
	}
}

func (m *metrics) succession() {
	if m != nil {
		m.successions.Inc()
	}
}

// heldBefore is how many tasks a liveness verdict may requeue (read
// before it is proposed); 0 when nothing is recorded.
func (m *metrics) heldBefore(s *Server, nodeID string, to fsm.NodeStatus) int {
	if m == nil || to != fsm.NodeUnreachable {
		return 0
	}
	return s.fsm.HeldCount(nodeID)
}

// stateCollector computes the gauges on each scrape from raft and from
// the counts the manifest keeps (fsm.TaskCounts reads counters, not
// tasks). Nodes by status walk the node list: one pass over at most a
// few thousand nodes per scrape.
type stateCollector struct{ s *Server }

var (
	descTasks       = prometheus.NewDesc("rctl_tasks", "Tasks in the manifest by status (this server's copy).", []string{"status"}, nil)
	descNodes       = prometheus.NewDesc("rctl_nodes", "Registered nodes by status (this server's copy).", []string{"status"}, nil)
	descTerm        = prometheus.NewDesc("rctl_raft_term", "This server's current raft term.", nil, nil)
	descState       = prometheus.NewDesc("rctl_raft_state", "1 for this server's raft state (follower, candidate, leader, shutdown), 0 for the others.", []string{"state"}, nil)
	descCommit      = prometheus.NewDesc("rctl_raft_commit_index", "The latest log index this server knows committed (on a follower: the leader's commit index from its last AppendEntries, capped at the local log).", nil, nil)
	descApplied     = prometheus.NewDesc("rctl_raft_applied_index", "The latest log index applied to this server's manifest.", nil, nil)
	descLast        = prometheus.NewDesc("rctl_raft_last_index", "The latest index in this server's log (or its latest snapshot).", nil, nil)
	descLastContact = prometheus.NewDesc("rctl_raft_last_contact_seconds", "On a follower: time since it last heard from the leader (-1: never since start). 0 on the leader.", nil, nil)
	descReady       = prometheus.NewDesc("rctl_ready", "1 while /readyz answers 200, else 0.", nil, nil)
	descSnapSize    = prometheus.NewDesc("rctl_snapshot_last_size_bytes", "Size of the newest raft snapshot on this server's disk (0: none).", nil, nil)
	descSnapIndex   = prometheus.NewDesc("rctl_snapshot_last_index", "Log index the newest raft snapshot on this server's disk covers (0: none).", nil, nil)
	raftStates      = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasks, descNodes, descTerm, descState, descCommit, descApplied,
		descLast, descLastContact, descReady, descSnapSize, descSnapIndex} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for st, n := range s.fsm.TaskCounts() {
		gauge(descTasks, float64(n), string(st))
	}
	nodes := map[fsm.NodeStatus]int{fsm.NodeHealthy: 0, fsm.NodeDegraded: 0, fsm.NodeUnreachable: 0}
	for _, n := range s.fsm.Nodes() {
		nodes[n.Status]++
	}
	for st, n := range nodes {
		gauge(descNodes, float64(n), string(st))
	}
	rd := s.readiness(time.Now())
	gauge(descTerm, float64(rd.Term))
	state := s.raft.State()
	for _, st := range raftStates {
		v := 0.0
		if st == state {
			v = 1
		}
		gauge(descState, v, strings.ToLower(st.String()))
	}
	gauge(descCommit, float64(s.raft.CommitIndex()))
	gauge(descApplied, float64(rd.AppliedIndex))
	gauge(descLast, float64(rd.LastIndex))
	switch {
	case state == raft.Leader:
		gauge(descLastContact, 0)
	case rd.LastContactMS < 0:
		gauge(descLastContact, -1)
	default:
		gauge(descLastContact, time.Since(s.raft.LastContact()).Seconds())
	}
	ready := 0.0
	if rd.Ready {
		ready = 1
	}
	gauge(descReady, ready)
	var size, index float64
	if metas, err := s.snaps.List(); err == nil && len(metas) > 0 {
		size, index = float64(metas[0].Size), float64(metas[0].Index)
	}
	gauge(descSnapSize, size)
	gauge(descSnapIndex, index)
}

// Readiness is /readyz's answer (JSON). docs/operations.md, "Monitoring",
// documents the fields.
type Readiness struct {
	Ready    bool   `json:"ready"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
	Term     uint64 `json:"term"`
	// AppliedIndex and LastIndex are this server's; Lag is how many
	// entries it knows committed but has not applied yet.
	AppliedIndex uint64 `json:"applied_index"`
	LastIndex    uint64 `json:"last_index"`
	Lag          uint64 `json:"lag"`
	// LastContactMS is the time since the leader was last heard from (a
	// follower), 0 on the leader, -1 when never heard from.
	LastContactMS int64 `json:"last_contact_ms"`
	// Reason says why the server is not ready ("" when it is).
	Reason string `json:"reason,omitempty"`
}

// readiness decides /readyz from this server's raft state now.
func (s *Server) readiness(now time.Time) Readiness {
	r := s.raft
	_, leader := r.LeaderWithID()
	in := readinessInput{state: r.State(), leader: string(leader), leaderReady: s.LeaderReady(),
		term: r.CurrentTerm(), commit: r.CommitIndex(), applied: r.AppliedIndex(), last: r.LastIndex(),
		lastContact: r.LastContact(), now: now, electionTimeout: s.timing.ElectionTimeout,
		profile: s.timing.Name, maxLag: s.metricsCfg.ReadyMaxLag}
	return in.decide()
}

// readinessInput is what readiness looks at, taken from raft at one
// moment (so the rule below is a pure function, tested by table).
type readinessInput struct {
	state                 raft.RaftState
	leader                string
	leaderReady           bool // this server leads and has established its leadership (leaderLoop)
	term                  uint64
	commit, applied, last uint64
	lastContact, now      time.Time // lastContact zero: never heard from a leader
	electionTimeout       time.Duration
	profile               string
	maxLag                uint64 // 0: DefaultReadyMaxLag
}

// decide is the readiness rule: this server knows a leader; a leader has
// established its leadership (leaderLoop); a follower heard from the
// leader within one election timeout of the timing profile; and at most
// maxLag committed entries wait to be applied. The commit index a
// follower knows is the leader's, from its last AppendEntries, capped at
// the follower's own last log index (raft's rule).
func (in readinessInput) decide() Readiness {
	rd := Readiness{State: strings.ToLower(in.state.String()), LeaderID: in.leader, Term: in.term,
		AppliedIndex: in.applied, LastIndex: in.last, LastContactMS: -1}
	if in.commit > in.applied {
		rd.Lag = in.commit - in.applied
	}
	switch {
	case in.state == raft.Leader:
		rd.LastContactMS = 0
	case !in.lastContact.IsZero():
		rd.LastContactMS = in.now.Sub(in.lastContact).Milliseconds()
	}
	maxLag := in.maxLag
	if maxLag == 0 {
		maxLag = DefaultReadyMaxLag
	}
	switch {
	case in.state == raft.Shutdown:
		rd.Reason = "the server is shutting down"
	case in.state == raft.Leader && !in.leaderReady:
		rd.Reason = "this server was just elected leader and its manifest does not hold every entry of earlier terms yet"
	case in.state == raft.Leader:
	case in.leader == "":
		rd.Reason = "no leader known: an election is under way or this server is cut off from the majority"
	case in.lastContact.IsZero():
		rd.Reason = "no contact with the leader since this server started"
	case in.now.Sub(in.lastContact) > in.electionTimeout:
		rd.Reason = fmt.Sprintf("no contact with the leader %s for %d ms (more than the %s profile's election timeout, %d ms)",
			in.leader, rd.LastContactMS, in.profile, in.electionTimeout.Milliseconds())
	}
	if rd.Reason == "" && rd.Lag > maxLag {
		rd.Reason = fmt.Sprintf("%d committed entries not applied yet (more than --ready-max-lag %d)", rd.Lag, maxLag)
	}
	rd.Ready = rd.Reason == ""
	return rd
}

// metricsServer is the HTTP(S) listener.
type metricsServer struct {
	ln   net.Listener
	http *http.Server
	done chan struct{}
}

// listenMetrics binds the metrics listener (New calls it before raft
// starts, so a taken address fails the start with nothing to undo) and
// installs the raft metrics sinks.
func (s *Server) listenMetrics() (net.Listener, error) {
	if _, err := installRaftSink(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.metricsCfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("metrics-addr %s: %w (is another process using the port?)", s.metricsCfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, metricsTLSConfig(s.cfg.TLS))
	}
	return ln, nil
}

// serveMetrics serves the metrics listener ln.
func (s *Server) serveMetrics(ln net.Listener) {
	raftRegs, _ := installRaftSink() // installed by listenMetrics
	gather := append(prometheus.Gatherers{s.metrics.reg}, raftRegs...)
	metricsHandler := promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}, ErrorHandling: promhttp.ContinueOnError})
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := s.readiness(time.Now())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rd)
	})
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, msg := s.authorizeMetrics(r); status != http.StatusOK {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rctl metrics"`)
			}
			http.Error(w, msg, status)
			return
		}
		metricsHandler.ServeHTTP(w, r)
	}))
	ms := &metricsServer{ln: ln, done: make(chan struct{}), http: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsHTTPTimeout,
		ReadTimeout:       metricsHTTPTimeout,
		WriteTimeout:      metricsHTTPTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// TLS handshake failures (a plaintext client, say) at debug.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}}
	s.metricsSrv = ms
	go func() {
		defer close(ms.done)
		if err := ms.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	// raft-boltdb's own gauges (free pages, tx counts), once a second.
	s.goFunc(func() { s.store.RunMetrics(s.ctx, 0) })
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	s.log.Info("metrics listener started", "metrics_addr", ln.Addr().String(), "scheme", scheme)
}

// metricsShutdownTimeout is how long a stopping server lets scrapes in
// flight finish before it closes their connections.
const metricsShutdownTimeout = 2 * time.Second

// stopMetrics closes the metrics listener (Shutdown).
func (s *Server) stopMetrics() {
	ms := s.metricsSrv
	if ms == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
	defer cancel()
	if err := ms.http.Shutdown(ctx); err != nil {
		ms.http.Close()
	}
	<-ms.done
}

// MetricsAddr is the address the metrics listener is bound to ("" when
// there is none).
func (s *Server) MetricsAddr() string {
	if s.metricsSrv == nil {
		return ""
	}
	return s.metricsSrv.ln.Addr().String()
}

// authorizeMetrics decides a /metrics request: 200, 401 (no token) or
// 403, with a sentence for the refusal.
func (s *Server) authorizeMetrics(r *http.Request) (int, string) {
	if s.cfg.Insecure {
		return http.StatusOK, ""
	}
	if r.TLS != nil {
		// A server certificate holds every right, as on the RPC port.
		if id, err := pki.PeerIdentity(*r.TLS); err == nil && id.Role == pki.RoleServer {
			return http.StatusOK, ""
		}
	}
	secret, hasAuth := bearer(r)
	if err := s.rpc.AuthorizeToken(secret, fsm.ACLReader); err != nil {
		if !hasAuth {
			return http.StatusUnauthorized, err.Error()
		}
		return http.StatusForbidden, err.Error()
	}
	return http.StatusOK, ""
}

// bearer returns the token of an "Authorization: Bearer <secret>" header;
// ok reports whether the request carried an Authorization header at all.
func bearer(r *http.Request) (secret string, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(rest), true
}

// metricsTLSConfig serves the server's own certificate, current at each
// handshake (SIGHUP reloads apply), and verifies a client certificate
// when one is presented without requiring one.
func metricsTLSConfig(store *pki.Store) *tls.Config {
	base := store.ServerConfig()
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := base.GetConfigForClient(hello)
			if err != nil {
				return nil, err
			}
			c.ClientAuth = tls.VerifyClientCertIfGiven
			c.NextProtos = []string{"http/1.1"}
			return c, nil
		},
	}
}

// slogPrinter routes promhttp's error log to the server's logger.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.log.Warn("metrics: "+strings.TrimSpace(fmt.Sprintln(v...)), "event", "metrics_error")
}
