package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/rpc"
)

// Caller makes one RPC against one server, without failover: the watcher
// decides which server to ask. *rpc.Pool implements it; tests fake it.
type Caller interface {
	Call(ctx context.Context, addr, method string, args, reply any) error
}

var _ Caller = (*rpc.Pool)(nil)

// WatchConfig tunes the watcher. Zero fields take the defaults below.
type WatchConfig struct {
	// StatusWait is the max_wait of the blocking Status.Get on the connected
	// server (default 2 s). The call also returns at once on a new applied
	// entry or a leader or term change, so this bounds only how stale
	// last-contact and commit figures may get on an idle cluster.
	StatusWait time.Duration
	// NodesWait is Node.List's max_wait (default 2 s): heartbeat ages move
	// without any index change, so they are refreshed at least this often.
	NodesWait time.Duration
	// TasksWait is Task.List's max_wait (default 10 s).
	TasksWait time.Duration
	// TaskPage is how many tasks the tasks panel asks for (default 500):
	// the newest ones matching the view's filter (see TaskQuery), never
	// the whole manifest, which may hold millions.
	TaskPage int
	// MembersEvery is the Status.Members refresh period (default 1 s); it
	// is also refreshed on every leader or term change.
	MembersEvery time.Duration
	// Slack is added to a blocking call's max_wait to form its deadline
	// (default 2 s), so a slow answer is not taken for a dead server.
	Slack time.Duration
	// MinGap is the least time between two calls of one loop (default
	// 250 ms): a busy cluster wakes blocking queries on every write, and
	// the screen need not redraw faster than this.
	MinGap time.Duration
	// ProbeTimeout bounds the Status.Get that checks a server while
	// looking for one to connect to (default 1 s).
	ProbeTimeout time.Duration
	// NoLeaderMove: when the connected server has known no leader for this
	// long (default 5 s), look for a server that knows one and move there.
	NoLeaderMove time.Duration
	// Now is the clock that stamps messages (default time.Now).
	Now func() time.Time
}

func (c *WatchConfig) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.StatusWait, 2*time.Second)
	set(&c.NodesWait, 2*time.Second)
	set(&c.TasksWait, 10*time.Second)
	if c.TaskPage <= 0 {
		c.TaskPage = 500
	}
	set(&c.MembersEvery, time.Second)
	set(&c.Slack, 2*time.Second)
	set(&c.MinGap, 250*time.Millisecond)
	set(&c.ProbeTimeout, time.Second)
	set(&c.NoLeaderMove, 5*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// errorGrace is how long a read loop waits before reporting an error, in
// case the watcher is about to move to another server anyway.
const errorGrace = 500 * time.Millisecond

// membersTimeout bounds Status.Members: the leader probes every server
// for up to 1.5 s before answering.
const membersTimeout = 3 * time.Second

// Watcher keeps a Model fed: it owns the connection to one server and runs
// the blocking queries, sending what it learns as messages.
type Watcher struct {
	c    Caller
	cfg  WatchConfig
	send func(tea.Msg)

	mu     sync.Mutex
	addrs  []string // seeds first, then learned, no duplicates
	addr   string   // connected server
	id     string
	gen    context.Context // cancelled when the watcher moves away from addr
	cancel context.CancelFunc

	kick chan struct{} // refresh members now

	// The tasks panel's filter: the query follows it (SetTaskFilter).
	taskMu     sync.Mutex
	taskFilter string
	taskGen    uint64          // bumped on every change of taskFilter
	taskCtx    context.Context // cancelled when taskFilter changes
	taskCancel context.CancelFunc
}

// errRequery ends a Task.List call cut short because the panel's filter
// changed: the loop asks again at once, with the new filter.
var errRequery = errors.New("the tasks filter changed")

// NewWatcher returns a watcher over the given seed addresses that delivers
// messages through send (e.g. (*tea.Program).Send).
func NewWatcher(c Caller, seeds []string, cfg WatchConfig, send func(tea.Msg)) *Watcher {
	cfg.defaults()
	w := &Watcher{c: c, cfg: cfg, send: send, kick: make(chan struct{}, 1)}
	w.taskCtx, w.taskCancel = context.WithCancel(context.Background())
	for _, a := range seeds {
		w.learn(a)
	}
	return w
}

// Addrs returns every address the watcher knows, seeds first.
func (w *Watcher) Addrs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.addrs...)
}

