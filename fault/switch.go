package fault

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Port is one switch port: a source and sink of Ethernet frames. A TAP
// device is one (see tap_linux.go); tests use in-memory ports.
type Port interface {
	// ReadFrame reads one frame into buf and returns its length. It
	// returns an error once the port is closed.
	ReadFrame(buf []byte) (int, error)
	// WriteFrame sends one frame out of the port. It never blocks for long.
	WriteFrame(frame []byte) error
	// Close unblocks ReadFrame.
	Close() error
}

// Link says what happens to frames sent from one port to another.
type Link struct {
	// Delay is the one-way latency; a round trip costs the Delay of both
	// directions.
	Delay time.Duration
	// Jitter spreads Delay uniformly over [Delay-Jitter, Delay+Jitter].
	// Frames of one direction of a link are never reordered: a frame is
	// never delivered before the one sent ahead of it.
	Jitter time.Duration
	// Loss is the probability in [0, 1] that a frame is dropped.
	Loss float64
}

// ErrSwitchClosed is returned by Switch methods called after Close.
var ErrSwitchClosed = errors.New("fault: switch closed")

// Switch is a user-space Ethernet switch with programmable links. Every
// frame a port sends is delivered to its destination port (learnt from
// source MAC addresses; broadcasts and unknown destinations are flooded)
// after the link's delay, unless the link is cut or the frame is lost.
//
// The link between two ports is the base link the LinkFunc gives for their
// labels, plus per-port extras (AddDelay, SetLoss), unless the pair is
// cut (Partition, Isolate, Cut). Exempt ports (the harness's observer)
// have zero delay and are never cut.
//
// Delivery order is FIFO per direction of each link, as on a wire.
type Switch struct {
	base LinkFunc

	mu     sync.Mutex
	ports  map[string]*swPort
	order  []*swPort
	macs   map[[6]byte]*swPort
	cuts   map[[2]string]bool
	extra  map[string]time.Duration
	pair   map[[2]string]time.Duration // extra delay of one link, both ways (AddLinkDelay)
	loss   map[string]float64
	rng    *rand.Rand
	closed bool

	wg    sync.WaitGroup
	stats SwitchStats
}

// LinkFunc gives the base link from a port labelled src to one labelled
// dst (labels are clouds in the harness).
type LinkFunc func(src, dst string) Link

// SwitchStats counts frames, for logs and tests.
type SwitchStats struct {
	Forwarded atomic.Int64 // frames delivered
	Cut       atomic.Int64 // frames dropped by a cut link
	Lost      atomic.Int64 // frames dropped by random loss
	Overflow  atomic.Int64 // frames dropped because a link queue was full
}

type swPort struct {
	name, label string
	exempt      bool
	p           Port
	sw          *Switch
	queues      map[string]*linkQueue // by destination port name; guarded by Switch.mu
	done        chan struct{}
}

// linkQueue carries the frames of one direction of one link, in order.
type linkQueue struct {
	ch   chan frame
	last time.Time // due time of the last frame queued; guarded by Switch.mu
}

type frame struct {
	data []byte
	due  time.Time
}

// queueLen bounds the frames in flight on one direction of a link.
const queueLen = 4096

// NewSwitch returns a switch whose base links come from base; seed makes
// jitter and loss reproducible.
func NewSwitch(base LinkFunc, seed uint64) *Switch {
	return &Switch{
		base:  base,
		ports: map[string]*swPort{},
		macs:  map[[6]byte]*swPort{},
		cuts:  map[[2]string]bool{},
		extra: map[string]time.Duration{},
		pair:  map[[2]string]time.Duration{},
		loss:  map[string]float64{},
		rng:   rand.New(rand.NewPCG(seed, seed^0x5eed)),
	}
}

// Stats returns the switch's frame counters.
func (s *Switch) Stats() *SwitchStats { return &s.stats }

// AddPort attaches p under a unique name with a label (its cloud). An
// exempt port has zero delay and is never cut. The switch owns p from now
// on and closes it on Close.
func (s *Switch) AddPort(name, label string, exempt bool, p Port) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSwitchClosed
	}
	if _, dup := s.ports[name]; dup {
		return errors.New("fault: switch port " + name + " already exists")
	}
	sp := &swPort{name: name, label: label, exempt: exempt, p: p, sw: s,
		queues: map[string]*linkQueue{}, done: make(chan struct{})}
	s.ports[name] = sp
	s.order = append(s.order, sp)
	s.wg.Add(1)
	go sp.readLoop()
	return nil
}

// Close detaches and closes every port and waits for the switch's
// goroutines to stop. Frames in flight are dropped.
func (s *Switch) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ports := slices.Clone(s.order)
	s.mu.Unlock()
	for _, p := range ports {
		close(p.done)
		p.p.Close()
	}
	s.wg.Wait()
}

func (sp *swPort) readLoop() {
	defer sp.sw.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := sp.p.ReadFrame(buf)
		if err != nil {
			select {
			case <-sp.done:
				return
			default:
			}
			// A transient error on a live port: do not spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n < 14 {
			continue // not an Ethernet frame
		}
		sp.sw.forward(sp, buf[:n])
	}
}

