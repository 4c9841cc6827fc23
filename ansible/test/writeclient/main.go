// Command writeclient keeps writing tasks to an rctl cluster while a
// rolling upgrade runs (make rollout-test), then checks that every write
// the cluster acknowledged is still there.
//
// Each write is Task.Add with a unique id. A write that fails with a
// retryable error (unavailable, not_leader, deadline_exceeded, a network
// error) is retried with the same id, as docs/rpc.md advises (re-adding an
// identical task is a no-op), for up to --retry-for; after that it counts
// as failed. It writes until SIGTERM/SIGINT, then reads back every
// acknowledged id with Task.Get and prints one JSON object:
//
//	{"acknowledged":N,"failed":N,"lost":N,"max_write_gap_ms":N,"leader_changes":N,"leaders":[...]}
//
// max_write_gap_ms is the longest time between two consecutive
// acknowledgements (writes are sequential, so it includes every retry);
// leader_changes counts changes of the leader seen by polling Status.Get
// every 100 ms on every server.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

type result struct {
	Acknowledged   int      `json:"acknowledged"`
	Failed         int      `json:"failed"`
	Lost           int      `json:"lost"`
	MaxWriteGapMS  int64    `json:"max_write_gap_ms"`
	LeaderChanges  int      `json:"leader_changes"`
	Leaders        []string `json:"leaders"`
	FailedErrors   []string `json:"failed_errors,omitempty"`
	LostIDs        []string `json:"lost_ids,omitempty"`
	DurationMS     int64    `json:"duration_ms"`
	GapAtMS        int64    `json:"max_gap_ended_at_unix_ms"`
	RetriedWrites  int      `json:"retried_writes"`
	VerifyFailures int      `json:"verify_errors"`
}

func main() {
	addr := flag.String("addr", "", "servers, comma-separated host:port")
	ca := flag.String("tls-ca", "", "CA certificate")
	cert := flag.String("tls-cert", "", "operator certificate")
	key := flag.String("tls-key", "", "operator key")
	tokenFile := flag.String("token-file", "", "file holding an operator or management token")
	prefix := flag.String("prefix", "ro", "task id prefix (ids are PREFIX-000001, ...)")
	interval := flag.Duration("interval", 20*time.Millisecond, "pause between two writes")
	retryFor := flag.Duration("retry-for", 30*time.Second, "how long one write is retried before it counts as failed")
	ready := flag.String("ready-file", "", "file created after the first acknowledged write")
	flag.Parse()

	st, err := pki.Load(pki.Files{CA: *ca, Cert: *cert, Key: *key})
	if err != nil {
		fatal(err)
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		fatal(err)
	}
	addrs := strings.Split(*addr, ",")
	cred := rpc.Credentials{TLS: st, Token: strings.TrimSpace(string(tok))}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var stopping atomic.Bool
	go func() { <-stop; stopping.Store(true) }()

	var res result
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // leader watcher: every server, every 100 ms
		defer wg.Done()
		pool := rpc.NewPoolWith(cred)
		defer pool.Close()
		last := ""
		for !stopping.Load() {
			for _, a := range addrs {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				var s rpc.StatusReply
				err := pool.Call(ctx, a, rpc.MethodStatus, &rpc.StatusArgs{}, &s)
				cancel()
				if err != nil || s.LeaderID == "" || s.State == "candidate" {
					continue
				}
				if s.State == "leader" || s.LastContactMS >= 0 && s.LastContactMS < 1000 {
					mu.Lock()
					if s.LeaderID != last {
						if last != "" {
							res.LeaderChanges++
						}
						last = s.LeaderID
						res.Leaders = append(res.Leaders, s.LeaderID)
					}
					mu.Unlock()
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	c := rpc.NewClientWith(addrs, cred)
	defer c.Close()
	var acked []string
	began := time.Now()
	lastAck := time.Time{}
	for n := 1; !stopping.Load(); n++ {
		id := fmt.Sprintf("%s-%06d", *prefix, n)
		args := rpc.TaskAddArgs{ID: id, Type: "sleep", Payload: map[string]string{"seconds": "1"}, Cloud: "rollout-none"}
		first := time.Now()
		tries := 0
		for {
			tries++
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.Call(ctx, rpc.MethodTaskAdd, &args, nil)
			cancel()
			if err == nil {
				now := time.Now()
				if !lastAck.IsZero() {
					if gap := now.Sub(lastAck).Milliseconds(); gap > res.MaxWriteGapMS {
						res.MaxWriteGapMS, res.GapAtMS = gap, now.UnixMilli()
					}
				}
				lastAck = now
				acked = append(acked, id)
				if tries > 1 {
					res.RetriedWrites++
				}
				if len(acked) == 1 && *ready != "" {
					_ = os.WriteFile(*ready, nil, 0o644)
				}
				break
			}
			if !retryable(err) || time.Since(first) > *retryFor {
				res.Failed++
				if len(res.FailedErrors) < 10 {
					res.FailedErrors = append(res.FailedErrors, fmt.Sprintf("%s: %v [%s]", id, err, rpc.CodeOf(err)))
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(*interval)
	}
	res.DurationMS = time.Since(began).Milliseconds()
	wg.Wait()

	// Read back every acknowledged write (linearizable reads, 16 at once).
	ids := make(chan string)
	var vmu sync.Mutex
	var vwg sync.WaitGroup
	for range 16 {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			for id := range ids {
				var err error
				for try := 0; try < 20; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					var reply rpc.TaskGetReply
					err = c.Call(ctx, rpc.MethodTaskGet, &rpc.TaskGetArgs{ID: id}, &reply)
					cancel()
					if err == nil && (reply.Task == nil || reply.Task.ID != id) {
						err = fmt.Errorf("Task.Get %s answered another task", id)
					}
					if err == nil || rpc.CodeOf(err) == rpc.CodeNotFound || !retryable(err) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				vmu.Lock()
				switch {
				case err == nil:
				case rpc.CodeOf(err) == rpc.CodeNotFound:
					res.Lost++
					if len(res.LostIDs) < 20 {
						res.LostIDs = append(res.LostIDs, id)
					}
				default:
					res.VerifyFailures++
				}
				vmu.Unlock()
			}
		}()
	}
	for _, id := range acked {
		ids <- id
	}
	close(ids)
	vwg.Wait()
	res.Acknowledged = len(acked)
	out, _ := json.Marshal(&res)
	fmt.Println(string(out))
	if res.VerifyFailures > 0 {
		os.Exit(1)
	}
}

// retryable: the write may be repeated with the same id.
func retryable(err error) bool {
	var re *rpc.Error
	if !errors.As(err, &re) {
		return true // a network error before any answer
	}
	switch re.Code {
	case rpc.CodeUnavailable, rpc.CodeNotLeader, rpc.CodeDeadlineExceeded, rpc.CodeInternal:
		return true
	}
	return false
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "writeclient:", err)
	os.Exit(1)
}
