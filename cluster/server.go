package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// logCacheSize is how many of the latest raft entries are kept in memory.
const logCacheSize = 128

// Server is one rctl control-plane server: a Raft peer holding the task
// manifest, serving RPC and Raft on one port.
type Server struct {
	cfg    Config
	log    *slog.Logger
	timing Timing

	dir   *dataDir
	store *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
	trans *raft.NetworkTransport
	mux   *mux
	fsm   *fsm.FSM
	raft  *raft.Raft
	hlog  hclog.Logger  // raft's own log lines, through cfg.LogOutput
	logs  raft.LogStore // raft's log (cached) as raft reads it: awaitApplied
	rpc   *rpc.Server

	metricsCfg MetricsConfig  // WithMetrics; Addr "" for none
	metrics    *metrics       // nil without a metrics listener
	metricsSrv *metricsServer // metrics.go

	clock  Clock
	liveMu sync.Mutex
	live   *liveness // non-nil while leading

	raftReady          atomic.Pointer[raft.Raft] // s.raft, once set: raftguard.go's view reads it
	goneMu             sync.Mutex                // raftguard.go: the last leader succession found gone
	goneID             raft.ServerID
	goneAt             time.Time
	lastLeaderAddr     raft.ServerAddress // goneMu: the last leader known (succession.go)
	lastLeaderID       raft.ServerID
	leaderReady        atomic.Bool
	commitLat          latencyWindow // latency.go: Propose, apply to result
	logSyncLat         latencyWindow // latency.go: log batches stored
	probing            atomic.Bool   // succession.go: a leader probe is running
	rpcWarmMu          sync.Mutex    // warm.go: RPC dials in flight
	rpcWarmDialing     map[string]bool
	silenceNoticed     atomic.Int64  // succession.go: unix nanos watchLeader first saw the current silence (0: none)
	succMu             sync.Mutex    // succession.go: one attempt to stand at a time
	lastSuccessor      atomic.Value  // succession.go: id of the last server this one asked to stand
	lastLeaderChange   atomic.Int64  // unix nanos
	configIndex        atomic.Uint64 // configindex.go: kept apart from the manifest
	raftMoved          signal        // fired on raft's state and leader changes and vote requests (observe)
	staleCandidateTerm atomic.Uint64 // succession.go: the last term whose candidate's log was behind ours
	replicatedAt       atomic.Int64  // succession.go: unix nanos of the last replication AppendEntries (0: none since start)
	replicatedCommit   atomic.Uint64 // succession.go: the highest leader commit index those carried
	leaderMoved        signal        // fired at each leader change and when leadership is established (transfer.go)
	logGrew            signal        // fired when entries reach raft's log (termopen.go)
	notifyCh           chan bool
	observerCh         chan raft.Observation
	observer           *raft.Observer

	shutdownOnce sync.Once
	shutdownCh   chan struct{}
	ctx          context.Context // cancelled when Shutdown starts
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

var _ rpc.Backend = (*Server)(nil)

// New opens the data directory, starts Raft and begins serving on
// cfg.Bind. On a fresh data directory it bootstraps from cfg.Peers (or as
// a single-server cluster when neither Peers nor Join is set) and joins
// through cfg.Join otherwise. Options add what Config does not hold
// (WithMetrics). On error nothing is left running.
func New(cfg Config, opts ...Option) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := newServer(cfg, opts)
	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
			s.cancel()
		}
	}()
	if err := s.openStores(&undo); err != nil {
		return nil, err
	}
	metricsLn, err := s.listen(&undo)
	if err != nil {
		return nil, err
	}
	rc, err := s.raftConfig()
	if err != nil {
		return nil, err
	}
	if err := s.bootstrapIfNew(rc); err != nil {
		return nil, err
	}
	if err := s.startRaft(rc); err != nil {
		return nil, err
	}
	s.startRPC(metricsLn)
	s.startLoops()
	s.log.Info("rctl server started", "bind", cfg.Bind, "advertise", cfg.Advertise,
		"timing", s.timing.Name, "cloud", cfg.Cloud, "region", cfg.Region)
	return s, nil
}

