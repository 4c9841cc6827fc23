package rpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// DialTimeout bounds one TCP connect. It is larger than the cross-cloud
// RTT (≈243 ms) by a wide margin so a slow link is not mistaken for a dead
// server.
const DialTimeout = 2 * time.Second

// Conn is one multiplexed RPC connection. Calls are pipelined: many may be
// in flight at once, answered in any order and matched by sequence number.
type Conn struct {
	addr string
	nc   net.Conn

	wmu sync.Mutex // serialises frame writes
	bw  *bufio.Writer

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]chan rawResponse
	err     error // set once the connection is dead
}

// DialFunc opens a TCP connection; tests use it to inject network faults.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// DialTCP is the default DialFunc.
func DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: DialTimeout, KeepAlive: 15 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// Dial opens an RPC connection to addr.
func Dial(ctx context.Context, addr string) (*Conn, error) { return DialWith(ctx, addr, DialTCP) }

// DialWith opens an RPC connection to addr using dial.
func DialWith(ctx context.Context, addr string, dial DialFunc) (*Conn, error) {
	nc, err := dial(ctx, addr)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot connect to %s: %v", addr, unwrapNetErr(err))}
	}
	if _, err := nc.Write([]byte{ConnRPC}); err != nil {
		nc.Close()
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot talk to %s: %v", addr, unwrapNetErr(err))}
	}
	c := &Conn{addr: addr, nc: nc, bw: bufio.NewWriter(nc), pending: map[uint64]chan rawResponse{}}
	go c.readLoop()
	return c, nil
}

// Addr is the address the connection was dialled to.
func (c *Conn) Addr() string { return c.addr }

// Close closes the connection; calls in flight fail with unavailable.
func (c *Conn) Close() error {
	c.fail(errors.New("connection closed"))
	return c.nc.Close()
}

// Dead reports whether the connection has failed.
func (c *Conn) Dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

func (c *Conn) readLoop() {
	br := bufio.NewReader(c.nc)
	for {
		var resp rawResponse
		if err := readFrame(br, &resp); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed the connection")
			}
			c.fail(err)
			c.nc.Close()
			return
		}
		c.mu.Lock()
		ch, ok := c.pending[resp.Seq]
		delete(c.pending, resp.Seq)
		c.mu.Unlock()
		if ok {
			ch <- resp // buffered
		}
	}
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for seq, ch := range c.pending {
		ch <- rawResponse{Seq: seq, Error: &Error{Code: CodeUnavailable,
			Message: fmt.Sprintf("lost connection to %s: %v", c.addr, unwrapNetErr(err))}}
		delete(c.pending, seq)
	}
}

// Call sends one request and decodes the result into reply (a pointer, or
// nil to discard it). The context's deadline is sent along as timeout_ms.
func (c *Conn) Call(ctx context.Context, method string, args any, reply any) error {
	return c.call(ctx, method, "", args, reply)
}

func (c *Conn) call(ctx context.Context, method, token string, args any, reply any) error {
	raw, err := encode(args)
	if err != nil {
		return Errorf(CodeInvalidArgument, "encode %s arguments: %v", method, err)
	}
	return c.callRaw(ctx, &Request{Method: method, Args: raw, Token: token}, reply)
}

func (c *Conn) callRaw(ctx context.Context, req *Request, reply any) error {
	if dl, ok := ctx.Deadline(); ok {
		ms := time.Until(dl).Milliseconds()
		if ms <= 0 {
			return Errorf(CodeDeadlineExceeded, "the deadline for %s passed before it was sent", req.Method)
		}
		req.TimeoutMS = ms
	}
	ch := make(chan rawResponse, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return &Error{Code: CodeUnavailable, Message: fmt.Sprintf("connection to %s is down: %v", c.addr, unwrapNetErr(err))}
	}
	c.seq++
	req.Seq = c.seq
	c.pending[req.Seq] = ch
	c.mu.Unlock()

	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetWriteDeadline(dl)
	}
	err := writeFrame(c.bw, rawHandle, req)
	if err == nil {
		err = c.bw.Flush()
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		c.nc.Close()
	}

	select {
	case resp := <-ch:
		if resp.Error != nil {
			return resp.Error
		}
		if reply == nil || len(resp.Result) == 0 {
			return nil
		}
		if err := decode(resp.Result, reply); err != nil {
			return Errorf(CodeInternal, "decode %s reply from %s: %v", req.Method, c.addr, err)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, req.Seq)
		c.mu.Unlock()
		return Errorf(CodeDeadlineExceeded, "%s on %s: no answer before the deadline", req.Method, c.addr)
	}
}

