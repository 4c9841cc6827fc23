package rpc

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
)

// fakeBackend is a one-server cluster without Raft, for the RPC layer's
// own tests (rpc does not import raft; cluster/consensus.go is the real
// Backend): Propose applies to the state machine at once, this server
// always leads, and ReadBarrier reports each call on barriers.
type fakeBackend struct {
	f        *fsm.FSM
	mu       sync.Mutex
	index    uint64
	barriers chan struct{}
	// follower: another server leads, at leaderAddr (setLeader).
	follower   bool
	leaderAddr string
	watch      chan struct{} // closed at the next leader change
	// lastContact: a follower's last word from its leader (setContact).
	lastContact time.Time
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{f: fsm.New(), barriers: make(chan struct{}, 64), watch: make(chan struct{})}
}

// setLeader makes this server a follower of the server at addr and
// signals the change to LeaderWatch.
func (b *fakeBackend) setLeader(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.follower, b.leaderAddr = true, addr
	close(b.watch)
	b.watch = make(chan struct{})
}

func (b *fakeBackend) FSM() *fsm.FSM { return b.f }
func (b *fakeBackend) RaftState() RaftState {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := RaftState{State: "leader", Term: 1, CommitIndex: b.index, AppliedIndex: b.index, LastIndex: b.index}
	if b.follower {
		st.State, st.LastContact = "follower", b.lastContact
	}
	return st
}

// setContact records a follower's last word from its leader.
func (b *fakeBackend) setContact(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastContact = at
}
func (b *fakeBackend) Leader() (string, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.follower {
		return b.leaderAddr, "leader@" + b.leaderAddr
	}
	return "127.0.0.1:1", "s1"
}
func (b *fakeBackend) IsLeader() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.follower
}
func (b *fakeBackend) Servers() ([]RaftServer, error) {
	return []RaftServer{{ID: "s1", Address: "127.0.0.1:1", Voter: true}}, nil
}
func (b *fakeBackend) Propose(_ context.Context, data []byte, _ time.Duration) (*fsm.ApplyResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	return b.f.Apply(&fsm.Log{Index: b.index, Command: true, Data: data}), nil
}
func (b *fakeBackend) ReadBarrier(context.Context) error {
	select {
	case b.barriers <- struct{}{}:
	default:
	}
	return nil
}
func (b *fakeBackend) AddServer(context.Context, string, string, bool) (uint64, error) {
	return 0, Errorf(CodeUnavailable, "fake backend: no membership")
}
func (b *fakeBackend) RemoveServer(context.Context, string) (uint64, error) {
	return 0, Errorf(CodeUnavailable, "fake backend: no membership")
}
func (b *fakeBackend) Restore(context.Context, io.Reader, int64) (uint64, error) {
	return 0, Errorf(CodeUnavailable, "fake backend: no restore")
}
func (b *fakeBackend) Self() fsm.Server {
	return fsm.Server{ID: "s1", Address: "127.0.0.1:1", Cloud: "local", Region: "dev"}
}
func (b *fakeBackend) LeaderReady() bool           { return b.IsLeader() }
func (b *fakeBackend) LastLeaderChange() time.Time { return time.Time{} }
func (b *fakeBackend) ConfigIndex() uint64         { return 1 }
func (b *fakeBackend) LeaderWatch() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watch
}
func (b *fakeBackend) NodeHeartbeat(string, bool) (time.Duration, time.Duration, bool) {
	return time.Second, 10 * time.Second, true
}
func (b *fakeBackend) NodeHeartbeatAge(string) (time.Duration, bool) { return 0, false }
func (b *fakeBackend) HeartbeatParams() (time.Duration, time.Duration) {
	return time.Second, 10 * time.Second
}
func (b *fakeBackend) TimingProfile() (string, time.Duration) { return "lan", 20 * time.Millisecond }
func (b *fakeBackend) HealthFigures() (float64, float64)      { return -1, -1 }
func (b *fakeBackend) FollowSpread() time.Duration            { return 0 }
func (b *fakeBackend) ForgetNode(string)                      {}
func (b *fakeBackend) RetireNow(context.Context, time.Duration) (int, uint64, error) {
	return 0, 0, nil
}
func (b *fakeBackend) TransferLeadership(context.Context, string) (string, string, error) {
	return "", "", Errorf(CodeConflict, "fake backend: one server")
}

// serveFake serves an --insecure rpc.Server over the fake backend on a
// loopback port and returns a client of it.
func serveFake(t *testing.T, b *fakeBackend) *Client {
	t.Helper()
	s := NewServer(Config{Backend: b, Insecure: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				kind := make([]byte, 1)
				if _, err := io.ReadFull(c, kind); err != nil || kind[0] != ConnRPC {
					c.Close()
					return
				}
				s.ServeConn(c, pki.Identity{})
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.Shutdown() })
	cl := NewClient([]string{ln.Addr().String()})
	t.Cleanup(cl.Close)
	return cl
}