func (w *Watcher) learn(addr string) {
	if addr == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.addrs {
		if a == addr {
			return
		}
	}
	w.addrs = append(w.addrs, addr)
}

// current returns the connected address and the context that lives while
// the watcher stays connected to it.
func (w *Watcher) current() (string, context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr, w.gen
}

func (w *Watcher) switchTo(ctx context.Context, addr, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
	w.addr, w.id = addr, id
	w.gen, w.cancel = context.WithCancel(ctx)
}

// SetTaskFilter makes the tasks panel's query follow the view's filter
// (the `/` filter of Model, as Options.OnFilter reports it): the blocking
// Task.List in flight is cut short and asked again at once.
func (w *Watcher) SetTaskFilter(filter string) {
	w.taskMu.Lock()
	defer w.taskMu.Unlock()
	if filter == w.taskFilter {
		return
	}
	w.taskFilter = filter
	w.taskGen++
	w.taskCancel()
	w.taskCtx, w.taskCancel = context.WithCancel(context.Background())
}

// taskQuery returns the current filter, its generation and the context
// that ends when it changes.
func (w *Watcher) taskQuery() (string, uint64, context.Context) {
	w.taskMu.Lock()
	defer w.taskMu.Unlock()
	return w.taskFilter, w.taskGen, w.taskCtx
}

// TaskListArgs is the Task.List page the tasks panel asks for under a
// view filter (Model's `/` syntax): the newest page tasks, with the
// filter's parts the server can apply (one status, node:, type:) sent
// along; words, and a choice of several statuses, are applied by the
// model to that page. So the answer is bounded however large the
// manifest is, and counts come with it.
func TaskListArgs(filter string, page int) rpc.TaskListArgs {
	f := parseFilter(filter)
	a := rpc.TaskListArgs{Limit: min(max(page, 1), rpc.MaxTaskListLimit), Reverse: true, NodeID: f.node, Type: f.typ}
	if len(f.statuses) == 1 {
		for s := range f.statuses {
			if s.Valid() {
				a.Status = string(s)
			}
		}
	}
	if len(a.NodeID) > fsm.MaxIDLen || len(a.Type) > fsm.MaxTypeLen {
		// Nothing can match; ask for nothing rather than be refused.
		a.NodeID, a.Type, a.Limit = "", "", 1
	}
	return a
}

func (w *Watcher) kickMembers() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends. It first connects to a seed (retrying while
// none answers), then runs one loop per read.
func (w *Watcher) Run(ctx context.Context) {
	st, ok := w.connect(ctx, "", "", nil)
	if !ok {
		return
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); w.membersLoop(ctx) }()
	go func() {
		defer wg.Done()
		w.blockingLoop(ctx, w.cfg.NodesWait, func(cctx context.Context, addr string, minIndex uint64) (tea.Msg, uint64, error) {
			var r rpc.NodeListReply
			err := w.c.Call(cctx, addr, rpc.MethodNodeList, &rpc.NodeListArgs{QueryOptions: w.query(minIndex, w.cfg.NodesWait)}, &r)
			if err != nil {
				return NodesMsg{Addr: addr, Err: err.Error(), At: w.cfg.Now()}, 0, err
			}
			return NodesMsg{Addr: addr, Reply: &r, At: w.cfg.Now()}, r.Index, nil
		})
	}()
	go func() {
		defer wg.Done()
		var answered uint64 // the filter generation the last answer was for
		w.blockingLoop(ctx, w.cfg.TasksWait, func(cctx context.Context, addr string, minIndex uint64) (tea.Msg, uint64, error) {
			filter, gen, fctx := w.taskQuery()
			if gen != answered {
				minIndex = 0 // a new filter: answer at once
			}
			cctx, stop := mergeCancel(cctx, fctx)
			defer stop()
			args := TaskListArgs(filter, w.cfg.TaskPage)
			args.QueryOptions = w.query(minIndex, w.cfg.TasksWait)
			var r rpc.TaskListReply
			err := w.c.Call(cctx, addr, rpc.MethodTaskList, &args, &r)
			if err != nil {
				if fctx.Err() != nil {
					return nil, 0, errRequery
				}
				return TasksMsg{Addr: addr, Filter: filter, Err: err.Error(), At: w.cfg.Now()}, 0, err
			}
			answered = gen
			return TasksMsg{Addr: addr, Filter: filter, Reply: &r, At: w.cfg.Now()}, r.Index, nil
		})
	}()
	w.statusLoop(ctx, st)
	wg.Wait()
	w.mu.Lock()
	if w.cancel != nil {
		w.cancel()
	}
	w.mu.Unlock()
}

