//go:build linux

package fault

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// Client is an RPC client living in a node's namespace: its connections
// go through the emulated network, so it sees the delays and partitions
// a client VM in that cloud would.
//
// A call goes to the server the client last used; when it answers
// unavailable or not_leader, or (with AttemptTimeout) does not answer in
// time, the call moves on to the next address, backing off after each
// full round, until the context ends. Every method the harness retries
// this way is idempotent (Task.Add with an explicit id, Task.Cancel,
// reads).
type Client struct {
	Name  string // for messages; NewClient sets the node's name
	Node  *Node
	Addrs []string
	// AttemptTimeout bounds one attempt on one server; 0 lets an attempt
	// run until the context ends. Set it when servers may be paused or cut
	// off: a silent server otherwise holds the call until its deadline.
	AttemptTimeout time.Duration
	// Trace, when set, is told about every attempt (for debugging).
	Trace func(addr, method string, start time.Time, err error)

	pool *rpc.Pool
	// ready, when set, is closed once the client's credentials work (the
	// harness has bootstrapped ACLs); calls wait for it.
	ready <-chan struct{}
	mu    sync.Mutex
	cur   int
}

// NewClient returns a client in node's namespace for the given server
// addresses.
func NewClient(node *Node, addrs ...string) *Client {
	return &Client{Name: node.Name, Node: node, Addrs: addrs, pool: rpc.NewPoolWithDialer(node.Dial)}
}

// Close closes the client's connections.
func (c *Client) Close() { c.pool.Close() }

// Call calls method with failover and returns the address that answered
// (on error, the address tried last).
func (c *Client) Call(ctx context.Context, method string, args, reply any) (string, error) {
	addr, _, err := c.CallWrite(ctx, method, args, reply)
	return addr, err
}

// CallWrite is Call for writes: it also reports whether an attempt before
// the last one ended without a definite answer (no answer in time, a lost
// connection, unavailable). Such an attempt may still take effect, even
// after CallWrite returned: a server keeps working on a call whose client
// gave up (a forwarded call even moves to a new leader), and bytes held
// up by a lossy link arrive late. So a definite refusal at the end
// (not_found, conflict) does not make the operation's outcome definite.
func (c *Client) CallWrite(ctx context.Context, method string, args, reply any) (addr string, ambiguous bool, err error) {
	if len(c.Addrs) == 0 {
		return "", false, errors.New("fault: client has no server addresses")
	}
	if c.ready != nil {
		select {
		case <-c.ready:
		case <-ctx.Done():
			return "", false, errors.New("fault: ACLs were not bootstrapped before the call's deadline")
		}
	}
	backoff := 20 * time.Millisecond
	var last error
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		addr := c.Addrs[c.cur%len(c.Addrs)]
		c.mu.Unlock()
		err := c.callOnce(ctx, addr, method, args, reply)
		if err == nil {
			return addr, ambiguous, nil
		}
		last = err
		var e *rpc.Error
		if errors.As(err, &e) && e.Code == rpc.CodeNotLeader && e.LeaderAddr != "" && e.LeaderAddr != addr {
			if err2 := c.callOnce(ctx, e.LeaderAddr, method, args, reply); err2 == nil {
				return e.LeaderAddr, ambiguous, nil
			} else {
				last = err2
			}
		}
		retry := rpc.IsRetryable(last) || rpc.CodeOf(last) == rpc.CodeDeadlineExceeded && ctx.Err() == nil
		if !retry || ctx.Err() != nil {
			if rpc.CodeOf(last) == rpc.CodeDeadlineExceeded {
				c.next(addr) // a silent server: start elsewhere next time
			}
			return addr, ambiguous, last
		}
		ambiguous = ambiguous || !definiteRefusal(err) || !definiteRefusal(last)
		c.next(addr)
		if (attempt+1)%len(c.Addrs) == 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return addr, ambiguous, last
			}
			backoff = min(2*backoff, 200*time.Millisecond)
		}
	}
}

// definiteRefusal reports whether a failed attempt certainly changed
// nothing: the server refused the call before doing anything with it.
func definiteRefusal(err error) bool {
	switch rpc.CodeOf(err) {
	case rpc.CodeNotLeader, rpc.CodeNotFound, rpc.CodeConflict, rpc.CodeInvalidArgument, rpc.CodePermissionDenied:
		return true
	}
	return false
}

func (c *Client) callOnce(ctx context.Context, addr, method string, args, reply any) error {
	if c.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.AttemptTimeout)
		defer cancel()
	}
	start := time.Now()
	err := c.pool.Call(ctx, addr, method, args, reply)
	if c.Trace != nil {
		c.Trace(addr, method, start, err)
	}
	if err != nil && rpc.CodeOf(err) == rpc.CodeDeadlineExceeded {
		// The connection may be dead silent (a cut link): drop it so the
		// next call dials afresh instead of queueing behind it.
		if conn, gerr := c.pool.Get(ctx, addr); gerr == nil {
			conn.Close()
		}
	}
	return err
}

func (c *Client) next(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Addrs[c.cur%len(c.Addrs)] == addr {
		c.cur = (c.cur + 1) % len(c.Addrs)
	}
}
