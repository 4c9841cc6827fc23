package rpc

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMembersProbeIsSharedAndCached: Status.Members callers share one
// probe of the servers while it runs and reuse it for membersProbeTTL;
// a new term or configuration (the key) or an older probe probes again.
func TestMembersProbeIsSharedAndCached(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	c := &membersCache{now: func() time.Time { return time.Unix(0, clock.Load()) }}
	var probes atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	probe := func(context.Context) map[string]memberProbe {
		probes.Add(1)
		started <- struct{}{}
		<-release
		return map[string]memberProbe{"s2": {ok: true, state: "follower"}}
	}

	// Eight callers at once: one probes, the others wait for it.
	var wg sync.WaitGroup
	results := make([]map[string]memberProbe, 8)
	wg.Add(1)
	go func() { defer wg.Done(); results[0] = c.get(context.Background(), "k1", probe) }()
	<-started
	for i := 1; i < len(results); i++ {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = c.get(context.Background(), "k1", probe) }()
	}
	// A caller that gives up while the probe runs gets nothing, at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := c.get(ctx, "k1", probe); got != nil {
		t.Fatalf("cancelled caller got %v", got)
	}
	close(release)
	wg.Wait()
	for i, r := range results {
		if !r["s2"].ok {
			t.Fatalf("caller %d got %v", i, r)
		}
	}
	if n := probes.Load(); n != 1 {
		t.Fatalf("%d probes for concurrent callers, want 1", n)
	}

	fresh := func(context.Context) map[string]memberProbe {
		probes.Add(1)
		return map[string]memberProbe{}
	}
	clock.Add(int64(membersProbeTTL - time.Millisecond))
	c.get(context.Background(), "k1", fresh)
	if n := probes.Load(); n != 1 {
		t.Fatalf("probed again within the TTL (%d probes)", n)
	}
	c.get(context.Background(), "k2", fresh) // another term or configuration
	if n := probes.Load(); n != 2 {
		t.Fatalf("a new key reused the old probe (%d probes)", n)
	}
	clock.Add(int64(membersProbeTTL))
	c.get(context.Background(), "k2", fresh)
	if n := probes.Load(); n != 3 {
		t.Fatalf("an expired probe was reused (%d probes)", n)
	}
}
