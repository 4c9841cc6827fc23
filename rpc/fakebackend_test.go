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
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{f: fsm.New(), barriers: make(chan struct{}, 64)}
}

func (b *fakeBackend) FSM() *fsm.FSM { return b.f }
func (b *fakeBackend) RaftState() RaftState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return RaftState{State: "leader", Term: 1, CommitIndex: b.index, AppliedIndex: b.index, LastIndex: b.index}
}
func (b *fakeBackend) Leader() (string, string) { return "127.0.0.1:1", "s1" }
func (b *fakeBackend) IsLeader() bool           { return true }
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
func (b *fakeBackend) LeaderReady() bool            { return true }
func (b *fakeBackend) LastLeaderChange() time.Time  { return time.Time{} }
func (b *fakeBackend) ConfigIndex() uint64          { return 1 }
func (b *fakeBackend) LeaderWatch() <-chan struct{} { return make(chan struct{}) }
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