// Raft settings that are not a matter of timing (those are in the timing
// profiles, timing.go).
const (
	// transportPool is how many idle connections raft's transport keeps to
	// each peer (vote, heartbeats, pipeline: warm.go keeps as many ready).
	transportPool = 3
	// transportTimeout bounds one raft RPC's write and, for everything but
	// InstallSnapshot, its answer.
	transportTimeout = 10 * time.Second
	// maxAppendEntries is the most entries one AppendEntries carries, and
	// the most writes the leader groups into one log write (group commit:
	// 256 concurrent clients share one fsync). raft has no byte bound: a
	// follower catching up on a log of 385 KB Task.Add batches (the largest
	// a 16 MiB RPC frame yields after encoding) receives up to ~96 MB in one
	// AppendEntries. Lowering it to raft's default 64 bounds that to ~24 MB
	// but splits group commits; bench/ has the throughput at stake.
	maxAppendEntries = 256
	// snapshotsRetained is how many snapshots the data directory keeps.
	snapshotsRetained = 3
)

// undoStack holds what New has started, to be stopped in reverse order if
// a later step fails.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

func (u undoStack) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

// newServer is the Server before anything is opened or started.
func newServer(cfg Config, opts []Option) *Server {
	timing, _ := TimingProfile(cfg.Timing)
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("node_id", cfg.NodeID), timing: timing,
		fsm: fsm.New(), notifyCh: make(chan bool, 16), observerCh: make(chan raft.Observation, 256),
		shutdownCh: make(chan struct{}), clock: cfg.Clock,
		hlog: hclog.New(&hclog.LoggerOptions{
			Name: "raft", Output: cfg.LogOutput, Level: hclog.LevelFromString(cfg.LogLevel),
			JSONFormat: cfg.LogJSON,
		}),
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// openStores opens the data directory (locking it), raft's log and stable
// store, and the snapshot store.
func (s *Server) openStores(undo *undoStack) (err error) {
	cfg := s.cfg
	if s.dir, err = openDataDir(cfg.DataDir, cfg.NodeID); err != nil {
		return err
	}
	undo.push(s.dir.close)

	s.store, err = raftboltdb.New(raftboltdb.Options{
		Path:        s.dir.raftDB(),
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true},
	})
	if err != nil {
		return fmt.Errorf("data-dir %s: cannot open the raft log %s (%v); if the file is corrupt, restore the server from its peers by moving the data dir away and joining again", cfg.DataDir, s.dir.raftDB(), err)
	}
	undo.push(func() { s.store.Close() })

	s.snaps, err = raft.NewFileSnapshotStoreWithLogger(s.dir.snapshotDir(), snapshotsRetained, s.hlog)
	if err != nil {
		return fmt.Errorf("data-dir %s: snapshot store: %w", cfg.DataDir, err)
	}
	return nil
}

// listen binds the server's port (RPC and raft share it through the mux)
// and, with WithMetrics, the metrics port, and builds raft's transport on
// the mux. Nothing is accepted yet: startLoops serves.
func (s *Server) listen(undo *undoStack) (metricsLn net.Listener, err error) {
	cfg := s.cfg
	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w (is another server using the port?)", cfg.Bind, err)
	}
	s.mux = newMux(ln, tcpAddr(cfg.Advertise), s.log)
	s.mux.self, s.mux.tls, s.mux.limits = cfg.NodeID, cfg.TLS, cfg.ConnLimits
	s.mux.dial = cfg.Dial
	warmAge := warmRefresh
	if cfg.TLS == nil {
		warmAge = warmRefreshPlain
	}
	s.mux.warm = newWarmPool(s.mux.dialTLS, warmAge)
	undo.push(s.mux.warm.close)
	s.mux.raftClosed = s.raftConnClosed
	undo.push(s.mux.close)
	if s.metricsCfg.Addr != "" {
		if metricsLn, err = s.listenMetrics(); err != nil {
			return nil, err
		}
		undo.push(func() { metricsLn.Close() })
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          (*raftLayer)(s.mux),
		MaxPool:         transportPool,
		Timeout:         transportTimeout,
		MaxRPCsInFlight: s.timing.MaxRPCsInFlight,
		Logger:          s.hlog,
	})
	return metricsLn, nil
}

// raftConfig is raft's configuration: this server's id, the timing
// profile, and the snapshot settings.
func (s *Server) raftConfig() (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.Logger = s.hlog
	rc.NotifyCh = s.notifyCh
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.TrailingLogs = s.cfg.TrailingLogs
	rc.MaxAppendEntries = maxAppendEntries
	s.timing.apply(rc)
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}
	return rc, nil
}

