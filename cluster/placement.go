package cluster

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rctl-dev/rctl/rpc"
)

// PlacementConfig controls where the leader should live. With voters split
// across clouds, a commit needs only intra-cloud round trips when the
// leader sits in a cloud that holds a quorum of voters by itself (3 of a
// 3+2 layout): ~25 ms instead of ~243 ms per round trip.
type PlacementConfig struct {
	// PreferCloud pins the preferred leader cloud. Empty: the cloud whose
	// voters alone form a quorum, if there is one; otherwise no preference.
	PreferCloud string
	// Disabled turns automatic placement off.
	Disabled bool
	// Interval is how often the leader checks its placement. Default 5 s.
	Interval time.Duration
	// Settle is how long a leader must have led before it considers
	// moving: placement never competes with an election or a failover.
	// Default 15 s.
	Settle time.Duration
	// Backoff is the least time between two transfer attempts. Default 60 s.
	Backoff time.Duration
	// MaxLag is the most log entries the target may trail the leader by.
	// Default 64.
	MaxLag uint64
}

// placementProbeTimeout bounds the leader's Status.Get of one voter when
// it looks for a healthy, caught-up target in the preferred cloud: a
// voter that does not answer within it is not a target this round.
const placementProbeTimeout = 2 * time.Second

// DefaultPlacement returns the defaults documented on PlacementConfig.
func DefaultPlacement() PlacementConfig {
	return PlacementConfig{Interval: 5 * time.Second, Settle: 15 * time.Second, Backoff: time.Minute, MaxLag: 64}
}

// preferredCloud decides the cloud leadership should live in, given the
// voters' clouds. It returns "" when there is no preference.
func preferredCloud(pin string, voterClouds []string) string {
	if pin != "" {
		return pin
	}
	per := map[string]int{}
	for _, c := range voterClouds {
		per[c]++
	}
	if len(per) < 2 {
		return "" // one cloud (or unlabelled): nothing to gain
	}
	quorum := len(voterClouds)/2 + 1
	for c, n := range per {
		if c != "" && n >= quorum {
			return c
		}
	}
	return ""
}

// voters returns the voting servers of the latest configuration and,
// index for index, their clouds; ok is false if raft cannot say.
func (s *Server) voters() (voters []raft.Server, clouds []string, ok bool) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return nil, nil, false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters = append(voters, srv)
			clouds = append(clouds, s.cloudOf(srv.ID))
		}
	}
	return voters, clouds, true
}

// candidate is a voter the leader could hand leadership to.
type candidate struct {
	id, addr string
	lag      uint64
}

// placementCheck is one decision: nil when leadership should stay.
func (s *Server) placementCheck(ctx context.Context, ledSince time.Time, lastTry time.Time) *candidate {
	pc := s.cfg.Placement
	now := s.clock.Now()
	if pc.Disabled || now.Sub(ledSince) < pc.Settle || (!lastTry.IsZero() && now.Sub(lastTry) < pc.Backoff) {
		return nil
	}
	voters, clouds, ok := s.voters()
	if !ok {
		return nil
	}
	want := preferredCloud(pc.PreferCloud, clouds)
	if want == "" || want == s.cfg.Cloud {
		return nil
	}
	// Only a healthy cluster moves: every voter answers and is close
	// behind, so the transfer cannot strand a quorum.
	last := s.raft.LastIndex()
	var mu sync.Mutex
	var best []candidate
	healthy := true
	var wg sync.WaitGroup
	for i, v := range voters {
		if string(v.ID) == s.cfg.NodeID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, placementProbeTimeout)
			defer cancel()
			var st rpc.StatusReply
			err := s.rpc.Pool().Call(pctx, string(v.Address), rpc.MethodStatus, &rpc.StatusArgs{}, &st)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || st.State != "follower" || st.LastContactMS < 0 ||
				time.Duration(st.LastContactMS)*time.Millisecond > 2*s.timing.HeartbeatTimeout {
				healthy = false
				return
			}
			lag := uint64(0)
			if last > st.LastIndex {
				lag = last - st.LastIndex
			}
			if clouds[i] == want && lag <= pc.MaxLag {
				best = append(best, candidate{id: string(v.ID), addr: string(v.Address), lag: lag})
			}
		}()
	}
	wg.Wait()
	if !healthy || len(best) == 0 {
		return nil
	}
	sort.Slice(best, func(i, j int) bool {
		if best[i].lag != best[j].lag {
			return best[i].lag < best[j].lag
		}
		return best[i].id < best[j].id
	})
	return &best[0]
}

// placementLoop moves leadership into the preferred cloud when the cluster
// is healthy. It only ever moves leadership *into* the preferred cloud, so
// it cannot flap; it waits Settle after leadership was established, so it
// never competes with a failover; and it backs off after every attempt.
func (s *Server) placementLoop(stop <-chan struct{}) {
	pc := s.cfg.Placement
	if pc.Disabled {
		return
	}
	ledSince := s.clock.Now()
	var lastTry time.Time
	t := s.clock.NewTicker(pc.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C():
		}
		ctx, cancel := context.WithCancel(s.ctx)
		c := s.placementCheck(ctx, ledSince, lastTry)
		cancel()
		if c == nil {
			continue
		}
		lastTry = s.clock.Now()
		s.log.Info("leader placement: handing leadership to the preferred cloud", "event", "leader_placement",
			"from_cloud", s.cfg.Cloud, "to", c.id, "lag", c.lag)
		s.metrics.placementMove()
		if err := s.raft.LeadershipTransferToServer(raft.ServerID(c.id), raft.ServerAddress(c.addr)).Error(); err != nil {
			s.log.Warn("leader placement: transfer failed; will retry after the backoff", "to", c.id, "err", err)
		}
	}
}