func (w *Watcher) query(minIndex uint64, wait time.Duration) rpc.QueryOptions {
	if minIndex == 0 {
		return rpc.QueryOptions{}
	}
	return rpc.QueryOptions{MinIndex: minIndex, MaxWaitMS: wait.Milliseconds()}
}

func (w *Watcher) status(ctx context.Context, addr string, minIndex uint64, timeout time.Duration) (*rpc.StatusReply, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := &rpc.StatusArgs{}
	if minIndex > 0 {
		args.MinIndex, args.MaxWaitMS = minIndex, w.cfg.StatusWait.Milliseconds()
	}
	var st rpc.StatusReply
	if err := w.c.Call(cctx, addr, rpc.MethodStatus, args, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// connect finds a server that answers Status.Get, trying every known
// address after failed (failed itself last), and switches to it. With
// needLeader it only takes a server that knows a leader and gives up after
// one round; otherwise it retries with backoff until ctx ends, sending a
// ConnLostMsg after each round in which nobody answered.
func (w *Watcher) connect(ctx context.Context, failed, reason string, needLeader func(*rpc.StatusReply) bool) (*rpc.StatusReply, bool) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		addrs := w.Addrs()
		order := make([]string, 0, len(addrs))
		start := 0
		for i, a := range addrs {
			if a == failed {
				start = i + 1
			}
		}
		for i := range addrs {
			if a := addrs[(start+i)%len(addrs)]; a != failed {
				order = append(order, a)
			}
		}
		if failed != "" && needLeader == nil {
			order = append(order, failed)
		}
		var lastErr error
		for _, a := range order {
			st, err := w.status(ctx, a, 0, w.cfg.ProbeTimeout)
			if ctx.Err() != nil {
				return nil, false
			}
			if err != nil {
				lastErr = err
				continue
			}
			if needLeader != nil && !needLeader(st) {
				continue
			}
			w.mu.Lock()
			prevID := w.id
			w.mu.Unlock()
			prev := failed
			if a == failed {
				prev, prevID = "", ""
			}
			w.switchTo(ctx, a, st.ID)
			w.send(ConnMsg{Addr: a, ID: st.ID, PrevAddr: prev, PrevID: prevID, Reason: reason, At: w.cfg.Now()})
			w.send(StatusMsg{Addr: a, Status: *st, At: w.cfg.Now()})
			w.learn(st.LeaderAddr)
			w.kickMembers()
			return st, true
		}
		if needLeader != nil {
			return nil, false
		}
		if lastErr == nil {
			lastErr = errors.New("no address to try; set --addr")
		}
		w.send(ConnLostMsg{Tried: order, Err: lastErr.Error(), At: w.cfg.Now()})
		if !sleepCtx(ctx, backoff) {
			return nil, false
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	return nil, false
}

// statusLoop keeps a blocking Status.Get open on the connected server. It
// is the liveness probe: when the call fails, the watcher moves on.
func (w *Watcher) statusLoop(ctx context.Context, last *rpc.StatusReply) {
	minIndex := last.AppliedIndex
	var noLeaderSince time.Time
	if last.LeaderID == "" {
		noLeaderSince = w.cfg.Now()
	}
	lastCall := time.Time{}
	for ctx.Err() == nil {
		if !sleepCtx(ctx, w.cfg.MinGap-time.Since(lastCall)) {
			return
		}
		lastCall = time.Now()
		addr, _ := w.current()
		st, err := w.status(ctx, addr, minIndex, w.cfg.StatusWait+w.cfg.Slack)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			st, ok := w.connect(ctx, addr, err.Error(), nil)
			if !ok {
				return
			}
			last, minIndex = st, st.AppliedIndex
			noLeaderSince = time.Time{}
			continue
		}
		w.send(StatusMsg{Addr: addr, Status: *st, At: w.cfg.Now()})
		w.learn(st.LeaderAddr)
		if st.LeaderID != last.LeaderID || st.Term != last.Term {
			w.kickMembers()
		}
		last = st
		if st.AppliedIndex < minIndex { // restored from a snapshot: start over
			minIndex = 0
		} else {
			minIndex = st.AppliedIndex
		}
		if minIndex == 0 {
			minIndex = 1
		}
		if st.LeaderID != "" {
			noLeaderSince = time.Time{}
			continue
		}
		if noLeaderSince.IsZero() {
			noLeaderSince = w.cfg.Now()
		}
		if w.cfg.Now().Sub(noLeaderSince) >= w.cfg.NoLeaderMove {
			reason := fmt.Sprintf("%s has known no leader for %s", st.ID, age(w.cfg.Now().Sub(noLeaderSince)))
			if nst, ok := w.connect(ctx, addr, reason, func(s *rpc.StatusReply) bool { return s.LeaderID != "" }); ok {
				last, minIndex = nst, nst.AppliedIndex
			}
			noLeaderSince = w.cfg.Now() // try again after another period
		}
	}
}

// membersLoop refreshes Status.Members every MembersEvery and on a kick.
// When the leader cannot be asked it shows the connected server's own
// (stale) list, so the servers panel never goes blank.
func (w *Watcher) membersLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.MembersEvery)
	defer t.Stop()
	for ctx.Err() == nil {
		addr, gen := w.current()
		var r rpc.MembersReply
		cctx, cancel := context.WithTimeout(gen, membersTimeout)
		err := w.c.Call(cctx, addr, rpc.MethodMembers, &rpc.MembersArgs{}, &r)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case gen.Err() != nil:
			continue // moved to another server mid-call: ask it at once
		case err == nil:
			w.send(MembersMsg{Addr: addr, Reply: &r, At: w.cfg.Now()})
		default:
			var sr rpc.MembersReply
			cctx, cancel := context.WithTimeout(gen, w.cfg.ProbeTimeout)
			serr := w.c.Call(cctx, addr, rpc.MethodMembers, &rpc.MembersArgs{Stale: true}, &sr)
			cancel()
			if serr == nil {
				w.send(MembersMsg{Addr: addr, Reply: &sr, Stale: true, Err: err.Error(), At: w.cfg.Now()})
			} else {
				w.send(MembersMsg{Addr: addr, Err: err.Error(), At: w.cfg.Now()})
			}
			r = sr
		}
		for _, m := range r.Members {
			w.learn(m.Address)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// blockingLoop runs one blocking query after another against the connected
// server. fetch returns the message to send and the answer's index. After
// an error the next call does not block, so the panel recovers as soon as
// the read works again. Errors of calls cut short because the watcher moved
// to another server are not reported.
func (w *Watcher) blockingLoop(ctx context.Context, wait time.Duration,
	fetch func(ctx context.Context, addr string, minIndex uint64) (tea.Msg, uint64, error)) {
	var minIndex uint64
	backoff := 250 * time.Millisecond
	lastCall := time.Time{}
	for ctx.Err() == nil {
		if !sleepCtx(ctx, w.cfg.MinGap-time.Since(lastCall)) {
			return
		}
		lastCall = time.Now()
		addr, gen := w.current()
		cctx, cancel := context.WithTimeout(gen, wait+w.cfg.Slack)
		msg, idx, err := fetch(cctx, addr, minIndex)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRequery):
			minIndex = 0 // the query changed mid-call: ask again now
		case err != nil && gen.Err() != nil:
			minIndex = 0 // moved to another server mid-call
		case err != nil:
			minIndex = 0
			// A dead connected server fails every call at once; give the
			// status loop a moment to move on before reporting the error.
			select {
			case <-ctx.Done():
				return
			case <-gen.Done():
				continue
			case <-time.After(errorGrace):
			}
			w.send(msg)
			select { // wait, but wake up if the watcher moves
			case <-ctx.Done():
				return
			case <-gen.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
		default:
			w.send(msg)
			backoff = 250 * time.Millisecond
			if idx < minIndex {
				minIndex = 0 // index went backwards (snapshot restore)
			} else {
				minIndex = idx
			}
		}
	}
}

