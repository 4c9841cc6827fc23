package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
)

// Server timing defaults. docs/rpc.md repeats them.
const (
	// DefaultTimeout bounds a call that does not send timeout_ms.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout caps timeout_ms.
	MaxTimeout = 11 * time.Minute
	// DefaultMaxWait and MaxMaxWait bound blocking queries.
	DefaultMaxWait = 5 * time.Minute
	MaxMaxWait     = 10 * time.Minute
	// LeaderWait is how long a server without a known leader holds a call
	// that needs one, hoping an election finishes, before unavailable.
	LeaderWait = 7 * time.Second
	// maxInflightPerConn bounds concurrently served calls per connection.
	maxInflightPerConn = 256
	// IdleTimeout closes a connection that sends no frame for this long.
	// It outlasts the longest blocking query (MaxMaxWait) a client waits on.
	IdleTimeout = MaxMaxWait + 5*time.Minute
	// FrameTimeout bounds one request frame: once its first byte arrives,
	// the rest must follow within this time (a 16 MiB frame at 1 MB/s).
	FrameTimeout = 20 * time.Second
)

// Config configures a Server.
type Config struct {
	Backend Backend
	Logger  *slog.Logger
	// ApplyTimeout bounds how long a write waits to enter the leader's
	// queue (raft.Apply's timeout).
	ApplyTimeout time.Duration
	// Version is reported by Status.Get.
	Version string
	// Dial opens connections to other servers (default DialTCP); with TLS
	// it is TLSDialer over the server's own certificate.
	Dial DialFunc
	// Insecure: the server serves plaintext and authorizes nothing (every
	// caller holds every right). Only for `rctl serve --insecure`.
	Insecure bool
	// Observer, when set, is told of every call served (metrics). Nil
	// costs nothing: not even the clock is read.
	Observer CallObserver
}

// CallObserver receives one observation per call a server answers.
type CallObserver interface {
	// ObserveCall is called once per request as its response is sent:
	// method is the requested name (callers may send any string: an
	// observer keeps only names it knows), code is "" for success,
	// forwarded marks a call another server forwarded to this one, took
	// is the time from decoding the request to its response.
	ObserveCall(method string, code Code, forwarded bool, took time.Duration)
}

type handler func(ctx context.Context, req *Request) (any, error)

// method is a registered RPC method and who may call it.
type method struct {
	h handler
	a access
	// bigArgs: the arguments may fill a frame; they are never proposed
	// (Operator.SnapshotInspect). Every other method's arguments are
	// refused above fsm.MaxEntrySize before they are forwarded.
	bigArgs bool
}

// Server serves RPC connections handed over by the port multiplexer.
type Server struct {
	b       Backend
	fsm     *fsm.FSM
	log     *slog.Logger
	pool    *Pool
	cfg     Config
	methods map[string]method

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  bool

	snapStreams  chan struct{} // semaphore: snapshot streams in progress
	memberProbes membersCache  // the leader's probe of the servers (Status.Members)
	rtts         rttHistory    // round trips of those probes
}

// NewServer builds a Server.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		cfg.Dial = DialTCP
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 5 * time.Second
	}
	s := &Server{
		b: cfg.Backend, fsm: cfg.Backend.FSM(),
		log: cfg.Logger, pool: NewPoolWithDialer(cfg.Dial), cfg: cfg, conns: map[net.Conn]struct{}{},
		snapStreams: make(chan struct{}, maxSnapshotStreams),
	}
	s.methods = s.declarations()
	return s
}