// A blocking Task.List waits while nothing changes and wakes at the write
// that changes the table, not at max_wait.
func TestBlockingQueryWakesOnWrite(t *testing.T) {
	b := newFakeBackend()
	cl := serveFake(t, b)
	ctx := context.Background()
	if err := cl.Call(ctx, MethodTaskAdd, &TaskAddArgs{ID: "first", Type: "shell"}, nil); err != nil {
		t.Fatal(err)
	}
	var first TaskListReply
	if err := cl.Call(ctx, MethodTaskList, &TaskListArgs{}, &first); err != nil {
		t.Fatal(err)
	}
	<-b.barriers

	// Nothing changes: the call holds until max_wait and returns the same index.
	t0 := time.Now()
	var same TaskListReply
	if err := cl.Call(ctx, MethodTaskList, &TaskListArgs{QueryOptions: QueryOptions{MinIndex: first.Index, MaxWaitMS: 300}}, &same); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(t0); waited < 300*time.Millisecond || same.Index != first.Index {
		t.Errorf("an idle blocking query returned after %s at index %d, want max_wait (300ms) at %d", waited, same.Index, first.Index)
	}
	<-b.barriers

	// A write while it waits wakes it.
	for len(b.barriers) > 0 { // tokens of the calls before, all returned
		<-b.barriers
	}
	done := make(chan error, 1)
	var woke TaskListReply
	go func() {
		done <- cl.Call(ctx, MethodTaskList, &TaskListArgs{QueryOptions: QueryOptions{MinIndex: first.Index, MaxWaitMS: 60_000}}, &woke)
	}()
	<-b.barriers // the call has read the state and waits on its watch
	t1 := time.Now()
	if err := cl.Call(ctx, MethodTaskAdd, &TaskAddArgs{ID: "wake", Type: "shell"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking query did not wake at the write")
	}
	if woke.Index <= first.Index || len(woke.Tasks) != 2 || woke.Tasks[1].ID != "wake" {
		t.Errorf("woke at index %d (from %d) with %d tasks, want the new task", woke.Index, first.Index, len(woke.Tasks))
	}
	t.Logf("woke %s after the write", time.Since(t1).Round(time.Millisecond))
}

// blackHoleLeader accepts RPC connections, reads each request and answers
// none: on each request it sends the request's arrival on got and, with
// hangUp, closes the connection (a leader that died after the call was
// delivered).
func blackHoleLeader(t *testing.T, hangUp bool, got chan<- struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				if _, err := io.ReadFull(c, buf[:1]); err != nil { // the connection type
					return
				}
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					got <- struct{}{}
					if hangUp {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A write a follower forwarded, delivered to a leader that then died
// without answering, is not sent again: it may have committed
// (docs/rpc.md, "Consistency and forwarding"). The caller gets one error.
func TestForwardedCallDeliveredIsNotResent(t *testing.T) {
	got := make(chan struct{}, 16)
	leader := blackHoleLeader(t, true, got)
	b := newFakeBackend()
	b.setLeader(leader)
	cl := serveFake(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One connection, one call: the follower's behaviour alone (a Client
	// would retry an unavailable answer itself, which docs/rpc.md leaves
	// to the caller: a retried Task.Add must carry its id).
	conn, err := Dial(ctx, cl.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Call(ctx, MethodTaskAdd, &TaskAddArgs{ID: "once", Type: "shell"}, nil)
	if err == nil {
		t.Fatal("the call succeeded although the leader never answered")
	}
	if n := len(got); n != 1 {
		t.Fatalf("the leader received the call %d times, want 1 (err %v)", n, err)
	}
	t.Logf("the caller got: %v", err)
}

// A forwarded call whose leader is replaced while it waits is abandoned
// at the leader change (not at its deadline) and sent to the new leader.
func TestForwardedCallFollowsALeaderChange(t *testing.T) {
	gotOld := make(chan struct{}, 16)
	old := blackHoleLeader(t, false, gotOld) // holds the call, answers never
	nb := newFakeBackend()
	newLeader := serveFake(t, nb)
	b := newFakeBackend()
	b.setLeader(old)
	cl := serveFake(t, b)
	done := make(chan error, 1)
	t0 := time.Now()
	go func() {
		done <- cl.Call(context.Background(), MethodTaskAdd, &TaskAddArgs{ID: "moved", Type: "shell"}, nil)
	}()
	<-gotOld // delivered to the old leader, which sits on it
	b.setLeader(newLeader.Addrs()[0])
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after the leader change: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarded call did not follow the leader change")
	}
	if nb.f.Task("moved") == nil {
		t.Fatal("the new leader does not have the task")
	}
	t.Logf("followed the leader change in %s", time.Since(t0).Round(time.Millisecond))

}