// Pool keeps one live connection per server address.
type Pool struct {
	dial  DialFunc
	token string // sent with every Call
	mu    sync.Mutex
	conns map[string]*Conn
}

// NewPool returns an empty pool.
func NewPool() *Pool { return NewPoolWithDialer(DialTCP) }

// NewPoolWithDialer returns an empty pool that dials with dial.
func NewPoolWithDialer(dial DialFunc) *Pool {
	return &Pool{dial: dial, conns: map[string]*Conn{}}
}

// NewPoolWith returns an empty pool that presents cred: its TLS material
// when dialling and its token with every call.
func NewPoolWith(cred Credentials) *Pool {
	return &Pool{dial: cred.Dialer(), token: cred.Token, conns: map[string]*Conn{}}
}

// live returns the pooled connection to addr if it is alive, else nil.
func (p *Pool) live(addr string) *Conn {
	p.mu.Lock()
	c := p.conns[addr]
	p.mu.Unlock()
	if c != nil && !c.Dead() {
		return c
	}
	return nil
}

// Live reports whether the pool holds a live connection to addr.
func (p *Pool) Live(addr string) bool { return p.live(addr) != nil }

// Get returns a live connection to addr, dialling if needed.
func (p *Pool) Get(ctx context.Context, addr string) (*Conn, error) {
	p.mu.Lock()
	c := p.conns[addr]
	p.mu.Unlock()
	if c != nil && !c.Dead() {
		return c, nil
	}
	nc, err := DialWith(ctx, addr, p.dial)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.conns[addr]; old != nil && !old.Dead() {
		nc.Close()
		return old, nil
	}
	p.conns[addr] = nc
	return nc, nil
}

// Call calls method on the server at addr.
func (p *Pool) Call(ctx context.Context, addr, method string, args, reply any) error {
	c, err := p.Get(ctx, addr)
	if err != nil {
		return err
	}
	return c.call(ctx, method, p.token, args, reply)
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		c.Close()
		delete(p.conns, a)
	}
}

// Client calls a cluster through a list of server addresses. Any server
// takes any call, so the client sticks to the first one that answers and
// moves on to the next when it is down or says unavailable, until the
// context's deadline. Because a call may be retried on another server,
// callers make mutations idempotent (Task.Add with an explicit id).
type Client struct {
	addrs []string
	pool  *Pool

	mu  sync.Mutex
	cur int
}

// NewClient returns a plaintext client without a token, for servers
// started with --insecure.
func NewClient(addrs []string) *Client { return NewClientWith(addrs, Credentials{}) }

// NewClientWith returns a client that presents cred to the servers.
// Its connections give up on a server that leaves what the client sent
// unacknowledged for ClientUserTimeout.
func NewClientWith(addrs []string, cred Credentials) *Client {
	pool := NewPoolWith(cred)
	pool.dial = withUserTimeout(pool.dial, ClientUserTimeout)
	return &Client{addrs: addrs, pool: pool}
}

// ClientUserTimeout is how long a Client's connection may hold sent data
// that the server's host has not acknowledged before the client drops it
// (TCP_USER_TIMEOUT, Linux): the calls on it then fail as unavailable, and
// the client moves to the next server. A host that went silent (its
// network cut, a hypervisor fault) answers nothing, not even with a reset,
// and its connections stay open: a long-lived client stuck to it waited
// for each call's deadline and, since a deadline does not move the client
// on, sent the next call there too. A server that is only slow is not
// affected: its kernel acknowledges what arrives. The kernel checks the
// timeout when a retransmission timer fires: one lost segment is
// retransmitted (after ≈0.2 s within a cloud, ≈0.45 s across) and its
// acknowledgement closes nothing; two lost in a row close the connection
// and the call is retried on another server. Within a cloud a silent
// server's connection closes ≈0.6 s after the call, before a silent
// leader is replaced (≈0.9 s on wan), so the client is at a live server
// when the new leader is elected (TestLeaderIsolated: its write lands with
// the first write anyone gets through; with 1 s, ≈0.45 s later).
const ClientUserTimeout = 500 * time.Millisecond

// withUserTimeout sets the user timeout d on the connections dial opens.
func withUserTimeout(dial DialFunc, d time.Duration) DialFunc {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		nc, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		if err := setUserTimeout(nc, d); err != nil {
			nc.Close()
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("cannot set TCP_USER_TIMEOUT on the connection to %s: %v", addr, err)}
		}
		return nc, nil
	}
}

// Close closes the client's connections.
func (c *Client) Close() { c.pool.Close() }

// Addrs returns the configured addresses.
func (c *Client) Addrs() []string { return c.addrs }

// Current is the address the client currently prefers.
func (c *Client) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[c.cur]
}