// declarations is the method table: every method and who may call it
// (auth.go; docs/rpc.md, "Authorization"). A method with no declaration
// cannot be registered.
func (s *Server) declarations() map[string]method {
	return map[string]method{
		MethodStatus:          {h: s.status, a: access{token: levelReader, agent: true}},
		MethodMembers:         {h: s.members, a: access{token: levelReader, agent: true}},
		MethodTaskAdd:         {h: s.taskAdd, a: access{token: levelOperator}},
		MethodTaskAddBatch:    {h: s.taskAddBatch, a: access{token: levelOperator}},
		MethodTaskGet:         {h: s.taskGet, a: access{token: levelReader}},
		MethodTaskList:        {h: s.taskList, a: access{token: levelReader}},
		MethodTaskCancel:      {h: s.taskCancel, a: access{token: levelOperator}},
		MethodRaftPeers:       {h: s.raftPeers, a: access{token: levelReader}},
		MethodRaftJoin:        {h: s.join, a: access{serverOnly: true}},
		MethodRaftRemovePeer:  {h: s.removePeer, a: access{token: levelManagement}},
		MethodRaftTransfer:    {h: s.transferLeader, a: access{token: levelManagement}},
		MethodServerLabels:    {h: s.serverLabels, a: access{serverOnly: true}},
		MethodSnapshotInspect: {h: s.snapshotInspect, a: access{token: levelReader}, bigArgs: true},
		MethodOperatorRTT:     {h: s.operatorRTT, a: access{token: levelReader}},
		MethodNodeRegister:    {h: s.nodeRegister, a: access{agent: true}},
		MethodNodeHeartbeat:   {h: s.nodeHeartbeat, a: access{agent: true}},
		MethodNodeDeregister:  {h: s.nodeDeregister, a: access{agent: true, token: levelManagement}},
		MethodNodeList:        {h: s.nodeList, a: access{token: levelReader}},
		MethodNodeGet:         {h: s.nodeGet, a: access{token: levelReader}},
		MethodTaskStart:       {h: s.taskStart, a: access{agent: true}},
		MethodTaskComplete:    {h: s.taskComplete, a: access{agent: true}},
		MethodTaskFail:        {h: s.taskFail, a: access{agent: true}},
		MethodTaskGC:          {h: s.taskGC, a: access{token: levelOperator}},
		MethodACLBootstrap:    {h: s.aclBootstrap, a: access{bootstrap: true}},
		MethodACLTokenCreate:  {h: s.aclTokenCreate, a: access{token: levelManagement}},
		MethodACLTokenList:    {h: s.aclTokenList, a: access{token: levelManagement}},
		MethodACLTokenRevoke:  {h: s.aclTokenRevoke, a: access{token: levelManagement}},
	}
}