// bootstrapIfNew writes the first raft configuration on a data directory
// without raft state: cfg.Peers, or this server alone when neither Peers
// nor Join is set. A server with Join is added by the cluster instead
// (joinLoop).
func (s *Server) bootstrapIfNew(rc *raft.Config) error {
	cfg := s.cfg
	hasState, err := raft.HasExistingState(s.store, s.store, s.snaps)
	if err != nil {
		return fmt.Errorf("data-dir %s: cannot read raft state: %w", cfg.DataDir, err)
	}
	if hasState {
		s.log.Info("recovering existing raft state", "data_dir", cfg.DataDir)
		return nil
	}
	if len(cfg.Join) > 0 {
		return nil
	}
	conf := raft.Configuration{}
	if len(cfg.Peers) == 0 {
		conf.Servers = []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(cfg.Advertise), Suffrage: raft.Voter}}
	}
	for _, p := range cfg.Peers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address), Suffrage: raft.Voter})
	}
	if err := raft.BootstrapCluster(rc, s.store, s.store, s.snaps, s.trans, conf); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.log.Info("bootstrapped a new cluster configuration", "servers", len(conf.Servers))
	return nil
}

// startRaft starts raft over the cached, timed log, the manifest and the
// transport (behind raftguard.go's checks), and observes it.
func (s *Server) startRaft(rc *raft.Config) error {
	logs, err := raft.NewLogCache(logCacheSize, timedLogStore{LogStore: s.store, lat: &s.logSyncLat, grew: &s.logGrew})
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	s.logs = logs
	guard := newRaftGuard(s.trans, s, s.log)
	guard.opener = s.openTerm
	s.noteSnapshotConfigIndex()
	r, err := raft.NewRaft(rc, raftFSM{FSM: s.fsm, s: s}, logs, s.store, s.snaps, guard)
	if err != nil {
		guard.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	s.raftReady.Store(r)
	s.observer = raft.NewObserver(s.observerCh, false, nil)
	s.raft.RegisterObserver(s.observer)
	return nil
}

// startRPC builds the RPC server (and the metrics it reports to) and
// hands the mux its RPC and snapshot handlers.
func (s *Server) startRPC(metricsLn net.Listener) {
	rcfg := rpc.Config{Backend: s, Logger: s.log, Version: s.cfg.Version,
		Dial: s.credentials().Dialer(), Insecure: s.cfg.Insecure}
	if s.metricsCfg.Addr != "" {
		s.metrics = newMetrics(s)
		rcfg.Observer = s.metrics
	}
	s.rpc = rpc.NewServer(rcfg)
	if s.metrics != nil {
		// Before the first call can arrive (mux.serve starts later).
		s.metrics.resolveMethods(s.rpc.Methods())
	}
	s.mux.rpc = s.rpc.ServeConn
	s.mux.snap = s.rpc.ServeSnapshot
	if metricsLn != nil {
		s.serveMetrics(metricsLn)
	}
}

// startLoops starts serving and the server's own loops: raft events,
// leadership duties, succession, recording its labels, warm connections,
// and joining when it was asked to.
func (s *Server) startLoops() {
	s.goFunc(s.mux.serve)
	s.goFunc(s.observe)
	s.goFunc(s.monitorLeadership)
	s.goFunc(s.watchLeader)
	s.goFunc(s.registerSelf)
	s.goFunc(s.warmPeers)
	if len(s.cfg.Join) > 0 {
		s.goFunc(s.joinLoop)
	}
}

func (s *Server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// credentials are what this server presents to other servers: its own
// certificate (or plaintext with --insecure), over Config.Dial.
func (s *Server) credentials() rpc.Credentials {
	return rpc.Credentials{TLS: s.cfg.TLS, Dial: s.cfg.Dial}
}

// Raft returns the raft instance.
func (s *Server) Raft() *raft.Raft { return s.raft }

// FSM returns the manifest.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Self returns this server's id, advertised address and labels.
func (s *Server) Self() fsm.Server {
	return fsm.Server{ID: s.cfg.NodeID, Address: s.cfg.Advertise, Cloud: s.cfg.Cloud, Region: s.cfg.Region}
}

// LeaderReady reports whether this server leads and has established its
// leadership (leaderLoop).
func (s *Server) LeaderReady() bool {
	return s.leaderReady.Load() && s.raft.State() == raft.Leader
}

// LastLeaderChange is when this server last saw a leader change.
func (s *Server) LastLeaderChange() time.Time {
	if n := s.lastLeaderChange.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// TimingProfile is the name of this server's --timing profile and the
// largest server-to-server round trip it is made for.
func (s *Server) TimingProfile() (name string, maxRTT time.Duration) {
	return s.timing.Name, s.timing.MaxRTT
}

// Addr is the advertised address.
func (s *Server) Addr() string { return s.cfg.Advertise }

// ListenAddr is the address actually bound (useful with port 0).
func (s *Server) ListenAddr() string { return s.mux.ln.Addr().String() }

// Shutdown stops serving, stops Raft and releases the data directory.
// It is safe to call more than once.
func (s *Server) Shutdown() error {
	var err error
	s.shutdownOnce.Do(func() {
		if s.cfg.TransferOnShutdown && s.raft.State() == raft.Leader {
			s.handOver()
		}
		close(s.shutdownCh)
		s.cancel()
		s.stopMetrics()
		s.rpc.Shutdown()
		// Refuse new connections first, then close the raft streams we
		// hold open to our peers: a leader's followers then see it gone
		// as they would see a crashed process, and one stands for
		// election at once (succession.go).
		s.mux.stopListening()
		if f := s.raft.Shutdown(); f.Error() != nil {
			err = f.Error()
		}
		s.raft.DeregisterObserver(s.observer)
		s.trans.CloseStreams()
		s.trans.Close()
		s.mux.close()
		if s.mux.warm != nil {
			s.mux.warm.close()
		}
		s.wg.Wait()
		if cerr := s.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
		s.dir.close()
		s.log.Info("rctl server stopped")
	})
	return err
}

// shutdownTransferTimeout bounds the leadership hand-over of a stopping
// leader (Config.TransferOnShutdown); systemd allows 90 s to stop.
const shutdownTransferTimeout = 5 * time.Second

// handOver transfers leadership before a leader stops, so the next write
// pays no election: the leader picks a live, caught-up voter itself. If
// that fails, stopping still hands over through succession (a closed port
// is evidence the leader is gone).
func (s *Server) handOver() {
	ctx, cancel := context.WithTimeout(s.ctx, shutdownTransferTimeout)
	defer cancel()
	t0 := time.Now()
	id, _, err := s.TransferLeadership(ctx, "")
	if err != nil {
		s.log.Warn("stopping leader could not hand over leadership; followers will elect a successor", "event", "leader_transfer", "err", err)
		return
	}
	s.log.Info("stopping leader handed over leadership", "event", "leader_transfer", "to", id, "took", time.Since(t0))
}

// Done is closed when Shutdown starts.
func (s *Server) Done() <-chan struct{} { return s.shutdownCh }

// observe logs raft events as structured lines with stable keys: event,
// term, leader (the leader's id, "" when none is known), and from/to for
// changes (previous and new leader, previous and new state).
// docs/operations.md, "Monitoring", lists them.
func (s *Server) observe() {
	var lastLeader raft.ServerID
	lastState := raft.Follower // raft starts every server as a follower
	for {
		select {
		case <-s.shutdownCh:
			return
		case o := <-s.observerCh:
			if req, ok := o.Data.(raft.RequestVoteRequest); ok {
				s.noteVoteRequest(req) // before waking succession, which reads it
			}
			switch o.Data.(type) {
			case raft.LeaderObservation, raft.RaftState, raft.RequestVoteRequest, raft.RequestPreVoteRequest:
				s.raftMoved.fire()
			}
			switch d := o.Data.(type) {
			case raft.LeaderObservation:
				s.lastLeaderChange.Store(time.Now().UnixNano())
				s.leaderChanged()
				s.metrics.leaderObserved(d.LeaderID)
				if d.LeaderID == "" {
					s.log.Warn("raft: leader lost", "event", "leader_change", "term", s.raft.CurrentTerm(),
						"leader", "", "from", string(lastLeader))
				} else {
					s.rememberLeader(d.LeaderAddr, d.LeaderID)
					s.log.Info("raft: leader elected", "event", "leader_change", "leader_id", string(d.LeaderID),
						"leader_addr", string(d.LeaderAddr), "term", s.raft.CurrentTerm(),
						"leader", string(d.LeaderID), "from", string(lastLeader), "to", string(d.LeaderID))
					lastLeader = d.LeaderID
				}
			case raft.RaftState:
				s.log.Info("raft: state changed", "event", "state_change", "state", d.String(), "term", s.raft.CurrentTerm(),
					"from", lastState.String(), "to", d.String(), "leader", s.leaderIDNow())
				lastState = d
			case raft.PeerObservation:
				if d.Removed {
					s.log.Info("raft: peer removed", "event", "membership_change", "peer_id", string(d.Peer.ID),
						"change", "removed", "term", s.raft.CurrentTerm(), "leader", s.leaderIDNow())
				} else {
					s.log.Info("raft: peer added", "event", "membership_change", "peer_id", string(d.Peer.ID),
						"peer_addr", string(d.Peer.Address), "suffrage", d.Peer.Suffrage.String(),
						"change", "added", "term", s.raft.CurrentTerm(), "leader", s.leaderIDNow())
				}
			case raft.FailedHeartbeatObservation:
				s.log.Warn("raft: heartbeat to follower failing", "event", "heartbeat_failed", "peer_id", string(d.PeerID),
					"last_contact", d.LastContact.Format(time.RFC3339Nano))
			case raft.ResumedHeartbeatObservation:
				s.log.Info("raft: heartbeat to follower resumed", "event", "heartbeat_resumed", "peer_id", string(d.PeerID))
			}
		}
	}
}

func (s *Server) leaderIDNow() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// monitorLeadership runs the leader's duties while this server leads.
func (s *Server) monitorLeadership() {
	var stop chan struct{}
	var done sync.WaitGroup
	for {
		select {
		case <-s.shutdownCh:
			if stop != nil {
				close(stop)
				done.Wait()
			}
			return
		case isLeader := <-s.notifyCh:
			switch {
			case isLeader && stop == nil:
				s.metrics.becameLeader()
				stop = make(chan struct{})
				done.Add(1)
				go func(stop chan struct{}) {
					defer done.Done()
					s.leaderLoop(stop)
				}(stop)
			case !isLeader && stop != nil:
				s.leaderReady.Store(false)
				close(stop)
				done.Wait()
				stop = nil
			}
		}
	}
}

// Durations of the server's own background calls.
const (
	// labelsCallTimeout and joinCallTimeout bound one call this server
	// makes through the cluster for itself: recording its labels, and
	// asking to join (which waits for the configuration change to commit).
	labelsCallTimeout = 10 * time.Second
	joinCallTimeout   = 15 * time.Second
	// retryFirst and retryMax are the backoff of those calls: doubling
	// from the first to the max.
	retryFirst = 200 * time.Millisecond
	retryMax   = 5 * time.Second
)

// leaderLoop establishes leadership, then runs the leader's duties
// (liveness, scheduling) until leadership ends (stop).
//
// Established means the manifest holds every entry of earlier terms: then
// it holds every write ever acknowledged (a leader's log holds every
// committed entry), and reads confirmed with a quorum are linearizable
// (ReadBarrier). The classic proof is a barrier entry of the new term
// applied: two round trips to a quorum after the election, since raft
// sends the barrier only behind the new term's no-op. rctl waits instead
// for the manifest to apply the last command entry of an earlier term in
// this server's log (awaitApplied). The manifest applies only committed
// entries, so that entry and all before it are committed, and no entry
// of an earlier term can be committed that this log does not hold. On a
// follower that had applied its whole log, which is the rule on a busy
// cluster and always on an idle one, leadership is established at the
// election. Otherwise it is established when the no-op commits (one round
// trip), which commits the rest.
func (s *Server) leaderLoop(stop chan struct{}) {
	t0 := time.Now()
	term := s.raft.CurrentTerm()
	ctx, cancel := context.WithCancel(s.ctx)
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	end, err := s.earlierTermsEnd(term)
	if err == nil {
		err = s.awaitApplied(ctx, end)
	}
	cancel()
	if err != nil {
		select {
		case <-stop:
			return // leadership ended while waiting
		default:
		}
		s.log.Error("could not establish leadership; stepping down", "term", term, "err", err)
		_ = s.raft.LeadershipTransfer()
		return
	}
	s.leaderReady.Store(true)
	s.log.Info("leadership established", "term", term, "earlier_terms_end", end,
		"applied_index", s.fsm.Indexes().Applied, "took", time.Since(t0).Round(time.Millisecond).String())
	s.leaderDuties(stop)
}

// earlierTermsEnd is the index of the last entry in this server's log
// from a term before term (0 if none): the log is walked down from its
// end over the entries of term (the no-op and the first writes). An
// entry compacted into a snapshot is older than any of term's entries.
func (s *Server) earlierTermsEnd(term uint64) (uint64, error) {
	var l raft.Log
	for i := s.raft.LastIndex(); i > 0; i-- {
		if err := s.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return i, nil
			}
			return 0, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Term < term {
			return i, nil
		}
	}
	return 0, nil
}

func (s *Server) liveTracker() *liveness {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	return s.live
}

// NodeHeartbeat records a node's heartbeat on the leader and returns the
// interval and TTL to hand back. ok is false when this server is not an
// established leader.
func (s *Server) NodeHeartbeat(nodeID string, draining bool) (interval, ttl time.Duration, ok bool) {
	lv := s.liveTracker()
	if lv == nil || !s.LeaderReady() {
		return 0, 0, false
	}
	lv.Heartbeat(nodeID, draining)
	s.metrics.heartbeat()
	n := s.fsm.NodeCount()
	return lv.Interval(n), lv.TTL(n), true
}

// NodeHeartbeatAge is how long ago the node heartbeated to this leader.
func (s *Server) NodeHeartbeatAge(nodeID string) (time.Duration, bool) {
	if lv := s.liveTracker(); lv != nil {
		return lv.Age(nodeID)
	}
	return 0, false
}

// HeartbeatParams is the interval and TTL for the current fleet size.
func (s *Server) HeartbeatParams() (interval, ttl time.Duration) {
	lv := s.liveTracker()
	if lv == nil {
		lv = newLiveness(s.cfg.Liveness, s.clock)
	}
	n := s.fsm.NodeCount()
	return lv.Interval(n), lv.TTL(n)
}

// ForgetNode drops a deregistered node from the liveness tracker.
func (s *Server) ForgetNode(nodeID string) {
	if lv := s.liveTracker(); lv != nil {
		lv.Forget(nodeID)
	}
}

// registerSelf records this server's labels in the manifest once, and
// again whenever they differ (after a restart with new labels).
func (s *Server) registerSelf() {
	want := s.Self()
	c := rpc.NewClientWith([]string{s.cfg.Advertise}, s.credentials())
	defer c.Close()
	backoff := retryFirst
	for {
		if cur := s.fsm.Server(want.ID); cur != nil && *cur == want {
			return
		}
		if s.inConfiguration() {
			ctx, cancel := context.WithTimeout(s.ctx, labelsCallTimeout)
			err := c.Call(ctx, rpc.MethodServerLabels, &rpc.ServerLabelsArgs{Server: want}, nil)
			cancel()
			if err == nil {
				continue
			}
			s.log.Debug("registering server labels failed; retrying", "err", err)
		}
		select {
		case <-s.shutdownCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, retryMax)
	}
}

func (s *Server) inConfiguration() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(s.cfg.NodeID) {
			return true
		}
	}
	return false
}

// joinLoop asks the servers in cfg.Join to add this one until it is in.
func (s *Server) joinLoop() {
	c := rpc.NewClientWith(s.cfg.Join, s.credentials())
	defer c.Close()
	backoff := retryFirst
	for {
		if s.inConfiguration() && s.raft.Leader() != "" {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, joinCallTimeout)
		err := c.Call(ctx, rpc.MethodRaftJoin, &rpc.JoinArgs{
			ID: s.cfg.NodeID, Address: s.cfg.Advertise, Voter: !s.cfg.NonVoter,
			Cloud: s.cfg.Cloud, Region: s.cfg.Region,
		}, nil)
		cancel()
		if err == nil {
			s.log.Info("joined the cluster", "via", c.Current(), "voter", !s.cfg.NonVoter)
			return
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("connection closed")
		}
		s.log.Warn("join failed; retrying", "join", s.cfg.Join, "err", err, "retry_in", backoff.String())
		select {
		case <-s.shutdownCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, retryMax)
	}
}
