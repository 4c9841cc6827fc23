package rpc

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// statusProbeTimeout bounds the leader's probe of each server for
// Status.Members: several cross-cloud round trips.
const statusProbeTimeout = 1500 * time.Millisecond

func (s *Server) localStatus() *StatusReply {
	self := s.b.Self()
	addr, id := s.leader()
	rs := s.b.RaftState()
	r := &StatusReply{
		ID: self.ID, Address: self.Address, Cloud: self.Cloud, Region: self.Region,
		State: rs.State, LeaderID: id, LeaderAddr: addr, Term: rs.Term,
		CommitIndex: rs.CommitIndex, AppliedIndex: rs.AppliedIndex, LastIndex: rs.LastIndex,
		Version: s.cfg.Version,
	}
	r.CommitP99MS, r.LogSyncP99MS = s.b.HealthFigures()
	if r.State != "leader" {
		if lc := rs.LastContact; !lc.IsZero() {
			r.LastContactMS = time.Since(lc).Milliseconds()
		} else {
			r.LastContactMS = -1
		}
	}
	if t := s.b.LastLeaderChange(); !t.IsZero() {
		r.LastLeaderChangeMS = t.UnixMilli()
	}
	if servers, err := s.b.Servers(); err == nil {
		r.NumPeers = len(servers)
	}
	return r
}

func (s *Server) status(ctx context.Context, req *Request) (any, error) {
	var a StatusArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.MaxWaitMS < 0 {
		return nil, Errorf(CodeInvalidArgument, "max_wait_ms must not be negative, got %d", a.MaxWaitMS)
	}
	if err := a.checkAwaitSilence(); err != nil {
		return nil, err
	}
	if a.AwaitSilenceMS > 0 {
		s.waitSilence(ctx, time.Duration(a.AwaitSilenceMS)*time.Millisecond)
		return s.localStatus(), nil
	}
	if a.MinIndex > 0 || a.KnownLeader != "" {
		wait := DefaultMaxWait
		if a.MaxWaitMS > 0 {
			wait = min(time.Duration(a.MaxWaitMS)*time.Millisecond, MaxMaxWait)
		}
		s.waitStatus(ctx, a, wait)
	}
	return s.localStatus(), nil
}