// Methods lists the registered method names, sorted.
func (s *Server) Methods() []string {
	out := make([]string, 0, len(s.methods))
	for name := range s.methods {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Pool is the server's connection pool to other servers.
func (s *Server) Pool() *Pool { return s.pool }

// Shutdown closes every served connection and the pool.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.pool.Close()
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.done {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

// ServeConn serves RPC frames on c (the connection-type byte already
// consumed) until the peer hangs up. id is the peer's verified identity
// (zero on an --insecure server). Calls run concurrently; responses are
// written as they finish, in any order.
func (s *Server) ServeConn(c net.Conn, id pki.Identity) {
	if !s.track(c, true) {
		c.Close()
		return
	}
	defer s.track(c, false)
	defer c.Close()

	ctx, cancel := context.WithCancel(context.Background())
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	var wmu sync.Mutex
	sem := make(chan struct{}, maxInflightPerConn)
	var wg sync.WaitGroup
	// The connection is done (the peer hung up, broke the framing, or the
	// server shuts down): the calls still running have nobody to answer,
	// so they end now rather than at their own deadlines (a forwarded
	// call may wait LeaderWait for an election, a blocking query minutes).
	defer func() {
		cancel()
		wg.Wait()
	}()
	for {
		_ = c.SetReadDeadline(time.Now().Add(IdleTimeout))
		if _, err := br.Peek(1); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(FrameTimeout))
		req := new(Request)
		if err := readFrame(br, req); err != nil {
			if !isClosed(err) {
				s.log.Debug("rpc connection dropped", "remote", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp := s.handle(ctx, id, req)
			wmu.Lock()
			defer wmu.Unlock()
			err := writeFrame(bw, handle, resp)
			if err != nil {
				// The result could not be encoded: answer with the error.
				err = writeFrame(bw, handle, &Response{Seq: req.Seq, Error: Errorf(CodeInternal, "encode reply: %v", err)})
			}
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				c.Close()
			}
		}()
	}
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF)
}

// handle runs one request and always returns a response.
func (s *Server) handle(parent context.Context, id pki.Identity, req *Request) (resp *Response) {
	resp = &Response{Seq: req.Seq}
	if obs := s.cfg.Observer; obs != nil {
		start := time.Now()
		defer func() { // runs last: after the recover below set the error
			var code Code
			if resp.Error != nil {
				code = resp.Error.Code
			}
			obs.ObserveCall(req.Method, code, req.Forwarded, time.Since(start))
		}()
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("rpc handler panicked", "method", req.Method, "panic", fmt.Sprint(r))
			resp.Result = nil
			resp.Error = Errorf(CodeInternal, "%s failed inside the server; see its log", req.Method)
		}
	}()
	m, ok := s.methods[req.Method]
	if !ok {
		resp.Error = Errorf(CodeInvalidArgument, "unknown method %q; see docs/rpc.md for the method list", req.Method)
		return resp
	}
	who := s.resolveCaller(id, req)
	if err := s.authorize(who, req.Method, m.a); err != nil {
		resp.Error = toError(err)
		return resp
	}
	if len(req.Args) > fsm.MaxEntrySize && !m.bigArgs {
		// No entry can be this large (fsm.Check would refuse it): refuse
		// here, before it is forwarded to the leader.
		resp.Error = Errorf(CodeInvalidArgument, "%s: arguments of %d bytes exceed the %d-byte entry limit", req.Method, len(req.Args), fsm.MaxEntrySize)
		return resp
	}
	timeout := DefaultTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	if req.TimeoutMS < 0 {
		resp.Error = Errorf(CodeInvalidArgument, "timeout_ms must not be negative, got %d", req.TimeoutMS)
		return resp
	}
	timeout = min(timeout, MaxTimeout)
	ctx, cancel := context.WithTimeout(context.WithValue(parent, callerKey{}, who), timeout)
	defer cancel()
	result, err := m.h(ctx, req)
	if err != nil {
		resp.Error = toError(err)
		return resp
	}
	resp.Result = result
	return resp
}

// args decodes a request's arguments into v; a nil or empty args field
// leaves v zero.
func args(req *Request, v any) error {
	if len(req.Args) == 0 {
		return nil
	}
	if err := decode(req.Args, v); err != nil {
		return Errorf(CodeInvalidArgument, "%s: malformed arguments: %v", req.Method, err)
	}
	return nil
}

// leader returns the current leader's address and id as this server knows them.
func (s *Server) leader() (string, string) {
	return s.b.Leader()
}

func (s *Server) isLeader() bool { return s.b.IsLeader() }

// leaderRecheck bounds how long a wait for a leader change trusts the
// leader-change signal alone: raft drops an observation when the
// observer's queue is full, so waiters look again at least this often.
const leaderRecheck = 250 * time.Millisecond

// waitLeader waits until some leader is known, up to LeaderWait or ctx.
func (s *Server) waitLeader(ctx context.Context) (addr, id string, err error) {
	deadline := time.NewTimer(LeaderWait)
	defer deadline.Stop()
	for {
		changed := s.b.LeaderWatch()
		addr, id = s.leader()
		if addr != "" {
			return addr, id, nil
		}
		select {
		case <-ctx.Done():
			return "", "", NoLeader(s.b.Self().ID)
		case <-deadline.C:
			return "", "", NoLeader(s.b.Self().ID)
		case <-changed:
		case <-time.After(leaderRecheck):
		}
	}
}

// NoLeader is the error for a call that needs a leader on a server that
// knows none.
func NoLeader(self string) error {
	return Errorf(CodeUnavailable, "server %s knows no leader: the cluster is electing one or this server is cut off from the majority; retry or try another server", self)
}

// leaderTarget decides where a call that needs the leader goes: local
// when this server leads (also after winning an election while the call
// waited), else the leader's address, or an error: not_leader for a call
// another server already forwarded (never forwarded twice), unavailable
// when no leader is known.
func (s *Server) leaderTarget(ctx context.Context, req *Request) (addr string, local bool, err error) {
	if s.isLeader() {
		return "", true, nil
	}
	if req.Forwarded {
		addr, id := s.leader()
		return "", false, &Error{Code: CodeNotLeader, LeaderAddr: addr, LeaderID: id,
			Message: fmt.Sprintf("server %s is not the leader (leader: %s)", s.b.Self().ID, orNone(id))}
	}
	addr, _, err = s.waitLeader(ctx)
	if err != nil {
		return "", false, err
	}
	if addr == s.b.Self().Address {
		if s.isLeader() {
			return "", true, nil
		}
		// Raft still names us leader but we are not; let the caller retry.
		return "", false, NoLeader(s.b.Self().ID)
	}
	return addr, false, nil
}

// forward sends req to the leader when this server is not the leader. It
// returns done=true when the call was handled (forwarded or refused) and
// the caller must return err; done=false means this server is the leader
// and should serve the call itself.
//
// A forwarded call follows leadership, but never multiplies writes: it is
// sent again only when it certainly did not reach a leader (the dial
// failed) or when the leader it went to stopped being the leader this
// server knows (it crashed, froze or was cut off and an election moved
// on) — a leader that cannot lead cannot commit it. Errors the leader
// itself returns go back to the caller, whose retry policy decides: the
// fault harness and the etcd side-by-side benchmark showed that resending
// on those feeds a storm of duplicate proposals during elections.
func (s *Server) forward(ctx context.Context, req *Request, reply any) (done bool, err error) {
	backoff := forwardRetryFirst
	for {
		addr, local, err := s.leaderTarget(ctx, req)
		if local || err != nil {
			return !local, err
		}
		again, err := s.forwardTo(ctx, addr, req, reply)
		if err == nil || !again || ctx.Err() != nil {
			return true, err
		}
		s.log.Debug("forwarded call not delivered; retrying at the current leader", "method", req.Method, "leader", addr, "err", err)
		select {
		case <-ctx.Done():
			return true, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, forwardRetryMax)
	}
}

// forwardRetryFirst and forwardRetryMax are the backoff, doubling, between
// attempts to deliver a forwarded call that did not reach the leader.
const (
	forwardRetryFirst = 25 * time.Millisecond
	forwardRetryMax   = 400 * time.Millisecond
)

// forwardOnce is forward for calls whose effect is to move leadership
// (Operator.TransferLeader): the call goes to the leader this server
// knows and its answer comes back, however leadership moves meanwhile; it
// is sent again only if it was never delivered (the dial failed).
func (s *Server) forwardOnce(ctx context.Context, req *Request, reply any) (done bool, err error) {
	addr, local, err := s.leaderTarget(ctx, req)
	if local || err != nil {
		return !local, err
	}
	conn, err := s.pool.Get(ctx, addr)
	if err != nil {
		return true, err
	}
	fwd := *req
	fwd.Forwarded = true
	return true, conn.callRaw(ctx, &fwd, reply)
}

// errLeaderMoved is returned by forwardTo when leadership moved away from
// the server the call was sent to before it answered.
var errLeaderMoved = &Error{Code: CodeUnavailable, Message: "leadership moved while the call was forwarded"}

// forwardTo sends req to addr, abandoning it as soon as this server sees a
// leader other than addr. again reports whether the call may be sent to
// the current leader: it was not delivered, or its leader is gone.
func (s *Server) forwardTo(ctx context.Context, addr string, req *Request, reply any) (again bool, err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var moved atomic.Bool
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		// Woken by the Backend's leader-change signal; leaderRecheck is
		// only a safety net, as in waitLeader.
		for {
			changed := s.b.LeaderWatch()
			if now, _ := s.leader(); now != addr {
				moved.Store(true)
				cancel()
				return
			}
			select {
			case <-watchDone:
				return
			case <-cctx.Done():
				return
			case <-changed:
			case <-time.After(leaderRecheck):
			}
		}
	}()
	conn, err := s.pool.Get(cctx, addr)
	if err != nil {
		return true, err // never sent
	}
	fwd := *req
	fwd.Forwarded = true
	err = conn.callRaw(cctx, &fwd, reply)
	if err != nil && moved.Load() && ctx.Err() == nil {
		return true, errLeaderMoved
	}
	return false, err
}

