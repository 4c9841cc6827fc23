package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

// probeCacheAge is how long the leader reuses its probe of each server in
// Status.Members (docs/rpc.md); a health verdict younger than this may
// describe a server as it was before it restarted.
const probeCacheAge = 2 * time.Second

// healthOptions are the flags of `rctl operator health`.
type healthOptions struct {
	maxLag       int64
	minVoters    int
	minTolerance int
	wait         time.Duration
	stable       time.Duration
	interval     time.Duration
}

// healthServer is one server as the health gate judged it.
type healthServer struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	Cloud         string `json:"cloud"`
	Region        string `json:"region"`
	Suffrage      string `json:"suffrage"`
	State         string `json:"state"`
	Leader        bool   `json:"leader"`
	LastContactMS int64  `json:"last_contact_ms"`
	Lag           int64  `json:"lag"`
	// Healthy: answering as leader or follower with a known lag of at
	// most --max-lag.
	Healthy bool `json:"healthy"`
	// Problem says why Healthy is false ("" when it is true).
	Problem string `json:"problem,omitempty"`
}

// healthCheck is one of the gate's checks.
type healthCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// healthReport is what `rctl operator health` prints (-o json: this object).
type healthReport struct {
	Healthy bool `json:"healthy"`
	// From is the server that answered Status.Get (the contacted one);
	// Members come from the leader.
	From             string         `json:"from"`
	LeaderID         string         `json:"leader_id"`
	LeaderAddr       string         `json:"leader_addr"`
	Term             uint64         `json:"term"`
	CommitIndex      uint64         `json:"commit_index"`
	Voters           int            `json:"voters"`
	HealthyVoters    int            `json:"healthy_voters"`
	Quorum           int            `json:"quorum"`
	FailureTolerance int            `json:"failure_tolerance"`
	MaxLag           int64          `json:"max_lag"`
	MinVoters        int            `json:"min_voters"`
	MinTolerance     int            `json:"min_failure_tolerance"`
	Checks           []healthCheck  `json:"checks"`
	Servers          []healthServer `json:"servers"`
	Warnings         []string       `json:"warnings"`
}

// failed returns the failed checks' one-line reasons.
func (r *healthReport) failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return out
}

// errUnhealthy is returned when the checks ran and at least one failed:
// exit status 3 (ExitUnhealthy), apart from 1 (the cluster could not be
// asked) and 2 (a usage mistake).
func errUnhealthy(r *healthReport) error {
	n := len(r.failed())
	return exitError{ExitUnhealthy, fmt.Errorf("cluster is not healthy: %d of %d checks failed", n, len(r.Checks))}
}