// mergeCancel returns a context that is ctx, also cancelled when other
// ends, and the function that releases it.
func mergeCancel(ctx, other context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return cctx, func() { stop(); cancel() }
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// FetchOnce gathers one snapshot for `rctl top --once`: the first seed that
// answers Status.Get is the connected server; Members, Node.List and
// Task.List (the newest tasks Plain lists, and the counts) are read
// through it, from the leader when possible and from the
// server's own state (marked stale) when not. The messages it returns feed
// a Model; the Snapshot is the JSON form. It fails only when no server
// answers or a read fails even stale.
func FetchOnce(ctx context.Context, c Caller, seeds []string, now func() time.Time) ([]tea.Msg, *Snapshot, error) {
	if now == nil {
		now = time.Now
	}
	if len(seeds) == 0 {
		return nil, nil, rpc.Errorf(rpc.CodeInvalidArgument, "no server address given; set --addr or RCTL_ADDR")
	}
	call := func(timeout time.Duration, addr, method string, args, reply any) error {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return c.Call(cctx, addr, method, args, reply)
	}
	var (
		addr    string
		st      rpc.StatusReply
		lastErr error
	)
	for _, a := range seeds {
		if err := call(2*time.Second, a, rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
			lastErr = err
			continue
		}
		addr = a
		break
	}
	if addr == "" {
		return nil, nil, &rpc.Error{Code: rpc.CodeOf(lastErr), Message: fmt.Sprintf("no server answered at %s (tried %d); check --addr or the cluster's health; last error: %v",
			strings.Join(seeds, ", "), len(seeds), lastErr)}
	}
	snap := &Snapshot{Connected: addr, Status: &st, Errors: map[string]string{}}
	msgs := []tea.Msg{
		ConnMsg{Addr: addr, ID: st.ID, At: now()},
		StatusMsg{Addr: addr, Status: st, At: now()},
	}
	// read tries the leader's answer, then the connected server's own.
	read := func(name, method string, args func(stale bool) any, reply func() any) (stale bool, firstErr string, err error) {
		if err := call(membersTimeout, addr, method, args(false), reply()); err == nil {
			return false, "", nil
		} else {
			firstErr = err.Error()
		}
		if err := call(2*time.Second, addr, method, args(true), reply()); err != nil {
			return false, firstErr, fmt.Errorf("%s from %s: %w", name, addr, err)
		}
		snap.Errors[name] = firstErr
		snap.Stale = append(snap.Stale, name)
		return true, firstErr, nil
	}
	var members rpc.MembersReply
	stale, ferr, err := read("members", rpc.MethodMembers,
		func(s bool) any { return &rpc.MembersArgs{Stale: s} }, func() any { members = rpc.MembersReply{}; return &members })
	if err != nil {
		return nil, nil, err
	}
	snap.Members = &members
	msgs = append(msgs, MembersMsg{Addr: addr, Reply: &members, Stale: stale, Err: ferr, At: now()})

	var nodes rpc.NodeListReply
	stale, ferr, err = read("nodes", rpc.MethodNodeList,
		func(s bool) any { return &rpc.NodeListArgs{QueryOptions: rpc.QueryOptions{Stale: s}} }, func() any { nodes = rpc.NodeListReply{}; return &nodes })
	if err != nil {
		return nil, nil, err
	}
	snap.Nodes = nodes.Nodes
	msgs = append(msgs, NodesMsg{Addr: addr, Reply: &nodes, Stale: stale, Err: ferr, At: now()})

	// The newest tasks Plain shows, and the counts: never the manifest.
	var tasks rpc.TaskListReply
	stale, ferr, err = read("tasks", rpc.MethodTaskList,
		func(s bool) any {
			a := TaskListArgs("", onceTasks)
			a.Stale = s
			return &a
		}, func() any { tasks = rpc.TaskListReply{}; return &tasks })
	if err != nil {
		return nil, nil, err
	}
	snap.Tasks = &tasks
	msgs = append(msgs, TasksMsg{Addr: addr, Reply: &tasks, Stale: stale, Err: ferr, At: now()})
	if len(snap.Errors) == 0 {
		snap.Errors = nil
	}
	return msgs, snap, nil
}