// dialStagger is how long the client waits for a connection to one server
// before it also dials the next ("happy eyeballs", RFC 8305): a little
// more than the cross-cloud RTT (≈243 ms, one round trip for TCP), so a
// live server in the other cloud is not abandoned, while a server that
// silently drops packets costs this much instead of a whole DialTimeout.
const dialStagger = 300 * time.Millisecond

type dialResult struct {
	conn *Conn
	addr string
	err  error
}

// connect returns a live connection to one of the addresses: the
// preferred one if it has one pooled or connects within dialStagger;
// otherwise whichever connects first while the next addresses are dialled
// one every dialStagger. The winner becomes the preferred address. On
// failure it returns the preferred address and its error.
func (c *Client) connect(ctx context.Context) (*Conn, string, error) {
	c.mu.Lock()
	start := c.cur
	c.mu.Unlock()
	// The common case: a live pooled connection to the preferred server.
	if conn := c.pool.live(c.addrs[start]); conn != nil {
		return conn, c.addrs[start], nil
	}
	n := len(c.addrs)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan dialResult, n)
	launch := func(i int) {
		addr := c.addrs[(start+i)%n]
		go func() {
			conn, err := c.pool.Get(dctx, addr)
			results <- dialResult{conn, addr, err}
		}()
	}
	launch(0)
	launched, pending := 1, 1
	var first *dialResult
	timer := time.NewTimer(dialStagger)
	defer timer.Stop()
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				c.mu.Lock()
				if c.addrs[c.cur] != r.addr {
					for i, a := range c.addrs {
						if a == r.addr {
							c.cur = i
						}
					}
				}
				c.mu.Unlock()
				return r.conn, r.addr, nil
			}
			if first == nil || r.addr == c.addrs[start] {
				first = &r
			}
			if launched < n { // a refusal: try the next at once
				launch(launched)
				launched++
				pending++
			}
		case <-timer.C:
			if launched < n {
				launch(launched)
				launched++
				pending++
				timer.Reset(dialStagger)
			}
		case <-ctx.Done():
			return nil, c.addrs[start], Errorf(CodeDeadlineExceeded, "no server at %s answered before the deadline", strings.Join(c.addrs, ", "))
		}
	}
	return nil, first.addr, first.err
}

// Call calls method with failover across servers.
func (c *Client) Call(ctx context.Context, method string, args, reply any) error {
	_, err := c.CallAddr(ctx, method, args, reply)
	return err
}

// CallAddr is Call that also returns the address of the server that answered.
func (c *Client) CallAddr(ctx context.Context, method string, args, reply any) (string, error) {
	if len(c.addrs) == 0 {
		return "", Errorf(CodeInvalidArgument, "no server address given; set --addr or RCTL_ADDR")
	}
	backoff := 50 * time.Millisecond
	var lastErr error
	tried := map[string]bool{}
	for attempt := 0; ; attempt++ {
		conn, addr, err := c.connect(ctx)
		tried[addr] = true
		unreachable := err != nil // connect tried every address
		if unreachable {
			for _, a := range c.addrs {
				tried[a] = true
			}
		} else {
			err = conn.call(ctx, method, c.pool.token, args, reply)
		}
		if err == nil {
			return addr, nil
		}
		lastErr = err
		var e *Error
		if errors.As(err, &e) && e.Code == CodeNotLeader && e.LeaderAddr != "" && e.LeaderAddr != addr {
			// Only happens when forwarding was refused; go straight there.
			if c2 := c.pool.Call(ctx, e.LeaderAddr, method, args, reply); c2 == nil {
				return e.LeaderAddr, nil
			} else {
				lastErr = c2
			}
		}
		if !IsRetryable(lastErr) || ctx.Err() != nil {
			break
		}
		c.mu.Lock()
		if c.addrs[c.cur] == addr {
			c.cur = (c.cur + 1) % len(c.addrs)
		}
		c.mu.Unlock()
		if unreachable || (attempt+1)%len(c.addrs) == 0 { // a full round failed: back off
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			if backoff < time.Second {
				backoff *= 2
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	if CodeOf(lastErr) == CodeUnavailable && len(tried) > 1 || ctx.Err() != nil && CodeOf(lastErr) != CodeDeadlineExceeded {
		names := make([]string, 0, len(tried))
		for _, a := range c.addrs {
			if tried[a] {
				names = append(names, a)
			}
		}
		return "", &Error{Code: CodeOf(lastErr), Message: fmt.Sprintf("no server answered %s at %s (tried %s; last error: %s); check --addr or the cluster's health",
			method, strings.Join(names, ", "), plural(len(names), "server"), lastErr.Error())}
	}
	return "", lastErr
}

func unwrapNetErr(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