func newOperatorHealthCommand(g *globals) *cobra.Command {
	o := healthOptions{}
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Health gate for rolling changes: exit 0 only when it is safe to take the next server down",
		Long: `Check, from the leader's view (Status.Members) and the contacted server's
(Status.Get), that the cluster can lose one more server: exit 0 only when every
check passes. Rollouts (ansible/upgrade.yml) run it before each server and
wait on it after each restart.

Checks (each failed one prints one line "name: reason" on stderr):
  leader             a leader is known: the leader answers Status.Members and
                     the contacted server follows the same leader
  voters             every voter is present and answering (state leader or
                     follower in the leader's probe)
  lag                every follower (voters and non-voters) trails the
                     leader's log by at most --max-lag entries
  failure_tolerance  healthy voters - quorum >= --min-failure-tolerance,
                     where quorum = voters/2 + 1 and a healthy voter answers
                     and is within --max-lag
  min_voters         at least --min-voters voters (only with --min-voters)

Without -o json it prints the facts (leader, term, quorum, tolerance, one row
per server) and then "healthy" or the failed checks. -o json prints the same
facts as one object: {healthy, from, leader_id, leader_addr, term,
commit_index, voters, healthy_voters, quorum, failure_tolerance, max_lag,
min_voters, min_failure_tolerance, checks: [{name, ok, detail}], servers:
[{id, address, cloud, region, suffrage, state, leader, last_contact_ms, lag,
healthy, problem}], warnings}.

The leader reuses its probe of each server for up to 2 s, so right after a
server restarts one healthy answer may describe it as it was before; --wait
therefore requires the cluster to stay healthy for --stable (default 3s)
before it succeeds.

Exit status: 0 healthy; 3 not healthy (the checks ran and one failed, or
--wait ran out while it was not healthy); 2 a usage mistake; 1 the cluster
could not be asked (no server reachable, permission denied, ...), as for
every other command.

Who may run it: it only reads, with the same rights as rctl members: a
reader (or stronger) token with an operator certificate, or an agent or
server certificate.`,
		Example: `  rctl operator health
  rctl operator health --max-lag 16 --min-voters 5 -o json
  rctl operator health --wait 5m --min-failure-tolerance 2   # in a rollout, before the next server`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if o.maxLag < 0 {
				return usagef("--max-lag must be >= 0, got %d", o.maxLag)
			}
			if o.minVoters < 0 {
				return usagef("--min-voters must be >= 0, got %d", o.minVoters)
			}
			if o.minTolerance < 0 {
				return usagef("--min-failure-tolerance must be >= 0, got %d", o.minTolerance)
			}
			if o.wait < 0 || o.stable < 0 {
				return usagef("--wait and --stable must not be negative")
			}
			if o.interval <= 0 {
				return usagef("--interval must be positive, got %s", o.interval)
			}
			return runHealth(g, o)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.maxLag, "max-lag", 64, "most log entries a follower may trail the leader's last index and still count as caught up (0: exactly caught up)")
	f.IntVar(&o.minVoters, "min-voters", 0, "fail unless the raft configuration has at least this many voters, e.g. 5 for a 3+2 cluster, so a server removed by mistake is noticed (0: not checked)")
	f.IntVar(&o.minTolerance, "min-failure-tolerance", 1, "healthy voters minus quorum must be at least this; 1 = the cluster survives losing one more voter. A rollout that is about to stop a server asks for 2, so one voter to spare remains while that server is down")
	f.DurationVar(&o.wait, "wait", 0, "keep checking until the cluster is healthy (for --stable) or this much time has passed, e.g. 5m; meanwhile errors such as no leader during an election are retried, and each check is bounded by --timeout (0: check once)")
	f.DurationVar(&o.stable, "stable", 3*time.Second, "with --wait: how long every check must keep passing before the command succeeds; keep it above the leader's 2s probe cache")
	f.DurationVar(&o.interval, "interval", time.Second, "with --wait: time between two checks")
	return cmd
}

// runHealth checks once, or polls until healthy (for o.stable) or o.wait runs out.
func runHealth(g *globals, o healthOptions) error {
	c := g.client()
	defer c.Close()
	if o.wait == 0 {
		r, err := checkHealth(g, c, o)
		if err != nil {
			return err
		}
		return reportHealth(g, r)
	}
	deadline := time.Now().Add(o.wait)
	var healthySince time.Time
	var last *healthReport
	var lastErr error
	for {
		r, err := checkHealth(g, c, o)
		switch {
		case err != nil && !healthRetryable(err):
			return err
		case err != nil:
			last, lastErr, healthySince = nil, err, time.Time{}
		case !r.Healthy:
			last, lastErr, healthySince = r, nil, time.Time{}
		default:
			last, lastErr = r, nil
			if healthySince.IsZero() {
				healthySince = time.Now()
			}
			if time.Since(healthySince) >= o.stable {
				return reportHealth(g, r)
			}
		}
		if time.Now().Add(o.interval).After(deadline) {
			break
		}
		time.Sleep(o.interval)
	}
	if last == nil {
		return fmt.Errorf("the cluster was not healthy within --wait %s: %w", o.wait, lastErr)
	}
	if last.Healthy {
		// Healthy at the end, but not for --stable yet: say so.
		last.Healthy = false
		last.Checks = append(last.Checks, healthCheck{Name: "stable", Detail: fmt.Sprintf("healthy for less than --stable %s before --wait %s ran out", o.stable, o.wait)})
	}
	return reportHealth(g, last)
}

// healthRetryable reports whether --wait should ask again after err: the
// cluster may be electing a leader or a server restarting. Refusals
// (permission_denied, invalid_argument) are final.
func healthRetryable(err error) bool {
	switch rpc.CodeOf(err) {
	case rpc.CodeUnavailable, rpc.CodeNotLeader, rpc.CodeDeadlineExceeded, rpc.CodeInternal:
		var re *rpc.Error
		// internal without an *rpc.Error is a local network error (e.g.
		// no route while an interface comes up): retry it too.
		return rpc.CodeOf(err) != rpc.CodeInternal || !errors.As(err, &re)
	}
	return false
}

// checkHealth asks the cluster once and judges the answer.
func checkHealth(g *globals, c *rpc.Client, o healthOptions) (*healthReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	var st rpc.StatusReply
	if err := c.Call(ctx, rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
		return nil, err
	}
	var m rpc.MembersReply
	if err := c.Call(ctx, rpc.MethodMembers, &rpc.MembersArgs{}, &m); err != nil {
		return nil, err
	}
	return judgeHealth(&st, &m, o), nil
}

// judgeHealth computes the report from a server's status and the leader's
// member list. Pure, so the rules are tested without a cluster.
func judgeHealth(st *rpc.StatusReply, m *rpc.MembersReply, o healthOptions) *healthReport {
	r := &healthReport{
		From: st.ID, Term: st.Term, CommitIndex: st.CommitIndex,
		MaxLag: o.maxLag, MinVoters: o.minVoters, MinTolerance: o.minTolerance,
		Warnings: m.Warnings,
	}
	var leaders []string
	var notAnswering, lagging []string
	for _, mem := range m.Members {
		s := healthServer{
			ID: mem.ID, Address: mem.Address, Cloud: mem.Cloud, Region: mem.Region,
			Suffrage: mem.Suffrage, State: mem.State, Leader: mem.Leader,
			LastContactMS: mem.LastContactMS, Lag: mem.Lag,
		}
		voter := mem.Suffrage == "voter"
		if voter {
			r.Voters++
		}
		if mem.Leader && mem.State == "leader" {
			leaders = append(leaders, mem.ID)
			r.LeaderID, r.LeaderAddr = mem.ID, mem.Address
		}
		switch {
		case mem.State != "leader" && mem.State != "follower":
			s.Problem = "not answering (state " + mem.State + ")"
			if voter {
				notAnswering = append(notAnswering, fmt.Sprintf("%s (%s)", mem.ID, mem.State))
			} else {
				lagging = append(lagging, fmt.Sprintf("%s (nonvoter, %s)", mem.ID, mem.State))
			}
		case mem.State == "follower" && mem.Lag < 0:
			s.Problem = "lag unknown"
			lagging = append(lagging, mem.ID+" (lag unknown)")
		case mem.State == "follower" && mem.Lag > o.maxLag:
			s.Problem = fmt.Sprintf("%d entries behind", mem.Lag)
			lagging = append(lagging, fmt.Sprintf("%s (%d behind)", mem.ID, mem.Lag))
		default:
			s.Healthy = true
			if voter {
				r.HealthyVoters++
			}
		}
		r.Servers = append(r.Servers, s)
	}
	sort.Slice(r.Servers, func(i, j int) bool { return r.Servers[i].ID < r.Servers[j].ID })
	if r.Voters > 0 {
		r.Quorum = r.Voters/2 + 1
	}
	r.FailureTolerance = r.HealthyVoters - r.Quorum

	add := func(name string, ok bool, detail string) {
		r.Checks = append(r.Checks, healthCheck{Name: name, OK: ok, Detail: detail})
	}
	switch {
	case len(leaders) != 1:
		add("leader", false, fmt.Sprintf("the member list names %d leaders (%s); an election may be under way", len(leaders), strings.Join(leaders, ", ")))
	case st.LeaderID == "":
		add("leader", false, fmt.Sprintf("%s (the contacted server) knows no leader while the member list names %s", st.ID, r.LeaderID))
	case st.LeaderID != r.LeaderID:
		add("leader", false, fmt.Sprintf("%s (the contacted server) follows %s but the member list names %s; leadership is moving", st.ID, st.LeaderID, r.LeaderID))
	default:
		add("leader", true, fmt.Sprintf("%s at %s, term %d", r.LeaderID, r.LeaderAddr, st.Term))
	}
	if len(notAnswering) > 0 {
		add("voters", false, fmt.Sprintf("%d of %d voters not answering: %s", len(notAnswering), r.Voters, strings.Join(notAnswering, ", ")))
	} else {
		add("voters", r.Voters > 0, fmt.Sprintf("all %d voters answering", r.Voters))
	}
	if len(lagging) > 0 {
		add("lag", false, fmt.Sprintf("%s more than --max-lag %d entries behind the leader: %s", pluralAre(len(lagging), "follower"), o.maxLag, strings.Join(lagging, ", ")))
	} else {
		add("lag", true, fmt.Sprintf("every follower within %d entries", o.maxLag))
	}
	tolDetail := fmt.Sprintf("%d healthy of %d voters, quorum %d: tolerance %d (need >= %d)", r.HealthyVoters, r.Voters, r.Quorum, r.FailureTolerance, o.minTolerance)
	add("failure_tolerance", r.FailureTolerance >= o.minTolerance, tolDetail)
	if o.minVoters > 0 {
		add("min_voters", r.Voters >= o.minVoters, fmt.Sprintf("%d voters (need >= %d)", r.Voters, o.minVoters))
	}
	r.Healthy = true
	for _, c := range r.Checks {
		r.Healthy = r.Healthy && c.OK
	}
	return r
}