// waitStatus blocks a Status.Get (docs/rpc.md) until its condition holds
// or wait passes: with MinIndex, until the applied index passes it or the
// leader or term changes; with KnownLeader, until a leader other than it
// is known. It wakes on applied entries only when MinIndex asks for them,
// so thousands of agents waiting for a new leader cost nothing per write.
func (s *Server) waitStatus(ctx context.Context, a StatusArgs, wait time.Duration) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	startLeader, _ := s.leader()
	startTerm := s.b.RaftState().Term
	for {
		changed := s.b.LeaderWatch()
		var applied <-chan struct{}
		addr, id := s.leader()
		if a.KnownLeader != "" && id != "" && id != a.KnownLeader {
			return
		}
		if a.MinIndex > 0 {
			applied = s.fsm.WatchCh()
			if rs := s.b.RaftState(); rs.AppliedIndex > a.MinIndex || addr != startLeader || rs.Term != startTerm {
				return
			}
		}
		select {
		case <-applied:
		case <-changed:
		case <-time.After(leaderRecheck):
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// MaxAwaitSilence bounds StatusArgs.AwaitSilenceMS.
const MaxAwaitSilence = time.Minute

// checkAwaitSilence validates AwaitSilenceMS.
func (a *StatusArgs) checkAwaitSilence() error {
	switch {
	case a.AwaitSilenceMS < 0:
		return Errorf(CodeInvalidArgument, "await_silence_ms must not be negative, got %d", a.AwaitSilenceMS)
	case a.AwaitSilenceMS > MaxAwaitSilence.Milliseconds():
		return Errorf(CodeInvalidArgument, "await_silence_ms must be at most %d, got %d", MaxAwaitSilence.Milliseconds(), a.AwaitSilenceMS)
	case a.AwaitSilenceMS > 0 && (a.MinIndex > 0 || a.KnownLeader != ""):
		return Errorf(CodeInvalidArgument, "await_silence_ms cannot be combined with min_index or known_leader")
	}
	return nil
}

// waitSilence holds a Status.Get with AwaitSilenceMS while this server is
// a follower whose last word from its leader is less than silence old. It
// returns when that word is more than silence old (the reply's
// last_contact_ms then exceeds it), when a newer word has arrived (the
// leader is heard again: the reply says so), when the state, leader or
// term changes, or when the caller goes away. It never holds longer than
// silence: a timer set for the moment the silence would pass, raft's
// leader changes waking it earlier.
func (s *Server) waitSilence(ctx context.Context, silence time.Duration) {
	start := s.b.RaftState()
	_, leader := s.leader()
	wake := time.NewTimer(0)
	defer wake.Stop()
	<-wake.C
	for {
		changed := s.b.LeaderWatch()
		rs := s.b.RaftState()
		_, id := s.leader()
		if rs.State != "follower" || rs.Term != start.Term || id != leader || id == "" ||
			rs.LastContact.IsZero() || rs.LastContact.After(start.LastContact) {
			return
		}
		left := time.Until(rs.LastContact.Add(silence))
		if left < 0 {
			return
		}
		wake.Reset(left + time.Millisecond) // the reply's last_contact_ms must exceed silence
		select {
		case <-wake.C:
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) members(ctx context.Context, req *Request) (any, error) {
	var a MembersArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	var reply MembersReply
	if !a.Stale {
		if done, err := s.forward(ctx, req, &reply); done {
			return &reply, err
		}
	}
	servers, err := s.b.Servers()
	if err != nil {
		return nil, err
	}
	_, leaderID := s.leader()
	self := s.localStatus()
	amLeader := self.State == "leader"

	var probes map[string]memberProbe
	if amLeader {
		probes = s.memberProbes.get(ctx, membersKey(self.Term, servers), func(ctx context.Context) map[string]memberProbe {
			return probeServers(ctx, s, servers, self)
		})
	}
	reply.From = self.ID
	reply.Members = make([]Member, len(servers))
	for i, srv := range servers {
		m := &reply.Members[i]
		m.ID, m.Address = srv.ID, srv.Address
		m.Suffrage = suffrage(srv.Voter)
		m.Leader = srv.ID == leaderID
		m.LastContactMS, m.Lag, m.RTTMS = -1, -1, -1
		m.CommitP99MS, m.LogSyncP99MS = -1, -1
		// The manifest's labels are the one answer every server gives; a
		// server's own report fills in only until its labels are recorded.
		lbl := s.fsm.Server(m.ID)
		if lbl != nil {
			m.Cloud, m.Region = lbl.Cloud, lbl.Region
		}
		if m.ID == self.ID {
			if lbl == nil {
				m.Cloud, m.Region = self.Cloud, self.Region
			}
			m.State, m.Term = self.State, self.Term
			m.CommitP99MS, m.LogSyncP99MS = self.CommitP99MS, self.LogSyncP99MS
			if amLeader {
				m.LastContactMS, m.Lag, m.RTTMS = 0, 0, 0
			}
			continue
		}
		if !amLeader {
			m.State = "unknown"
			continue
		}
		p, ok := probes[m.ID]
		if !ok || !p.ok {
			m.State = "unreachable"
			continue
		}
		m.State, m.Term, m.LastContactMS, m.Lag = p.state, p.term, p.lastContactMS, p.lag
		m.RTTMS = millis(p.rtt)
		m.CommitP99MS, m.LogSyncP99MS = p.commitP99MS, p.logSyncP99MS
		if lbl == nil && p.cloud != "" {
			m.Cloud, m.Region = p.cloud, p.region
		}
	}
	sort.Slice(reply.Members, func(i, j int) bool { return reply.Members[i].ID < reply.Members[j].ID })
	reply.Warnings = GeometryWarnings(reply.Members)
	if profile, maxRTT := s.b.TimingProfile(); maxRTT > 0 {
		for _, m := range reply.Members {
			if m.RTTMS > millis(maxRTT) {
				reply.Warnings = append(reply.Warnings, rttWarning(self.ID, m.ID, m.RTTMS, profile, millis(maxRTT)))
			}
		}
	}
	return &reply, nil
}

// membersProbeTTL is how long the leader reuses its probe of the other
// servers for Status.Members. Every `rctl top` asks once a second, so
// without it each viewer made the leader call every server each second,
// and while a server is down every call waited for its probe timeout.
// With it the leader probes at most once per TTL however many callers
// there are (concurrent callers share one probe in flight), and a probe
// is never reused after this server's term or the configuration changed.
const membersProbeTTL = 2 * time.Second

// memberProbe is what the leader learned from one server's Status.Get.
type memberProbe struct {
	ok                 bool
	state              string
	term               uint64
	lastContactMS, lag int64
	cloud, region      string
	rtt                time.Duration // least of the last few probes
	commitP99MS        float64
	logSyncP99MS       float64
}

// membersCache holds the leader's last probe of the other servers.
type membersCache struct {
	now      func() time.Time // nil: time.Now (tests set it)
	mu       sync.Mutex
	at       time.Time
	key      string // term and configuration the probe was made for
	probes   map[string]memberProbe
	inflight chan struct{} // closed when the probe in flight ends
}

// membersKey names what a probe is valid for: this server's term and the
// configuration.
func membersKey(term uint64, servers []RaftServer) string {
	var kb strings.Builder
	fmt.Fprintf(&kb, "%d", term)
	for _, srv := range servers {
		fmt.Fprintf(&kb, " %s=%s", srv.ID, srv.Address)
	}
	return kb.String()
}

// get returns the probes made for key no longer than membersProbeTTL ago,
// or runs probe (once for all concurrent callers) when there are none.
// A caller whose ctx ends while another's probe runs gets nil.
func (c *membersCache) get(ctx context.Context, key string, probe func(context.Context) map[string]memberProbe) map[string]memberProbe {
	now := c.now
	if now == nil {
		now = time.Now
	}
	for {
		c.mu.Lock()
		if c.key == key && c.probes != nil && now().Sub(c.at) < membersProbeTTL {
			p := c.probes
			c.mu.Unlock()
			return p
		}
		if wait := c.inflight; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		done := make(chan struct{})
		c.inflight = done
		c.mu.Unlock()

		at := now()
		// The probe outlives a caller that gives up: others may wait on it.
		p := probe(context.WithoutCancel(ctx))
		c.mu.Lock()
		c.at, c.key, c.probes, c.inflight = at, key, p, nil
		c.mu.Unlock()
		close(done)
		return p
	}
}

// probeServers asks every other server for its status, in parallel, each
// within statusProbeTimeout.
func probeServers(ctx context.Context, s *Server, servers []RaftServer, self *StatusReply) map[string]memberProbe {
	out := make(map[string]memberProbe, len(servers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range servers {
		if srv.ID == self.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, statusProbeTimeout)
			defer cancel()
			var st StatusReply
			var p memberProbe
			// Dial first (untimed) so that the call times one round trip.
			conn, err := s.pool.Get(pctx, srv.Address)
			if err == nil {
				t0 := time.Now()
				if err = conn.Call(pctx, MethodStatus, &StatusArgs{}, &st); err == nil {
					p = memberProbe{ok: true, state: st.State, term: st.Term, lastContactMS: st.LastContactMS,
						lag: max(int64(self.LastIndex)-int64(st.LastIndex), 0), cloud: st.Cloud, region: st.Region,
						rtt: s.rtts.record(srv.ID, time.Since(t0)), commitP99MS: st.CommitP99MS, logSyncP99MS: st.LogSyncP99MS}
				}
			}
			mu.Lock()
			out[srv.ID] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func suffrage(voter bool) string {
	if voter {
		return "voter"
	}
	return "nonvoter"
}

// GeometryWarnings explains voter layouts that cannot survive the loss of
// one cloud: voters spread over two or more clouds such that losing any one
// of them leaves fewer voters than a quorum (e.g. 3+3). A layout where one
// cloud holds a quorum on its own (3+2) is the recommended shape and gets
// no warning, although losing that cloud still stops writes.
func GeometryWarnings(ms []Member) []string {
	perCloud := map[string]int{}
	voters := 0
	for _, m := range ms {
		if m.Suffrage != "voter" {
			continue
		}
		voters++
		perCloud[m.Cloud]++
	}
	if len(perCloud) < 2 || voters == 0 {
		return []string{}
	}
	quorum := voters/2 + 1
	clouds := make([]string, 0, len(perCloud))
	for c := range perCloud {
		clouds = append(clouds, c)
	}
	sort.Strings(clouds)
	var fatal []string
	parts := make([]string, 0, len(clouds))
	for _, c := range clouds {
		name := c
		if name == "" {
			name = "(unlabelled)"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, perCloud[c]))
		if voters-perCloud[c] < quorum {
			fatal = append(fatal, name)
		}
	}
	layout := strings.Join(parts, " + ")
	switch {
	case len(fatal) == len(clouds):
		return []string{fmt.Sprintf("voters are split %s (quorum %d of %d): no cloud can be lost and a cloud split stops all writes; use an odd layout such as 3+2 or make one server a non-voter", layout, quorum, voters)}
	}
	return []string{}
}
