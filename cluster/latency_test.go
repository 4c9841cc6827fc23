package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

func TestLatencyWindowP99(t *testing.T) {
	var w latencyWindow
	// fresh computes the figure anew (p99 answers one computed less than
	// latencyReuse ago again; checked at the end).
	fresh := func() (time.Duration, bool) {
		w.mu.Lock()
		w.lastWhen = time.Time{}
		w.mu.Unlock()
		return w.p99()
	}
	if _, ok := fresh(); ok {
		t.Fatal("p99 of no samples")
	}
	for i := 1; i <= 100; i++ {
		w.observe(time.Duration(i) * time.Millisecond)
	}
	if d, _ := fresh(); d != 99*time.Millisecond {
		t.Errorf("p99 of 1..100 ms = %s, want 99ms", d)
	}
	// The window keeps the newest latencySamples: old slow ones leave it.
	for range latencySamples {
		w.observe(time.Millisecond)
	}
	if d, _ := fresh(); d != time.Millisecond {
		t.Errorf("p99 after %d fast samples = %s, want 1ms", latencySamples, d)
	}
	// And samples older than latencyMaxAge do not count.
	w.mu.Lock()
	for i := range w.n {
		w.at[i] = w.at[i].Add(-2 * latencyMaxAge)
	}
	w.mu.Unlock()
	if d, ok := fresh(); ok {
		t.Errorf("p99 of samples older than %s = %s, want none", latencyMaxAge, d)
	}
	// Within latencyReuse the last figure is answered again, new samples
	// or not.
	w.observe(time.Hour)
	if d, ok := w.p99(); ok {
		t.Errorf("p99 recomputed within %s: %s", latencyReuse, d)
	}
}

// Status.Get and Status.Members carry the commit and log sync p99: the
// leader's writes and every server's stored log batches.
func TestHealthFiguresReported(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	for i := range 20 {
		addTask(t, c.client(l), fmt.Sprintf("hf-%d", i))
	}
	var ls, fs rpc.StatusReply
	f := (l + 1) % 3
	if err := c.client(l).Call(ctxT(t, 5*time.Second), rpc.MethodStatus, &rpc.StatusArgs{}, &ls); err != nil {
		t.Fatal(err)
	}
	if err := c.client(f).Call(ctxT(t, 5*time.Second), rpc.MethodStatus, &rpc.StatusArgs{}, &fs); err != nil {
		t.Fatal(err)
	}
	if ls.CommitP99MS <= 0 || ls.LogSyncP99MS <= 0 || ls.CommitP99MS < ls.LogSyncP99MS/10 {
		t.Errorf("leader: commit p99 %v ms, log sync p99 %v ms; want both measured", ls.CommitP99MS, ls.LogSyncP99MS)
	}
	if fs.CommitP99MS != -1 || fs.LogSyncP99MS <= 0 {
		t.Errorf("follower: commit p99 %v ms (want -1: it commits nothing), log sync p99 %v ms (want measured)", fs.CommitP99MS, fs.LogSyncP99MS)
	}
	var m rpc.MembersReply
	if err := c.client(l).Call(ctxT(t, 5*time.Second), rpc.MethodMembers, &rpc.MembersArgs{}, &m); err != nil {
		t.Fatal(err)
	}
	for _, mb := range m.Members {
		if mb.LogSyncP99MS <= 0 || (mb.Leader != (mb.CommitP99MS > 0)) {
			t.Errorf("member %s (leader %v): commit p99 %v, log sync p99 %v", mb.ID, mb.Leader, mb.CommitP99MS, mb.LogSyncP99MS)
		}
	}
}
