package cluster

import "time"

// Clock is the time source of the leader's duties: node liveness, the
// scheduler's rounds, leader placement and retention read the time and
// wait through it, so a test drives all of them with one fake clock
// (Config.Clock). Raft and what watches raft (succession, warm
// connections, forwarding) keep real time: they measure raft's own timers,
// such as LastContact, which no clock of ours moves.
type Clock interface {
	Now() time.Time
	// NewTicker is time.NewTicker on this clock.
	NewTicker(d time.Duration) Ticker
	// NewTimer is time.NewTimer on this clock.
	NewTimer(d time.Duration) Timer
}

// Ticker is a time.Ticker on a Clock.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Timer is a time.Timer on a Clock.
type Timer interface {
	C() <-chan time.Time
	// Reset makes the timer fire d from now (it need not have fired).
	Reset(d time.Duration)
	Stop()
}

// realClock is the wall clock: the default.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }
