package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// DefaultPort is the one TCP port a server listens on for Raft and RPC.
const DefaultPort = 50051

// Peer is one member of the static initial configuration.
type Peer struct {
	ID      string
	Address string
}

// Config configures a Server. Build one with Default, fill it, and call
// Validate (New does too).
type Config struct {
	// NodeID is the server's stable Raft id. Required.
	NodeID string
	// DataDir holds the Raft log, stable store and snapshots. Required.
	DataDir string
	// Bind is the host:port to listen on. Default 0.0.0.0:50051.
	Bind string
	// Advertise is the host:port other servers and clients use to reach
	// this one. Default: Bind, which must then not be a wildcard address.
	Advertise string
	// Peers is the static initial membership. Every server gets the same
	// list; each bootstraps the identical configuration on first start.
	Peers []Peer
	// Join lists servers of a running cluster to ask for membership.
	Join []string
	// NonVoter joins without a vote (only with Join).
	NonVoter bool
	// Cloud and Region label the server in listings.
	Cloud  string
	Region string
	// Timing is the name of the timing profile: lan or wan.
	Timing string
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a snapshot leaves in the log so a
	// slightly lagging follower catches up without a snapshot. Default 10240.
	TrailingLogs uint64
	// Logger receives the server's structured logs. Default slog.Default().
	Logger *slog.Logger
	// LogJSON makes the raft library log JSON lines too.
	LogJSON bool
	// LogLevel is the raft library's level: debug, info, warn, error.
	LogLevel string
	// Liveness sets heartbeat intervals and TTLs for node agents.
	Liveness LivenessConfig
	// Placement moves leadership into the preferred cloud.
	Placement PlacementConfig
	// Retention retires finished tasks (retire.go).
	Retention RetentionConfig
	// Clock is the time source for leader duties. Default: the real clock.
	Clock Clock
	// LogOutput receives the raft library's log lines. Default os.Stderr.
	LogOutput io.Writer
	// Version is reported in status.
	Version string
	// TLS is the server's certificate material: mutual TLS on the one
	// port, roles from certificates, ACL tokens for operators. Exactly one
	// of TLS and Insecure must be set.
	TLS *pki.Store
	// Insecure serves plaintext and authorizes nothing: anyone who reaches
	// the port owns the cluster. For development (`rctl dev`) only.
	Insecure bool
	// ConnLimits cap open connections (zero: DefaultConnLimits).
	ConnLimits ConnLimits
	// TransferOnShutdown makes a leader hand leadership to a live,
	// caught-up voter before Shutdown stops it (rctl serve sets it).
	TransferOnShutdown bool
	// Dial opens this server's connections to other servers: raft streams,
	// forwarded calls, leader probes and warm connections (TLS, when
	// configured, goes on top). Default rpc.DialTCP. The cluster tests put
	// an in-process network here that can cut a server off.
	Dial rpc.DialFunc
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		Bind:              fmt.Sprintf("0.0.0.0:%d", DefaultPort),
		Timing:            "lan",
		SnapshotThreshold: 8192,
		TrailingLogs:      10240,
		LogLevel:          "info",
		Version:           "dev",
		Liveness:          DefaultLiveness(),
		Placement:         DefaultPlacement(),
		Retention:         DefaultRetention(),
	}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Validate fills the defaults of unset fields (withDefaults), then checks
// the whole configuration (check). Errors are lowercase and name the flag.
func (c *Config) Validate() error {
	c.withDefaults()
	return c.check()
}

// withDefaults fills every unset field with its default, and Advertise
// from Bind when Bind names one address. It never fails: whatever it
// cannot fill, check reports.
func (c *Config) withDefaults() {
	if c.Dial == nil {
		c.Dial = rpc.DialTCP
	}
	if c.ConnLimits == (ConnLimits{}) {
		c.ConnLimits = DefaultConnLimits()
	}
	if c.Bind == "" {
		c.Bind = fmt.Sprintf("0.0.0.0:%d", DefaultPort)
	}
	if c.Advertise == "" {
		if host, _, err := net.SplitHostPort(c.Bind); err == nil {
			if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
				c.Advertise = c.Bind
			}
		}
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if lv := &c.Liveness; lv.MinInterval == 0 && lv.MaxRate == 0 && lv.TTLFactor == 0 {
		*lv = DefaultLiveness()
	}
	if pl := &c.Placement; pl.Interval == 0 && pl.Settle == 0 && pl.Backoff == 0 && pl.MaxLag == 0 {
		pin, off := pl.PreferCloud, pl.Disabled
		*pl = DefaultPlacement()
		pl.PreferCloud, pl.Disabled = pin, off
	}
	rt := &c.Retention
	if rt.Interval == 0 && rt.MaxAge == 0 && rt.MaxPerStatus == 0 && !rt.Disabled {
		*rt = DefaultRetention()
	}
	if rt.Disabled && rt.Interval == 0 {
		rt.Interval = DefaultRetention().Interval
	}
	if c.LogOutput == nil {
		c.LogOutput = os.Stderr
	}
}