// pluralAre is "1 follower is" / "2 followers are".
func pluralAre(n int, noun string) string {
	if n == 1 {
		return "1 " + noun + " is"
	}
	return fmt.Sprintf("%d %ss are", n, noun)
}

// reportHealth prints r and returns errUnhealthy when a check failed.
func reportHealth(g *globals, r *healthReport) error {
	if g.json() {
		if err := g.printJSON(r); err != nil {
			return err
		}
	} else {
		w := g.stdout
		fmt.Fprintf(w, "leader:            %s\n", termsafe.Field(dash(r.LeaderID)))
		fmt.Fprintf(w, "term:              %d (as %s sees it)\n", r.Term, termsafe.Field(r.From))
		fmt.Fprintf(w, "voters:            %d (%d healthy), quorum %d\n", r.Voters, r.HealthyVoters, r.Quorum)
		fmt.Fprintf(w, "failure tolerance: %d\n", r.FailureTolerance)
		t := newTable(w, "ID", "ADDRESS", "CLOUD", "SUFFRAGE", "STATE", "LAST_CONTACT", "LAG", "HEALTHY")
		for _, s := range r.Servers {
			lag := "-"
			if s.Lag >= 0 {
				lag = fmt.Sprint(s.Lag)
			}
			ok := "yes"
			if !s.Healthy {
				ok = "no: " + s.Problem
			}
			t.row(s.ID, s.Address, dash(s.Cloud), s.Suffrage, s.State, msOrDash(s.LastContactMS), lag, ok)
		}
		if err := t.flush(); err != nil {
			return err
		}
		for _, warn := range r.Warnings {
			fmt.Fprintf(w, "WARNING: %s\n", termsafe.Field(warn))
		}
		if r.Healthy {
			fmt.Fprintln(w, "healthy: safe to take one server down")
		}
	}
	if r.Healthy {
		return nil
	}
	for _, reason := range r.failed() {
		fmt.Fprintf(g.stderr, "rctl: %s\n", termsafe.Field(reason))
	}
	return errUnhealthy(r)
}
