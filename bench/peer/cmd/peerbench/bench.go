package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Plan sizes one run: how many rounds and writes each scenario makes.
type Plan struct {
	Mode           string // quick or full
	ColdRounds     int
	FailoverRounds int
	LatencyWrites  int // sequential writes per leader placement
	ThroughputDur  time.Duration
	Clients        []int
	// Settle is the pause after a cluster caught up, before it is measured.
	Settle time.Duration
	// Attempt bounds one probe write in cold start and failover.
	Attempt time.Duration
}

// planFor returns the plan of a mode on a network.
func planFor(mode string, wan bool) Plan {
	p := Plan{Mode: mode, ColdRounds: 5, FailoverRounds: 20, LatencyWrites: 1000,
		ThroughputDur: 5 * time.Second, Clients: []int{1, 16, 64, 256},
		Settle: time.Second, Attempt: 2 * time.Second}
	if wan {
		p.LatencyWrites, p.ThroughputDur, p.Settle, p.Attempt = 100, 8*time.Second, 2*time.Second, 5*time.Second
	}
	if mode == "quick" {
		p.ColdRounds, p.FailoverRounds = 2, 4
		p.LatencyWrites /= 5
		p.ThroughputDur = 2 * time.Second
		if wan {
			p.FailoverRounds = 3
		}
	}
	return p
}

// Bench runs the scenarios of one network for the systems compared and
// keeps what the report and the charts need.
type Bench struct {
	Net     Network
	Systems []System // in the order of --systems
	// names are the tables' two columns (columns): the systems run, or
	// with one system the pair it belongs to.
	names [2]string
	// Security is "plain" or "tls" (both systems with mutual TLS).
	Security string
	Plan     Plan
	Work     string        // data dirs go under it
	Fsync    time.Duration // median fdatasync of the data disk
	Keep     string        // where server logs of failed scenarios are kept
	// KeepSlow: failover rounds slower than this keep their servers' logs
	// too (0: only failed rounds do).
	KeepSlow time.Duration
	Tables   []*Table

	// For the charts: failover times and throughput per clients, by system.
	Failover   map[string][]time.Duration
	Throughput map[string][]float64
}

// table starts a scenario's table, its columns the bench's systems.
func (b *Bench) table(title string, notes ...string) *Table {
	return &Table{Title: title, Names: b.names, Notes: notes}
}

// systemNames lists the systems run, in order.
func (b *Bench) systemNames() []string {
	var out []string
	for _, sys := range b.Systems {
		out = append(out, sys.Name())
	}
	return out
}

// label names the network in titles and logs: "wan", or "wan, TLS".
func (b *Bench) label() string {
	if b.Security == secTLS {
		return b.Net.Name() + ", TLS"
	}
	return b.Net.Name()
}

// suffix tells the files of a TLS run from those of a plaintext one.
func (b *Bench) suffix() string {
	if b.Security == secTLS {
		return "-tls"
	}
	return ""
}

// probeEvery is how often cold start and failover start a new write
// through each server: the figure's resolution.
const probeEvery = 50 * time.Millisecond

// start starts a cluster of n servers of sys in a fresh directory.
func (b *Bench) start(sys System, n int, opt StartOptions) (Cluster, error) {
	hosts, err := b.Net.Hosts(n)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(b.Work, sys.Name()+"-")
	if err != nil {
		return nil, err
	}
	return sys.Start(b.Net, hosts, dir, opt)
}

// stop stops a cluster, keeping the servers' logs first when the
// scenario failed (err != nil).
func (b *Bench) stop(c Cluster, err error) {
	if err != nil {
		b.keepLogs(c, "failed")
	}
	c.Stop()
}

