package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/cluster"
)

type serveFlags struct {
	nodeID, dataDir, bind, advertise, peers, join string
	nonVoter                                      bool
	cloud, region, timing                         string
	logLevel, logFormat                           string
	snapshotThreshold, trailingLogs               uint64
	heartbeatInterval                             time.Duration
	preferCloud, placement                        string
	maxHeartbeatRate                              float64
	insecure                                      bool
	retainAge, retireInterval                     time.Duration
	retainMax                                     int
	maxConnsPerIP, maxConns                       int
	metricsAddr                                   string
	readyMaxLag                                   uint64
}

func newServeCommand(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a control-plane server (a Raft peer holding the task manifest)",
		Long: `Run an rctl server. It holds the Global Task Manifest in a Raft cluster and
answers RPC, all on one TCP port (--bind, default 0.0.0.0:50051).

Start a new cluster by giving every server the same --peers list; each
bootstraps the identical configuration on first start, so the command is safe
to run on all of them. Add a server to a running cluster with --join. State
lives in --data-dir and survives restarts (kill -9 included); a second server
on the same data dir is refused.

Security: the server requires mutual TLS. Give it --tls-ca, --tls-cert and
--tls-key, with a server certificate for its --node-id (rctl tls --help);
operators then need ACL tokens (rctl acl --help). Without TLS files it
refuses to start unless --insecure is given, which serves plaintext and lets
anyone who reaches the port do anything: for development only.
docs/security.md walks through a secure setup.

Monitoring: --metrics-addr HOST:PORT (off by default) serves Prometheus
/metrics, /healthz and /readyz on a listener of its own, HTTPS with this
server's certificate under TLS; /metrics then needs a reader token. With
--log-format json every line, raft's own included, is one JSON object, and
each raft event (leader elected or lost, state and membership changes)
carries event=, term=, leader= and from=/to= keys. docs/operations.md,
"Monitoring", lists the metrics and keys.

Every flag can also be set as RCTL_<FLAG>, e.g. RCTL_NODE_ID, RCTL_DATA_DIR.
SIGINT or SIGTERM stops the server cleanly: a leader first hands leadership
to a live, caught-up voter (up to 5 s), then the server closes its port and
its raft streams and exits 0. SIGHUP reloads the TLS files (the new
certificate must name the same server).`,
		Example: `  rctl serve --node-id aws-1 --data-dir /var/lib/rctl --bind 0.0.0.0:50051 \
    --advertise 10.0.1.5:50051 --cloud aws --region us-east-1 --timing wan \
    --peers aws-1=10.0.1.5:50051,aws-2=10.0.1.6:50051,gcp-1=10.1.0.5:50051`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(g, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nodeID, "node-id", "", "this server's stable id, e.g. aws-1 (required)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the raft log, stable store and snapshots (required)")
	fl.StringVar(&f.bind, "bind", "0.0.0.0:50051", "host:port to listen on for raft and RPC")
	fl.StringVar(&f.advertise, "advertise", "", "host:port other servers and clients reach this server at (default: --bind, which must then be a concrete address)")
	fl.StringVar(&f.peers, "peers", "", "static initial membership id1=host:port,id2=host:port,... (the same list on every server, this one included)")
	fl.StringVar(&f.join, "join", "", "host:port[,host:port...] of servers of a running cluster to join; retried until this server is in")
	fl.BoolVar(&f.nonVoter, "nonvoter", false, "with --join: join as a non-voter (replicates the log, never votes or leads)")
	fl.StringVar(&f.cloud, "cloud", "", "cloud label shown in listings and used for placement, e.g. aws or gcp: up to 64 of a-z 0-9 _ . - (lower case)")
	fl.StringVar(&f.region, "region", "", "region label shown in listings, e.g. us-east-1: up to 64 of a-z 0-9 _ . - (lower case)")
	fl.StringVar(&f.timing, "timing", "lan", "timing profile: lan (one datacenter) or wan (servers across clouds, RTT up to ~250 ms); see docs/operations.md")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json, for rctl's lines and raft's own alike (structured lines either way; json: one object per line)")
	fl.DurationVar(&f.heartbeatInterval, "heartbeat-interval", time.Second, "heartbeat interval handed to node agents while the fleet is small; a node is degraded after 2 intervals and unreachable after 3 intervals + 1s")
	fl.Float64Var(&f.maxHeartbeatRate, "max-heartbeat-rate", 10000, "bound on heartbeats per second across the fleet: the interval grows to nodes/rate seconds for large fleets")
	fl.StringVar(&f.preferCloud, "prefer-leader-cloud", "", "cloud the leader should live in; default: the cloud whose voters alone form a quorum (3 of a 3+2 layout), if any")
	fl.StringVar(&f.placement, "leader-placement", "auto", "auto: the leader hands leadership to a voter in the preferred cloud once the cluster has been healthy for 15s; off: never")
	fl.Uint64Var(&f.snapshotThreshold, "snapshot-threshold", 8192, "log entries since the last snapshot that trigger a new one")
	fl.Uint64Var(&f.trailingLogs, "trailing-logs", 10240, "log entries kept after a snapshot so lagging followers catch up without one")
	fl.DurationVar(&f.retainAge, "retain-finished", 24*time.Hour, "finished tasks (complete, failed, cancelled) are retired from the manifest this long after they finished; 0: no age rule. Each retired task leaves one event=task_retired line in the leader's log")
	fl.IntVar(&f.retainMax, "retain-finished-max", 100000, "keep at most this many tasks per finished status, retiring the oldest beyond it; 0: no count rule (both 0: keep everything forever)")
	fl.DurationVar(&f.retireInterval, "retire-interval", 30*time.Second, "how often the leader retires finished tasks by the two rules above (at most 20,000 per round; while a backlog lasts, rounds follow 1 s apart)")
	fl.BoolVar(&f.insecure, "insecure", false, "serve plaintext with no authentication or authorization: anyone who reaches the port owns the cluster (development only; exclusive with --tls-*)")
	fl.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", cluster.DefaultConnLimits().PerIP, "connections one remote IP may hold open; more are refused at accept")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "host:port for an HTTP listener apart from --bind serving /metrics (Prometheus), /healthz and /readyz; off when empty. With TLS it is HTTPS with this server's certificate and /metrics needs a reader token (Authorization: Bearer) once ACLs are bootstrapped; /healthz and /readyz are open and show only raft state, term, indexes and the leader's id. Bind it where only your monitoring reaches, e.g. 10.0.1.5:9100 (docs/operations.md, Monitoring)")
	fl.Uint64Var(&f.readyMaxLag, "ready-max-lag", cluster.DefaultReadyMaxLag, "/readyz answers 503 while this server has more than this many committed log entries left to apply (it also needs a known leader, and on a follower contact with it within the --timing profile's election timeout)")
	fl.IntVar(&f.maxConns, "max-conns", cluster.DefaultConnLimits().Total, "connections the server holds open in all; more are refused at accept (default: the open-file limit, ulimit -n, less 1024 kept for raft and snapshots; 10,000 agents hold 10,000 on the leader)")
	return cmd
}

