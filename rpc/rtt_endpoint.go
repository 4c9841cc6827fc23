package rpc

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// Round trips between servers (Operator.RTT, and the rtt_ms column of
// Status.Members). A round trip is timed by the server at one end, with a
// Status.Get call on a connection that is already open, so neither the TCP
// nor the TLS handshake is counted: what is left is the network's round
// trip plus well under a millisecond of serving.

const (
	// DefaultRTTSamples and MaxRTTSamples bound Operator.RTT's samples.
	DefaultRTTSamples = 5
	MaxRTTSamples     = 20
	// rttPairTimeout bounds the measurement of one pair: a dial and
	// MaxRTTSamples cross-cloud round trips, with room for loss.
	rttPairTimeout = 15 * time.Second
	// rttHistoryLen is how many of the leader's member probes the rtt_ms
	// of Status.Members is the least of (one probe per membersProbeTTL
	// while somebody asks).
	rttHistoryLen = 5
)

func (s *Server) operatorRTT(ctx context.Context, req *Request) (any, error) {
	var a RTTArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.Samples < 0 || a.Samples > MaxRTTSamples {
		return nil, Errorf(CodeInvalidArgument, "%s: samples must be between 1 and %d (0 means %d), not %d",
			req.Method, MaxRTTSamples, DefaultRTTSamples, a.Samples)
	}
	n := a.Samples
	if n == 0 {
		n = DefaultRTTSamples
	}
	servers, err := s.b.Servers()
	if err != nil {
		return nil, err
	}
	self := s.b.Self()
	name, maxRTT := s.b.TimingProfile()
	reply := &RTTReply{From: self.ID, Timing: name, MaxRTTMS: millis(maxRTT), Pairs: []RTTPair{}, Warnings: []string{}}

	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range servers {
		id, addr := srv.ID, srv.Address
		if id == self.ID {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := s.measurePair(ctx, self, id, addr, n)
			mu.Lock()
			reply.Pairs = append(reply.Pairs, p)
			mu.Unlock()
		}()
		if a.Local {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The other server measures its own pairs; it may take a
			// dial and n round trips per pair, like this one.
			pctx, cancel := context.WithTimeout(ctx, rttPairTimeout+statusProbeTimeout)
			defer cancel()
			var r RTTReply
			err := s.pool.Call(pctx, addr, MethodOperatorRTT, &RTTArgs{Samples: n, Local: true}, &r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				reply.Warnings = append(reply.Warnings, fmt.Sprintf("could not ask %s (%s) for its round trips: %v", id, addr, err))
				return
			}
			reply.Pairs = append(reply.Pairs, r.Pairs...)
		}()
	}
	wg.Wait()
	sort.Slice(reply.Pairs, func(i, j int) bool {
		pi, pj := reply.Pairs[i], reply.Pairs[j]
		if pi.From != pj.From {
			return pi.From < pj.From
		}
		return pi.To < pj.To
	})
	for _, p := range reply.Pairs {
		if p.Error == "" && maxRTT > 0 && p.MedianMS > reply.MaxRTTMS {
			reply.Warnings = append(reply.Warnings, rttWarning(p.From, p.To, p.MedianMS, name, reply.MaxRTTMS))
		}
	}
	sort.Strings(reply.Warnings)
	return reply, nil
}

// rttWarning is the sentence for a round trip the timing profile is not
// made for.
func rttWarning(from, to string, rttMS float64, profile string, maxMS float64) string {
	w := fmt.Sprintf("round trip %s→%s is %.1f ms, more than the %q timing profile is made for (%.0f ms)", from, to, rttMS, profile, maxMS)
	if profile == "lan" {
		w += "; run the servers with --timing wan"
	}
	return w
}

// measurePair times n Status.Get round trips from this server to another
// on an open connection.
// An error after some samples leaves the pair with fewer.
func (s *Server) measurePair(ctx context.Context, self fsm.Server, id, addr string, n int) RTTPair {
	p := RTTPair{From: self.ID, To: id, FromCloud: self.Cloud}
	if lbl := s.fsm.Server(id); lbl != nil {
		p.ToCloud = lbl.Cloud
	}
	ctx, cancel := context.WithTimeout(ctx, rttPairTimeout)
	defer cancel()
	conn, err := s.pool.Get(ctx, addr) // dials if needed: not timed
	if err != nil {
		p.Error = err.Error()
		return p
	}
	samples := make([]time.Duration, 0, n)
	for range n {
		var st StatusReply
		t0 := time.Now()
		if err = conn.Call(ctx, MethodStatus, &StatusArgs{}, &st); err != nil {
			break
		}
		samples = append(samples, time.Since(t0))
	}
	if len(samples) == 0 {
		p.Error = err.Error()
		return p
	}
	slices.Sort(samples)
	p.Samples = len(samples)
	p.MinMS, p.MedianMS, p.MaxMS = millis(samples[0]), millis(samples[len(samples)/2]), millis(samples[len(samples)-1])
	return p
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rttHistory keeps the leader's last few probe round trips per server.
type rttHistory struct {
	mu   sync.Mutex
	last map[string][]time.Duration
}

// record adds a round trip to id and returns the least of its recent ones.
func (h *rttHistory) record(id string, d time.Duration) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string][]time.Duration{}
	}
	l := append(h.last[id], d)
	if len(l) > rttHistoryLen {
		l = l[len(l)-rttHistoryLen:]
	}
	h.last[id] = l
	return slices.Min(l)
}
