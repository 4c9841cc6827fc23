//go:build linux

package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// WorkloadConfig shapes the concurrent task workload.
type WorkloadConfig struct {
	// Prefix starts every task id; make it unique per run. Default "w".
	Prefix string
	// Tasks is how many task ids are live at once, shared by all clients
	// so their operations meet. Default 8.
	Tasks int
	// Generation is how long one set of ids is used before the workload
	// moves to fresh ones, so tasks keep going absent → pending →
	// cancelled. Default 4 s.
	Generation time.Duration
	// OpTimeout bounds one operation, retries included. Default 3 s.
	OpTimeout time.Duration
	// Think is the pause between a client's operations. Default 10 ms.
	Think time.Duration
	// Seed makes the choice of operations reproducible. Default 1.
	Seed uint64
	// ListPercent sets how many Task.Lists (half linearizable, half
	// stale) come with every 100 other operations, which are 30 adds, 55
	// gets and 15 cancels. Default 10; negative means none.
	ListPercent int
}

func (c *WorkloadConfig) fill() {
	if c.Prefix == "" {
		c.Prefix = "w"
	}
	if c.Tasks == 0 {
		c.Tasks = 8
	}
	if c.Generation == 0 {
		c.Generation = 4 * time.Second
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 3 * time.Second
	}
	if c.Think == 0 {
		c.Think = 10 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.ListPercent == 0 {
		c.ListPercent = 10
	}
	c.ListPercent = max(c.ListPercent, 0)
}

// Workload runs clients that add, read (linearizable Task.Get), list
// (Task.List, linearizable and stale) and cancel tasks concurrently,
// recording every operation in a History. The tasks carry a cloud
// constraint no node has, so they stay pending until cancelled and the
// history checks against TaskModel and CheckLists.
type Workload struct {
	cfg    WorkloadConfig
	hist   *History
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartWorkload starts one goroutine per client; client i is ClientId i
// in the history.
func StartWorkload(clients []*Client, cfg WorkloadConfig) *Workload {
	cfg.fill()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Workload{cfg: cfg, hist: NewHistory(), cancel: cancel}
	for i, cl := range clients {
		w.wg.Add(1)
		go w.run(ctx, i, cl, rand.New(rand.NewPCG(cfg.Seed, uint64(i))))
	}
	return w
}

// Stop ends the workload, waits for operations in flight and returns the
// history.
func (w *Workload) Stop() *History {
	w.cancel()
	w.wg.Wait()
	return w.hist
}

// History is the history recorded so far.
func (w *Workload) History() *History { return w.hist }

func (w *Workload) run(ctx context.Context, id int, cl *Client, rng *rand.Rand) {
	defer w.wg.Done()
	for ctx.Err() == nil {
		gen := int(time.Since(w.hist.start) / w.cfg.Generation)
		task := fmt.Sprintf("%s-%d-%d", w.cfg.Prefix, gen, rng.IntN(w.cfg.Tasks))
		octx, cancel := context.WithTimeout(context.Background(), w.cfg.OpTimeout)
		switch r := rng.IntN(100 + w.cfg.ListPercent); {
		case r < w.cfg.ListPercent:
			ListOp(octx, w.hist, id, cl, rng.IntN(2) == 0, w.cfg.Prefix)
		case r < w.cfg.ListPercent+30:
			AddOp(octx, w.hist, id, cl, task)
		case r < w.cfg.ListPercent+85:
			GetOp(octx, w.hist, id, cl, task)
		default:
			CancelOp(octx, w.hist, id, cl, task)
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(w.cfg.Think):
		}
	}
}

// AddOp adds task (a task no node can run) through cl and records the
// operation in h as client's.
func AddOp(ctx context.Context, h *History, client int, cl *Client, task string) Op {
	return h.Do(client, OpAdd, task, func() (string, string, error) {
		var reply rpc.TaskReply
		addr, ambiguous, err := cl.CallWrite(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: task, Type: "fault",
			Payload: map[string]string{"by": "fault-workload"}, Cloud: "nowhere"}, &reply)
		return retriedWriteOutcome(err, ambiguous), addr, err
	})
}

// GetOp reads task with a linearizable Task.Get through cl and records
// the operation in h.
func GetOp(ctx context.Context, h *History, client int, cl *Client, task string) Op {
	return h.Do(client, OpGet, task, func() (string, string, error) {
		var reply rpc.TaskGetReply
		addr, err := cl.Call(ctx, rpc.MethodTaskGet, &rpc.TaskGetArgs{ID: task}, &reply)
		return readOutcome(&reply, err), addr, err
	})
}

// CancelOp cancels task through cl and records the operation in h.
func CancelOp(ctx context.Context, h *History, client int, cl *Client, task string) Op {
	return h.Do(client, OpCancel, task, func() (string, string, error) {
		var reply rpc.TaskReply
		addr, ambiguous, err := cl.CallWrite(ctx, rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: task, Reason: "fault workload"}, &reply)
		return retriedWriteOutcome(err, ambiguous), addr, err
	})
}

