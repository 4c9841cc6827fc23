package cluster

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a test calls Advance. Its
// timers and tickers fire in time order as Advance passes them, each with
// the fake time it fired at; like time's, a channel holds one tick and
// drops the rest.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeTimer
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("non-positive interval for NewTicker")
	}
	return c.add(d, d)
}

func (c *fakeClock) NewTimer(d time.Duration) Timer { return c.add(d, 0) }

func (c *fakeClock) add(d, period time.Duration) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), period: period, active: true}
	c.waiters = append(c.waiters, t)
	return t
}

// Advance moves the clock on by d, firing every timer and ticker due on
// the way.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.waiters {
			if t.active && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		c.now = next.at
		select {
		case next.ch <- c.now:
		default:
		}
		if next.period > 0 {
			next.at = next.at.Add(next.period)
		} else {
			next.active = false
		}
	}
	c.now = end
}

type fakeTimer struct {
	c      *fakeClock
	ch     chan time.Time
	at     time.Time
	period time.Duration // 0 for a timer
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.at, t.active = t.c.now.Add(d), true
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.active = false
}

func TestFakeClockFiresInOrder(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	tick := c.NewTicker(time.Second)
	timer := c.NewTimer(1500 * time.Millisecond)
	c.Advance(999 * time.Millisecond)
	select {
	case <-tick.C():
		t.Fatal("ticker fired before its interval")
	case <-timer.C():
		t.Fatal("timer fired early")
	default:
	}
	c.Advance(time.Millisecond)
	if at := <-tick.C(); at != t0.Add(time.Second) {
		t.Fatalf("tick at %v, want +1s", at.Sub(t0))
	}
	c.Advance(5 * time.Second) // the ticker fires 5 more times; one is kept
	if at := <-tick.C(); at != t0.Add(2*time.Second) {
		t.Fatalf("kept tick at %v, want +2s (the first one not read)", at.Sub(t0))
	}
	if at := <-timer.C(); at != t0.Add(1500*time.Millisecond) {
		t.Fatalf("timer at %v, want +1.5s", at.Sub(t0))
	}
	timer.Reset(time.Second)
	tick.Stop()
	c.Advance(time.Second)
	if at := <-timer.C(); at != t0.Add(7*time.Second) {
		t.Fatalf("reset timer at %v, want +7s", at.Sub(t0))
	}
	select {
	case <-tick.C():
		t.Fatal("stopped ticker fired")
	default:
	}
}