// check reports the first thing wrong with the configuration; it changes
// nothing.
func (c *Config) check() error {
	if c.NodeID == "" {
		return errors.New("node-id is required (a stable name such as aws-1)")
	}
	if !idRE.MatchString(c.NodeID) {
		return fmt.Errorf("node-id %q is invalid: use letters, digits, '.', '_', ':', '-' (at most 128, starting with a letter or digit)", c.NodeID)
	}
	if c.DataDir == "" {
		return errors.New("data-dir is required (where the raft log and snapshots live)")
	}
	if c.ConnLimits.PerIP < 0 || c.ConnLimits.Total < 0 {
		return errors.New("connection limits must not be negative")
	}
	if err := checkHostPort("bind", c.Bind, true); err != nil {
		return err
	}
	if c.Advertise == "" {
		return fmt.Errorf("advertise is required when bind (%s) is a wildcard address: give the address other servers reach this one at", c.Bind)
	}
	if err := checkHostPort("advertise", c.Advertise, false); err != nil {
		return err
	}
	if _, err := TimingProfile(c.Timing); err != nil {
		return fmt.Errorf("timing: unknown profile %q; use lan or wan", c.Timing)
	}
	if len(c.Peers) > 0 && len(c.Join) > 0 {
		return errors.New("peers and join are exclusive: use peers to bootstrap a new cluster, join to enter a running one")
	}
	if c.NonVoter && len(c.Join) == 0 {
		return errors.New("nonvoter needs join: a non-voter enters a running cluster")
	}
	if err := c.checkPeers(); err != nil {
		return err
	}
	for _, j := range c.Join {
		if err := checkHostPort("join", j, false); err != nil {
			return err
		}
	}
	for name, v := range map[string]string{"cloud": c.Cloud, "region": c.Region} {
		// The manifest's own rule: a label it would refuse would leave
		// this server unable to record itself.
		if err := fsm.CheckLabel(name, v); err != nil {
			return err
		}
	}
	lv := c.Liveness
	if lv.MinInterval < 50*time.Millisecond || lv.MinInterval > time.Hour {
		return fmt.Errorf("heartbeat-interval %s is out of range (50ms..1h)", lv.MinInterval)
	}
	if lv.MaxRate <= 0 {
		return fmt.Errorf("max-heartbeat-rate must be positive, got %g", lv.MaxRate)
	}
	if lv.TTLFactor < 2 {
		return fmt.Errorf("liveness TTL factor must be at least 2, got %d", lv.TTLFactor)
	}
	pl := c.Placement
	if pl.Interval <= 0 || pl.Settle < 0 || pl.Backoff < 0 {
		return errors.New("placement: interval must be positive and settle/backoff not negative")
	}
	if err := fsm.CheckLabel("prefer-leader-cloud", pl.PreferCloud); err != nil {
		return err
	}
	rt := c.Retention
	if rt.Interval < 100*time.Millisecond || rt.MaxAge < 0 || rt.MaxPerStatus < 0 {
		return errors.New("retention: interval must be at least 100ms, max age and max per status not negative")
	}
	if !rt.Disabled && rt.MaxAge == 0 && rt.MaxPerStatus == 0 {
		return errors.New("retention: give a max age or a max count per status (or disable retention)")
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level %q is invalid; use debug, info, warn or error", c.LogLevel)
	}
	switch {
	case c.TLS == nil && !c.Insecure:
		return errors.New("no TLS material: give --tls-ca, --tls-cert and --tls-key (see `rctl tls --help`), or --insecure to serve plaintext with no authentication (development only)")
	case c.TLS != nil && c.Insecure:
		return errors.New("--insecure and TLS files exclude each other: choose one")
	case c.TLS != nil:
		if id := c.TLS.Identity(); id.Role != pki.RoleServer || id.Name != c.NodeID {
			return fmt.Errorf("--tls-cert names %s, but this server needs a server certificate for its node id %s (rctl tls cert create --role server --name %s)", id, c.NodeID, c.NodeID)
		}
	}
	return nil
}

// checkPeers checks the bootstrap membership: valid, distinct ids and
// addresses, this server among them at the address it advertises.
func (c *Config) checkPeers() error {
	if len(c.Peers) == 0 {
		return nil
	}
	seenID, seenAddr := map[string]bool{}, map[string]bool{}
	self := false
	for _, p := range c.Peers {
		if !idRE.MatchString(p.ID) {
			return fmt.Errorf("peers: id %q is invalid", p.ID)
		}
		if err := checkHostPort("peers", p.Address, false); err != nil {
			return err
		}
		if seenID[p.ID] || seenAddr[p.Address] {
			return fmt.Errorf("peers: %s=%s appears twice", p.ID, p.Address)
		}
		seenID[p.ID], seenAddr[p.Address] = true, true
		if p.ID == c.NodeID {
			if p.Address != c.Advertise {
				return fmt.Errorf("peers: this server is listed as %s=%s but advertises %s; make them match", p.ID, p.Address, c.Advertise)
			}
			self = true
		}
	}
	if !self {
		return fmt.Errorf("peers: this server (%s) is not in the list; every server gets the same list, itself included", c.NodeID)
	}
	return nil
}

func checkHostPort(flag, v string, allowWildcard bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%s %q is not host:port: %v", flag, v, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s %q: port must be 1-65535", flag, v)
	}
	if host == "" && !allowWildcard {
		return fmt.Errorf("%s %q: host is required", flag, v)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && !allowWildcard {
		return fmt.Errorf("%s %q: a wildcard address cannot be dialled; give a reachable address", flag, v)
	}
	return nil
}

// ParsePeers parses "id1=host:port,id2=host:port".
func ParsePeers(s string) ([]Peer, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Peer
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peers: %q is not id=host:port", part)
		}
		out = append(out, Peer{ID: id, Address: addr})
	}
	return out, nil
}
