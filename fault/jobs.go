//go:build linux

package fault

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// JobsConfig shapes the tasks the agents run.
type JobsConfig struct {
	// Prefix starts every job's task id ("<prefix>-<n>"). Default "job".
	Prefix string
	// Every is the pause between two job submissions. Default 500 ms.
	Every time.Duration
	// Run is how long each job runs (`sleep`). Default 500 ms.
	Run time.Duration
	// Ledger is the file every run appends one line to (required); see
	// ReadLedger.
	Ledger string
	// MaxAttempts of each job, so that requeues caused by partitions do
	// not exhaust it. Default 10.
	MaxAttempts int
	// OpTimeout bounds the submission of one job, retries included (the
	// add carries its id, so a retry is idempotent). Default 20 s.
	OpTimeout time.Duration
	// InFlight bounds concurrent submissions. Default 8.
	InFlight int
}

func (c *JobsConfig) fill() {
	if c.Prefix == "" {
		c.Prefix = "job"
	}
	if c.Every == 0 {
		c.Every = 500 * time.Millisecond
	}
	if c.Run == 0 {
		c.Run = 500 * time.Millisecond
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = 20 * time.Second
	}
	if c.InFlight == 0 {
		c.InFlight = 8
	}
}

// Jobs submits shell tasks for the agents to run, at a steady pace, from
// clients in both clouds. Each task sleeps Run and then appends a line to
// the ledger saying which node ran which attempt from when to when, so a
// checker can tell whether a task ever ran on two nodes at once
// (CheckJobs). Their ids start with Prefix; they have no cloud
// constraint, so any agent may run them.
type Jobs struct {
	cfg    JobsConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	acked   []string
	unknown []string
	n       int
}

// StartJobs starts submitting jobs, round robin over clients.
func StartJobs(clients []*Client, cfg JobsConfig) *Jobs {
	cfg.fill()
	if cfg.Ledger == "" {
		panic("fault: JobsConfig.Ledger is required")
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &Jobs{cfg: cfg, cancel: cancel}
	j.wg.Add(1)
	go j.run(ctx, clients)
	return j
}

// JobCommand is the shell command of a job that sleeps d and records its
// run in ledger: "<task> <attempt> <node> <start ns> <end ns>".
func JobCommand(d time.Duration, ledger string) string {
	return fmt.Sprintf(`s=$(date +%%s%%N); sleep %g; e=$(date +%%s%%N); echo "$RCTL_TASK_ID $RCTL_TASK_ATTEMPT ${%s:-unknown} $s $e" >> %s`,
		d.Seconds(), AgentNodeEnv, shellQuote(ledger))
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (j *Jobs) run(ctx context.Context, clients []*Client) {
	defer j.wg.Done()
	slots := make(chan struct{}, j.cfg.InFlight)
	var subs sync.WaitGroup
	defer subs.Wait()
	tick := time.NewTicker(j.cfg.Every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		id := fmt.Sprintf("%s-%d", j.cfg.Prefix, i)
		cl := clients[i%len(clients)]
		subs.Add(1)
		go func() {
			defer subs.Done()
			defer func() { <-slots }()
			octx, cancel := context.WithTimeout(context.Background(), j.cfg.OpTimeout)
			defer cancel()
			args := &rpc.TaskAddArgs{ID: id, Type: "shell", MaxAttempts: j.cfg.MaxAttempts,
				Payload: map[string]string{"cmd": JobCommand(j.cfg.Run, j.cfg.Ledger)}}
			var err error
			for {
				_, err = cl.Call(octx, rpc.MethodTaskAdd, args, nil)
				if err == nil || octx.Err() != nil || !retryableWrite(err) {
					break
				}
				select {
				case <-octx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
			j.mu.Lock()
			defer j.mu.Unlock()
			j.n++
			if err == nil {
				j.acked = append(j.acked, id)
			} else {
				j.unknown = append(j.unknown, id)
			}
		}()
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// retryableWrite reports whether an idempotent write may be sent again.
func retryableWrite(err error) bool {
	switch rpc.CodeOf(err) {
	case rpc.CodeInvalidArgument, rpc.CodeConflict, rpc.CodeNotFound, rpc.CodePermissionDenied:
		return false
	}
	return true
}

// Stop ends submissions, waits for those in flight and returns the jobs
// whose add was acknowledged and those whose add failed without a
// definite answer (they may exist or not).
func (j *Jobs) Stop() (acked, uncertain []string) {
	j.cancel()
	j.wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	acked, uncertain = append([]string(nil), j.acked...), append([]string(nil), j.unknown...)
	sort.Strings(acked)
	sort.Strings(uncertain)
	return acked, uncertain
}

// Submitted is how many submissions have ended so far.
func (j *Jobs) Submitted() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}