// forward queues a copy of f on the link to each destination.
func (s *Switch) forward(src *swPort, f []byte) {
	var dstMAC, srcMAC [6]byte
	copy(dstMAC[:], f[0:6])
	copy(srcMAC[:], f[6:12])
	now := time.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if srcMAC[0]&1 == 0 {
		s.macs[srcMAC] = src
	}
	var dsts []*swPort
	if dst, ok := s.macs[dstMAC]; ok && dstMAC[0]&1 == 0 {
		if dst != src {
			dsts = []*swPort{dst}
		}
	} else {
		for _, p := range s.order {
			if p != src {
				dsts = append(dsts, p)
			}
		}
	}
	for _, dst := range dsts {
		if s.cutLocked(src, dst) {
			s.stats.Cut.Add(1)
			continue
		}
		l := s.linkLocked(src, dst)
		if l.Loss > 0 && s.rng.Float64() < l.Loss {
			s.stats.Lost.Add(1)
			continue
		}
		d := l.Delay
		if l.Jitter > 0 {
			d += time.Duration(s.rng.Int64N(int64(2*l.Jitter)+1)) - l.Jitter
		}
		due := now.Add(max(d, 0))
		q := src.queues[dst.name]
		if q == nil {
			q = &linkQueue{ch: make(chan frame, queueLen)}
			src.queues[dst.name] = q
			s.wg.Add(1)
			go s.deliver(src, dst, q)
		}
		if due.Before(q.last) {
			due = q.last // FIFO: never overtake the frame ahead
		}
		select {
		case q.ch <- frame{data: slices.Clone(f), due: due}:
			q.last = due
		default:
			s.stats.Overflow.Add(1)
		}
	}
}

// deliver writes the frames of one link direction when they are due.
func (s *Switch) deliver(src, dst *swPort, q *linkQueue) {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var f frame
		select {
		case f = <-q.ch:
		case <-src.done:
			return
		case <-dst.done:
			return
		}
		if wait := time.Until(f.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-src.done:
				return
			case <-dst.done:
				return
			}
		}
		s.mu.Lock()
		cut := s.cutLocked(src, dst)
		s.mu.Unlock()
		if cut { // cut while in flight: lost on the wire
			s.stats.Cut.Add(1)
			continue
		}
		if err := dst.p.WriteFrame(f.data); err == nil {
			s.stats.Forwarded.Add(1)
		}
	}
}

func (s *Switch) cutLocked(src, dst *swPort) bool {
	if src.exempt || dst.exempt {
		return false
	}
	return s.cuts[[2]string{src.name, dst.name}]
}

func (s *Switch) linkLocked(src, dst *swPort) Link {
	if src.exempt || dst.exempt {
		return Link{}
	}
	l := Link{}
	if s.base != nil {
		l = s.base(src.label, dst.label)
	}
	l.Delay += s.extra[src.name] + s.extra[dst.name] + s.pair[[2]string{src.name, dst.name}]
	keep := (1 - l.Loss) * (1 - s.loss[src.name]) * (1 - s.loss[dst.name])
	l.Loss = 1 - keep
	return l
}

// LinkBetween reports the link frames from src to dst currently get, and
// whether it is cut.
func (s *Switch) LinkBetween(src, dst string) (Link, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := s.ports[src], s.ports[dst]
	if a == nil || b == nil {
		return Link{}, false, errors.New("fault: unknown port " + src + " or " + dst)
	}
	return s.linkLocked(a, b), s.cutLocked(a, b), nil
}

// Cut drops every frame from src to dst (one direction; call it twice, or
// use Partition, for both).
func (s *Switch) Cut(src, dst string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cuts[[2]string{src, dst}] = true
}

// Partition cuts every pair of named ports that no group holds together,
// both ways. Ports named in no group keep all their links. A port named in
// two groups bridges them: it talks to both sides while they cannot talk
// to each other. Partition adds to the cuts in place; Heal removes them.
func (s *Switch) Partition(groups ...[]string) {
	in := map[string][]int{}
	for gi, g := range groups {
		for _, name := range g {
			in[name] = append(in[name], gi)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, ga := range in {
		for b, gb := range in {
			if a == b {
				continue
			}
			shared := false
			for _, x := range ga {
				if slices.Contains(gb, x) {
					shared = true
					break
				}
			}
			if !shared {
				s.cuts[[2]string{a, b}] = true
			}
		}
	}
}

// Isolate cuts name off from every other port, both ways.
func (s *Switch) Isolate(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for other := range s.ports {
		if other != name {
			s.cuts[[2]string{name, other}] = true
			s.cuts[[2]string{other, name}] = true
		}
	}
}

// Heal removes every cut.
func (s *Switch) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.cuts)
}

// AddDelay adds d to the one-way delay of every frame sent or received by
// the named ports (a latency spike); d = 0 removes it.
func (s *Switch) AddDelay(d time.Duration, ports ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ports {
		if d == 0 {
			delete(s.extra, p)
		} else {
			s.extra[p] = d
		}
	}
}

// AddLinkDelay adds d to the one-way delay of every frame between ports
// a and b, both ways, and of no other link (a spike on one link); d = 0
// removes it.
func (s *Switch) AddLinkDelay(d time.Duration, a, b string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range [][2]string{{a, b}, {b, a}} {
		if d == 0 {
			delete(s.pair, k)
		} else {
			s.pair[k] = d
		}
	}
}

// ClearLinkDelays removes every AddLinkDelay.
func (s *Switch) ClearLinkDelays() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pair)
}

// SetLoss drops frames sent or received by the named ports with
// probability p; p = 0 removes it.
func (s *Switch) SetLoss(p float64, ports ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range ports {
		if p == 0 {
			delete(s.loss, name)
		} else {
			s.loss[name] = p
		}
	}
}
