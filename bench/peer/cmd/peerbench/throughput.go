package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"
)

// ThroughputScenario: N concurrent clients, each over its own connection,
// write to the leader as fast as they are acknowledged.
func (b *Bench) ThroughputScenario() (*Table, error) {
	place := b.placements()[0]
	where := ""
	if place != "" {
		where = ", leader in " + b.cloudOf(place)
	}
	t := b.table(fmt.Sprintf("Throughput: concurrent clients → leader (%s, 5 servers%s, %s per step)", b.label(), where, b.Plan.ThroughputDur),
		"Committed writes per second (higher is better) and each step's p99 latency (lower is better). One connection per client.")
	type step struct {
		rate float64
		p99  time.Duration
	}
	res := map[string][]step{}
	for _, sys := range b.Systems {
		c, err := b.start(sys, 5, StartOptions{PinLeader: true})
		if err != nil {
			return nil, err
		}
		l, err := b.placeLeader(c, place)
		if err != nil {
			b.stop(c, err)
			return nil, fmt.Errorf("%s: %w", sys.Name(), err)
		}
		for _, n := range b.Plan.Clients {
			rate, lats, err := b.throughput(c, l, n)
			if err != nil {
				b.stop(c, err)
				return nil, fmt.Errorf("%s, %d clients: %w", sys.Name(), n, err)
			}
			log.Printf("  %s %3d clients: %.0f writes/s, p99 %s", sys.Name(), n, rate, fmtDur(pct(lats, .99)))
			res[sys.Name()] = append(res[sys.Name()], step{rate, pct(lats, .99)})
			b.Throughput[sys.Name()] = append(b.Throughput[sys.Name()], rate)
			if err := waitCaughtUp(c, 60*time.Second); err != nil {
				b.stop(c, err)
				return nil, fmt.Errorf("%s after %d clients: %w", sys.Name(), n, err)
			}
		}
		c.Stop()
	}
	for i, n := range b.Plan.Clients {
		get := func(name string) step {
			if s := res[name]; i < len(s) {
				return s[i]
			}
			return step{}
		}
		x, y := get(b.names[0]), get(b.names[1])
		t.RateRow(clientsLabel(n)+", writes/s", x.rate, y.rate)
		t.DurRow(clientsLabel(n)+", p99", x.p99, y.p99, 0)
	}
	return t, nil
}

// throughput runs n writers against server l for the plan's duration and
// returns committed writes per second and every write's latency.
func (b *Bench) throughput(c Cluster, l, n int) (float64, []time.Duration, error) {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = l
	}
	ws, err := writers(c, idx)
	if err != nil {
		return 0, nil, err
	}
	defer closeAll(ws)
	// Connect and warm every client before the clock starts.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs[i] = w.Write(ctx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, nil, fmt.Errorf("warm-up write: %w", err)
		}
	}
	var mu sync.Mutex
	var lats []time.Duration
	var failed int
	start := time.Now()
	stop := start.Add(b.Plan.ThroughputDur)
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := w.Write(ctx)
				d := time.Since(t0)
				cancel()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lats = append(lats, mine...)
			failed += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start) // includes the last writes started before stop
	if failed > 0 {
		return 0, nil, fmt.Errorf("%d writes failed", failed)
	}
	return float64(len(lats)) / elapsed.Seconds(), lats, nil
}

// clientsLabel prints "1 client", "16 clients".
func clientsLabel(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}