// keepLogs copies the servers' logs to a new directory under b.Keep and
// says where.
func (b *Bench) keepLogs(c Cluster, label string) {
	if b.Keep == "" {
		return
	}
	dir := filepath.Join(b.Keep, fmt.Sprintf("peer-logs-%s%s-%s-%s", b.Net.Name(), b.suffix(), label, time.Now().Format("150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Printf("keeping logs: %v", err)
		return
	}
	for _, p := range c.Procs() {
		if data, err := os.ReadFile(p.LogPath); err == nil {
			_ = os.WriteFile(filepath.Join(dir, p.Name+".log"), data, 0o644)
		}
	}
	log.Printf("server logs kept in %s", dir)
}

// writers opens one writer per server index.
func writers(c Cluster, idx []int) ([]Writer, error) {
	var ws []Writer
	for _, i := range idx {
		w, err := c.Writer(i)
		if err != nil {
			closeAll(ws)
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

func closeAll(ws []Writer) {
	for _, w := range ws {
		w.Close()
	}
}

// firstWrite starts a write through every writer every probeEvery, each
// bounded by attempt, until one is acknowledged, and returns the time of
// that acknowledgement since since. So the figure is "the cluster accepts
// writes again", whichever server answers first, and does not depend on
// how long one call is held by a server that cannot answer yet.
func firstWrite(ws []Writer, since time.Time, attempt, within time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	won := make(chan time.Time, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lastErr error
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(probeEvery)
			defer tick.Stop()
			for {
				wg.Add(1)
				go func() {
					defer wg.Done()
					actx, acancel := context.WithTimeout(ctx, attempt)
					defer acancel()
					err := w.Write(actx)
					if err == nil {
						select {
						case won <- time.Now():
						default:
						}
						return
					}
					mu.Lock()
					lastErr = err
					mu.Unlock()
				}()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	select {
	case t := <-won:
		cancel()
		wg.Wait()
		return t.Sub(since), nil
	case <-ctx.Done():
		wg.Wait()
		return 0, fmt.Errorf("no write acknowledged within %s (last error: %v)", within, lastErr)
	}
}

// others returns 0..n-1 without skip.
func others(n, skip int) []int {
	var out []int
	for i := range n {
		if i != skip {
			out = append(out, i)
		}
	}
	return out
}

// loadNote reads the load averages, for the tables' notes.
func loadNote() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// run runs one scenario function, noting the load before and after.
func (b *Bench) run(name string, fn func() (*Table, error)) error {
	before := loadNote()
	log.Printf("%s: %s …", b.label(), name)
	t0 := time.Now()
	t, err := fn()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	t.Key = name
	t.Notes = append(t.Notes, fmt.Sprintf("Load average (1/5/15 min) before: %s, after: %s; took %s.",
		before, loadNote(), time.Since(t0).Round(time.Second)))
	b.Tables = append(b.Tables, t)
	fmt.Println(t.Markdown())
	return nil
}

// RunAll runs the chosen scenarios in order.
func (b *Bench) RunAll(scenarios []string) error {
	var errs []error
	for _, s := range scenarios {
		if err := b.RunOne(s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RunOne runs one scenario (by its --scenarios name).
func (b *Bench) RunOne(s string) error {
	var err error
	switch s {
	case "cold":
		err = b.run("cold start", b.ColdStart)
	case "failover":
		err = b.run("failover", b.FailoverScenario)
	case "freeze":
		err = b.run("failover, leader frozen", b.FreezeScenario)
	case "silent":
		if _, ok := b.Net.(hostCutter); !ok {
			log.Printf("%s: silent skipped: it cuts the leader's host off the network, and only --net wan has a network to cut (on loopback every server shares one host)", b.label())
			return nil
		}
		err = b.run("failover, leader cut off", b.SilentScenario)
	case "latency":
		err = b.run("commit latency", b.Latency)
	case "throughput":
		err = b.run("throughput", b.ThroughputScenario)
	default:
		err = fmt.Errorf("unknown scenario %q", s)
	}
	if err != nil {
		log.Printf("%s: %v", b.label(), err)
	}
	return err
}