func runServe(g *globals, f *serveFlags) error {
	cfg := cluster.Default()
	cfg.NodeID, cfg.DataDir, cfg.Bind, cfg.Advertise = f.nodeID, f.dataDir, f.bind, f.advertise
	cfg.NonVoter, cfg.Cloud, cfg.Region, cfg.Timing = f.nonVoter, f.cloud, f.region, f.timing
	cfg.SnapshotThreshold, cfg.TrailingLogs = f.snapshotThreshold, f.trailingLogs
	cfg.LogLevel, cfg.Version, cfg.LogOutput = f.logLevel, Version, g.stderr
	cfg.Liveness.MinInterval, cfg.Liveness.MaxRate = f.heartbeatInterval, f.maxHeartbeatRate
	cfg.Placement.PreferCloud = f.preferCloud
	cfg.TLS, cfg.Insecure = g.tls, f.insecure
	cfg.TransferOnShutdown = true
	if f.retainAge < 0 || f.retainMax < 0 || f.retireInterval < 100*time.Millisecond {
		return usagef("--retain-finished and --retain-finished-max must not be negative, --retire-interval at least 100ms")
	}
	cfg.Retention = cluster.RetentionConfig{MaxAge: f.retainAge, MaxPerStatus: f.retainMax, Interval: f.retireInterval,
		Disabled: f.retainAge == 0 && f.retainMax == 0}
	if f.maxConnsPerIP <= 0 || f.maxConns <= 0 {
		return usagef("--max-conns-per-ip and --max-conns must be positive")
	}
	cfg.ConnLimits = cluster.ConnLimits{PerIP: f.maxConnsPerIP, Total: f.maxConns}
	switch f.placement {
	case "auto":
	case "off":
		cfg.Placement.Disabled = true
	default:
		return usagef("--leader-placement %q is invalid; use auto or off", f.placement)
	}
	peers, err := cluster.ParsePeers(f.peers)
	if err != nil {
		return usageError{err}
	}
	cfg.Peers = peers
	for _, j := range strings.Split(f.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			cfg.Join = append(cfg.Join, j)
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usagef("--log-level %q is invalid; use debug, info, warn or error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch f.logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(g.stderr, opts))
		cfg.LogJSON = true
	default:
		return usagef("--log-format %q is invalid; use text or json", f.logFormat)
	}
	if err := cfg.Validate(); err != nil {
		return usageError{fmt.Errorf("serve: %w", err)}
	}
	if path := os.Getenv("RCTL_CPUPROFILE"); path != "" {
		// Diagnostics: a CPU profile of the whole run, written on shutdown.
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("serve: RCTL_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("serve: RCTL_CPUPROFILE: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var options []cluster.Option
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return usagef("--metrics-addr %q is not host:port: %v", f.metricsAddr, err)
		}
		if f.metricsAddr == f.bind {
			return usagef("--metrics-addr must differ from --bind (%s): metrics get their own listener", f.bind)
		}
		if f.readyMaxLag == 0 {
			return usagef("--ready-max-lag must be at least 1")
		}
		options = append(options, cluster.WithMetrics(cluster.MetricsConfig{Addr: f.metricsAddr, ReadyMaxLag: f.readyMaxLag}))
	}
	srv, err := cluster.New(cfg, options...)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if cfg.Insecure {
		cfg.Logger.Warn("serving plaintext with no authentication (--insecure): anyone who reaches the port owns the cluster")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	for s := range sig {
		if s == syscall.SIGHUP {
			reloadTLS(cfg)
			continue
		}
		cfg.Logger.Info("signal received; shutting down", "signal", s.String())
		break
	}
	return srv.Shutdown()
}

// reloadTLS re-reads the TLS files on SIGHUP; new handshakes use them,
// open connections keep theirs. A bad file keeps the old material.
func reloadTLS(cfg cluster.Config) {
	if cfg.TLS == nil {
		cfg.Logger.Info("SIGHUP: nothing to reload (--insecure)")
		return
	}
	if err := cfg.TLS.Reload(); err != nil {
		cfg.Logger.Error("TLS reload failed; keeping the current certificate", "event", "tls_reload", "err", err)
		return
	}
	cfg.Logger.Info("TLS files reloaded", "event", "tls_reload", "not_after", cfg.TLS.NotAfter().UTC().Format(time.RFC3339))
}