// ListOp lists the tasks (linearizable, or stale) through cl and records
// the operation in h, with the status of every listed task whose id
// starts with prefix+"-".
func ListOp(ctx context.Context, h *History, client int, cl *Client, stale bool, prefix string) Op {
	kind := OpList
	if stale {
		kind = OpListStale
	}
	return h.DoOp(client, kind, "", func(op *Op) error {
		var reply rpc.TaskListReply
		addr, err := cl.Call(ctx, rpc.MethodTaskList, &rpc.TaskListArgs{Limit: rpc.MaxTaskListLimit, QueryOptions: rpc.QueryOptions{Stale: stale}}, &reply)
		op.Out, op.Server = listOutcome(err), addr
		if err == nil {
			op.Index = reply.Index
			op.Seen = map[string]string{}
			for _, t := range reply.Tasks {
				if strings.HasPrefix(t.ID, prefix+"-") {
					op.Seen[t.ID] = string(t.Status)
				}
			}
		}
		return err
	})
}

// Write adds one task through cl, retrying until ctx ends, and returns
// when it was acknowledged: the probe the scenarios time failovers with.
func Write(ctx context.Context, cl *Client, id string) (time.Time, error) {
	var reply rpc.TaskReply
	for {
		_, err := cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: id, Type: "fault",
			Payload: map[string]string{"by": "fault-probe"}, Cloud: "nowhere"}, &reply)
		if err == nil {
			return time.Now(), nil
		}
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("write %s: %w", id, err)
		}
		switch rpc.CodeOf(err) {
		case rpc.CodeInvalidArgument, rpc.CodeConflict:
			return time.Time{}, fmt.Errorf("write %s: %w", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LocalProbes returns one client per server, in the client namespace of
// the server's own cloud ("c-aws", "c-gcp", as ClientsPerCloud names
// them), each talking to that server only: a client next to every server.
func (c *Cluster) LocalProbes(svs ...*Server) []*Client {
	c.T.Helper()
	if len(svs) == 0 {
		svs = c.Servers
	}
	out := make([]*Client, 0, len(svs))
	for _, sv := range svs {
		out = append(out, c.Probes("c-"+sv.Cloud, sv)...)
	}
	return out
}

// Probes returns one client per server, all in the named node's
// namespace, each talking to its server only.
func (c *Cluster) Probes(node string, svs ...*Server) []*Client {
	c.T.Helper()
	out := make([]*Client, 0, len(svs))
	for _, sv := range svs {
		cl := c.Client(node, sv)
		cl.Name = node + "→" + sv.Name
		out = append(out, cl)
	}
	return out
}

// Probe timing for FirstWrite: each probe starts an attempt every
// probeEvery, keeps at most probeInFlight in flight, and gives each
// probeAttempt. Overlapping attempts make the figure independent of how
// long a call is held by a server that cannot answer (a frozen or cut-off
// leader a follower still forwards to).
const (
	probeEvery    = 100 * time.Millisecond
	probeInFlight = 8
	probeAttempt  = 5 * time.Second
)

// FirstWrite makes every probe add tasks (id-<probe>-<attempt>), a fresh
// attempt every 100 ms, and returns when the first is acknowledged, with
// the name of the probe that saw it: the moment the cluster accepts
// writes again, as the nearest client sees it. Attempts still in flight
// are abandoned (they may still commit).
func FirstWrite(ctx context.Context, probes []*Client, id string) (time.Time, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		at time.Time
		by string
	}
	won := make(chan result, 1)
	var mu sync.Mutex
	var lastErr error
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var attempts sync.WaitGroup
			defer attempts.Wait()
			slots := make(chan struct{}, probeInFlight)
			tick := time.NewTicker(probeEvery)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				attempts.Add(1)
				go func() {
					defer attempts.Done()
					defer func() { <-slots }()
					actx, acancel := context.WithTimeout(ctx, probeAttempt)
					defer acancel()
					err := p.pool.Call(actx, p.Addrs[n%len(p.Addrs)], rpc.MethodTaskAdd, &rpc.TaskAddArgs{
						ID: fmt.Sprintf("%s-%d-%d", id, i, n), Type: "fault",
						Payload: map[string]string{"by": "fault-probe"}, Cloud: "nowhere"}, nil)
					if err == nil {
						select {
						case won <- result{time.Now(), p.Name}:
						default:
						}
						cancel()
						return
					}
					mu.Lock()
					lastErr = fmt.Errorf("%s: %w", p.Name, err)
					mu.Unlock()
				}()
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case r := <-won:
		return r.at, r.by, nil
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	return time.Time{}, "", fmt.Errorf("no probe write acknowledged: last error %v", lastErr)
}