func orNone(s string) string {
	if s == "" {
		return "none known"
	}
	return s
}

// apply proposes one entry on the leader and returns the FSM's result.
//
// The entry is first checked against the leader's state with the FSM's
// own rules (fsm.Check): a request the FSM would refuse is refused here
// and never reaches the log. A refusal at apply time remains possible
// only when the state changed between the check and the commit.
func (s *Server) apply(ctx context.Context, body any) (*fsm.ApplyResult, error) {
	data, err := fsm.EncodeEntry(body)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "%v", err)
	}
	if err := s.fsm.CheckEncoded(data); err != nil {
		return nil, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	res, err := s.b.Propose(ctx, data, timeout)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// readBarrier makes a linearizable read safe on the leader (Backend.ReadBarrier).
func (s *Server) readBarrier(ctx context.Context) error { return s.b.ReadBarrier(ctx) }

// blockingRead runs a read with the QueryOptions semantics: forward to the
// leader unless stale, wait for the table index to pass MinIndex, confirm
// leadership before answering. run fills the reply and returns the index.
func (s *Server) blockingRead(ctx context.Context, req *Request, opts QueryOptions, reply any,
	meta *QueryMeta, run func() uint64) error {
	if !opts.Stale {
		if done, err := s.forward(ctx, req, reply); done {
			return err
		}
	}
	if opts.MaxWaitMS < 0 {
		return Errorf(CodeInvalidArgument, "max_wait_ms must not be negative, got %d", opts.MaxWaitMS)
	}
	wait := DefaultMaxWait
	if opts.MaxWaitMS > 0 {
		wait = min(time.Duration(opts.MaxWaitMS)*time.Millisecond, MaxMaxWait)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		watch := s.fsm.WatchCh()
		if !opts.Stale {
			if err := s.readBarrier(ctx); err != nil {
				return err
			}
		}
		idx := run()
		if opts.MinIndex == 0 || idx > opts.MinIndex {
			s.fillMeta(meta, idx)
			return nil
		}
		select {
		case <-watch:
		case <-timer.C:
			s.fillMeta(meta, idx)
			return nil
		case <-ctx.Done():
			// The caller's deadline is shorter than max_wait: answer with
			// what we have rather than an error, like a timed-out wait.
			s.fillMeta(meta, idx)
			return nil
		}
	}
}

func (s *Server) fillMeta(m *QueryMeta, idx uint64) {
	m.Index = idx
	addr, _ := s.leader()
	m.KnownLeader = addr != ""
	if !s.isLeader() {
		if lc := s.b.RaftState().LastContact; !lc.IsZero() {
			m.LastContactMS = time.Since(lc).Milliseconds()
		}
	}
}
