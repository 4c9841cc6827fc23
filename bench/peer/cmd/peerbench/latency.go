package main

import (
	"context"
	"fmt"
	"log"
	"slices"
	"time"
)

// placements are the hosts (by name) the leader is moved to for commit
// latency and throughput: on wan both clouds (the client is in AWS), on
// loopback wherever the leader is ("").
func (b *Bench) placements() []string {
	if b.Net.Name() == "loopback" {
		return []string{""}
	}
	return []string{"aws1", "gcp1"}
}

// placeLeader moves leadership to the named host ("" leaves it) and waits
// until the cluster caught up; it returns the leader's index.
func (b *Bench) placeLeader(c Cluster, name string) (int, error) {
	l, err := waitLeader(c, 30*time.Second)
	if err != nil {
		return -1, err
	}
	if name != "" {
		for i, p := range c.Procs() {
			if p.Host.Name == name {
				if err := transferWithRetry(c, i); err != nil {
					return -1, err
				}
				l = i
			}
		}
	}
	if err := waitCaughtUp(c, 60*time.Second); err != nil {
		return -1, err
	}
	time.Sleep(b.Plan.Settle)
	return l, nil
}

// transferWithRetry moves leadership to server i, trying up to five
// times: a transfer across clouds can outlast the library's own transfer
// timeout (hashicorp/raft gives up after one election timeout, 600 ms with
// rctl's wan profile, while the target's vote round alone crosses clouds),
// and the target may still win just after the library gave up.
func transferWithRetry(c Cluster, i int) error {
	var err error
	for try := 1; try <= 5; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = c.TransferLeader(ctx, i)
		cancel()
		if err == nil {
			return nil
		}
		log.Printf("  leadership transfer to %s, try %d: %v", c.Procs()[i].Host.Name, try, err)
		time.Sleep(2 * time.Second)
		if l, lerr := waitLeader(c, 10*time.Second); lerr == nil && l == i {
			return nil
		}
	}
	return err
}

// Latency: sequential writes from one client straight to the leader.
func (b *Bench) Latency() (*Table, error) {
	t := b.table(fmt.Sprintf("Commit latency: sequential writes, one client → leader (%s, 5 servers, %d writes)", b.label(), b.Plan.LatencyWrites),
		"Floor: client↔leader RTT + leader↔quorum RTT + one fdatasync (all measured). Lower is better.")
	places := b.placements()
	res := map[string][][]time.Duration{} // by system, then placement
	floors := make([]time.Duration, len(places))
	for _, sys := range b.Systems {
		c, err := b.start(sys, 5, StartOptions{PinLeader: true})
		if err != nil {
			return nil, err
		}
		for pi, place := range places {
			lats, floor, err := b.latency(c, place)
			if err != nil {
				b.stop(c, err)
				return nil, fmt.Errorf("%s: %w", sys.Name(), err)
			}
			res[sys.Name()] = append(res[sys.Name()], lats)
			floors[pi] = floor
		}
		c.Stop()
	}
	for pi, place := range places {
		label := ""
		if place != "" {
			label = fmt.Sprintf("leader in %s (%s), ", b.cloudOf(place), place)
		}
		get := func(name string) []time.Duration {
			if s := res[name]; pi < len(s) {
				return s[pi]
			}
			return nil
		}
		x, y := get(b.names[0]), get(b.names[1])
		t.DurRow(label+"p50", pct(x, .5), pct(y, .5), floors[pi])
		t.DurRow(label+"p99", pct(x, .99), pct(y, .99), 0)
	}
	return t, nil
}

func (b *Bench) cloudOf(name string) string {
	hosts, _ := b.Net.Hosts(5)
	for _, h := range hosts {
		if h.Name == name {
			return h.Cloud
		}
	}
	return "?"
}

// latency moves the leader to place and times sequential writes to it.
func (b *Bench) latency(c Cluster, place string) ([]time.Duration, time.Duration, error) {
	l, err := b.placeLeader(c, place)
	if err != nil {
		return nil, 0, err
	}
	floor, err := b.floor(c, l)
	if err != nil {
		return nil, 0, err
	}
	w, err := c.Writer(l)
	if err != nil {
		return nil, 0, err
	}
	defer w.Close()
	var lats []time.Duration
	for i := -5; i < b.Plan.LatencyWrites; i++ { // 5 warm-up writes
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		err := w.Write(ctx)
		d := time.Since(t0)
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("write %d: %w", i, err)
		}
		if i >= 0 {
			lats = append(lats, d)
		}
	}
	return lats, floor, nil
}

// floor is the physical floor of one commit through leader l: the
// client's round trip to it, its round trip to the quorum's slowest
// member it needs, and one fdatasync.
func (b *Bench) floor(c Cluster, l int) (time.Duration, error) {
	procs := c.Procs()
	leader := procs[l].Host
	toLeader, err := b.Net.RTT(b.Net.Client(), leader)
	if err != nil {
		return 0, err
	}
	var peers []time.Duration
	for i, p := range procs {
		if i != l {
			d, err := b.Net.RTT(leader, p.Host)
			if err != nil {
				return 0, err
			}
			peers = append(peers, d)
		}
	}
	slices.Sort(peers)
	need := len(procs)/2 - 1 // acknowledgements needed besides the leader's own, as an index
	return toLeader + peers[need] + b.Fsync, nil
}
