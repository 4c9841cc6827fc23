//go:build linux

package fault

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// Pulse measures write availability continuously: every interval it
// starts one write (a re-add of the same task, a committed no-op that
// leaves the manifest as it is) through a failover client and records when
// it was acknowledged. Attempts overlap (at most 16 in flight), so one
// stuck call does not hide that others get through.
type Pulse struct {
	id     string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	samples []PulseSample
}

// PulseSample is one write of a Pulse.
type PulseSample struct {
	Start, Ack time.Time // Ack is zero if the write was not acknowledged
}

// StartPulse starts writing every interval through cl; each write gets
// up to attempt (retries included). The task is id; it is added once
// and then re-added.
func StartPulse(cl *Client, id string, every, attempt time.Duration) *Pulse {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pulse{id: id, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		slots := make(chan struct{}, 16)
		var writes sync.WaitGroup
		defer writes.Wait()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			writes.Add(1)
			go func() {
				defer writes.Done()
				defer func() { <-slots }()
				s := PulseSample{Start: time.Now()}
				actx, acancel := context.WithTimeout(ctx, attempt)
				_, err := cl.Call(actx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "fault",
					Payload: map[string]string{"by": "fault-pulse"}, Cloud: "nowhere"}, nil)
				acancel()
				if err == nil {
					s.Ack = time.Now()
				} else if ctx.Err() != nil {
					return // cut short by Stop: no verdict
				}
				p.mu.Lock()
				p.samples = append(p.samples, s)
				p.mu.Unlock()
			}()
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

// Stop ends the pulse and waits for writes in flight.
func (p *Pulse) Stop() {
	p.cancel()
	p.wg.Wait()
}

// PulseStats sums up a pulse over a window.
type PulseStats struct {
	Writes, Acked int
	P50, P99, Max time.Duration // latency of acknowledged writes
	// Gap is the longest stretch of the window without an acknowledgement.
	Gap time.Duration
}

func (s PulseStats) String() string {
	return fmt.Sprintf("%d/%d writes acknowledged, latency p50 %s p99 %s max %s, longest gap without an acknowledged write %s",
		s.Acked, s.Writes, s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond), s.Max.Round(time.Millisecond), s.Gap.Round(time.Millisecond))
}

// Stats sums up the writes started in [from, to) and the acknowledgements
// within it.
func (p *Pulse) Stats(from, to time.Time) PulseStats {
	p.mu.Lock()
	samples := slices.Clone(p.samples)
	p.mu.Unlock()
	var st PulseStats
	var lat []time.Duration
	var acks []time.Time
	for _, s := range samples {
		if !s.Start.Before(from) && s.Start.Before(to) {
			st.Writes++
			if !s.Ack.IsZero() {
				st.Acked++
				lat = append(lat, s.Ack.Sub(s.Start))
			}
		}
		if !s.Ack.IsZero() && !s.Ack.Before(from) && s.Ack.Before(to) {
			acks = append(acks, s.Ack)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		st.P50, st.P99, st.Max = Percentile(lat, 50), Percentile(lat, 99), lat[len(lat)-1]
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	prev := from
	for _, a := range acks {
		st.Gap = max(st.Gap, a.Sub(prev))
		prev = a
	}
	st.Gap = max(st.Gap, to.Sub(prev))
	return st
}

// Percentile is the nearest-rank percentile (p in (0, 100]) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
