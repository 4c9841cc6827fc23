package fault

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// memPort is an in-memory Port: frames written to in come out of the
// switch's ReadFrame; frames the switch writes are recorded with the time.
type memPort struct {
	in     chan []byte
	mu     sync.Mutex
	got    []recv
	closed chan struct{}
	once   sync.Once
}

type recv struct {
	data []byte
	at   time.Time
}

func newMemPort() *memPort { return &memPort{in: make(chan []byte, 1024), closed: make(chan struct{})} }

func (m *memPort) ReadFrame(buf []byte) (int, error) {
	select {
	case f := <-m.in:
		return copy(buf, f), nil
	case <-m.closed:
		return 0, errors.New("closed")
	}
}

func (m *memPort) WriteFrame(f []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, recv{data: append([]byte(nil), f...), at: time.Now()})
	return nil
}

func (m *memPort) Close() error { m.once.Do(func() { close(m.closed) }); return nil }

func (m *memPort) frames() []recv {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]recv(nil), m.got...)
}

func mac(i byte) []byte { return []byte{0x02, 0x77, 0, 0, 0, i} }

var bcast = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ethFrame builds a minimal frame from src to dst carrying seq.
func ethFrame(dst, src []byte, seq byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	f[12], f[13] = 0x88, 0xb5 // local experimental ethertype
	f[14] = seq
	return f
}

func twoClouds(src, dst string) Link {
	if src == dst {
		return Link{Delay: 10 * time.Millisecond}
	}
	return Link{Delay: 60 * time.Millisecond}
}

type swFixture struct {
	sw    *Switch
	ports map[string]*memPort
}

// newFixture attaches ports a1, a2 (label aws), g1 (gcp) and ops (exempt),
// with MACs 1..4, and lets the switch learn every MAC.
func newFixture(t *testing.T, base LinkFunc) *swFixture {
	t.Helper()
	fx := &swFixture{sw: NewSwitch(base, 1), ports: map[string]*memPort{}}
	t.Cleanup(fx.sw.Close)
	specs := []struct {
		name, label string
		exempt      bool
	}{{"a1", "aws", false}, {"a2", "aws", false}, {"g1", "gcp", false}, {"ops", "ops", true}}
	for _, s := range specs {
		p := newMemPort()
		fx.ports[s.name] = p
		if err := fx.sw.AddPort(s.name, s.label, s.exempt, p); err != nil {
			t.Fatal(err)
		}
	}
	// Once every port is attached, each broadcasts once: that teaches the
	// switch its MAC.
	for i, s := range specs {
		fx.ports[s.name].in <- ethFrame(bcast, mac(byte(i+1)), 0)
	}
	// Every port hears the other three broadcasts before the slate is
	// wiped: a broadcast still in flight would count as a stray frame.
	waitFor(t, func() bool {
		for _, p := range fx.ports {
			if len(p.frames()) != len(specs)-1 {
				return false
			}
		}
		return true
	})
	for _, p := range fx.ports {
		p.mu.Lock()
		p.got = nil
		p.mu.Unlock()
	}
	return fx
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSwitchDelaysByLabel(t *testing.T) {
	fx := newFixture(t, twoClouds)
	cases := []struct {
		name     string
		src, dst string
		srcMAC   byte
		dstMAC   byte
		min, max time.Duration
	}{
		{"intra-cloud", "a1", "a2", 1, 2, 10 * time.Millisecond, 40 * time.Millisecond},
		{"cross-cloud", "a1", "g1", 1, 3, 60 * time.Millisecond, 90 * time.Millisecond},
		{"to the exempt observer", "g1", "ops", 3, 4, 0, 20 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sent := time.Now()
			fx.ports[tc.src].in <- ethFrame(mac(tc.dstMAC), mac(tc.srcMAC), 7)
			dst := fx.ports[tc.dst]
			waitFor(t, func() bool { return len(dst.frames()) > 0 })
			got := dst.frames()[0]
			if took := got.at.Sub(sent); took < tc.min || took > tc.max {
				t.Fatalf("frame %s→%s took %s, want within [%s, %s]", tc.src, tc.dst, took, tc.min, tc.max)
			}
			for name, p := range fx.ports {
				if name != tc.dst && len(p.frames()) != 0 {
					t.Fatalf("unicast frame also reached %s", name)
				}
			}
			dst.mu.Lock()
			dst.got = nil
			dst.mu.Unlock()
		})
	}
}

func TestSwitchKeepsOrderUnderJitter(t *testing.T) {
	fx := newFixture(t, func(string, string) Link { return Link{Delay: 5 * time.Millisecond, Jitter: 5 * time.Millisecond} })
	for i := range 200 {
		fx.ports["a1"].in <- ethFrame(mac(3), mac(1), byte(i))
	}
	g1 := fx.ports["g1"]
	waitFor(t, func() bool { return len(g1.frames()) == 200 })
	for i, f := range g1.frames() {
		if f.data[14] != byte(i) {
			t.Fatalf("frame %d arrived in position %d: frames were reordered", f.data[14], i)
		}
	}
}

func TestSwitchPartitions(t *testing.T) {
	cases := []struct {
		name    string
		cut     func(sw *Switch)
		reaches map[[2]string]bool // src,dst → delivered
	}{
		{"two sides", func(sw *Switch) { sw.Partition([]string{"a1", "a2"}, []string{"g1"}) },
			map[[2]string]bool{{"a1", "a2"}: true, {"a1", "g1"}: false, {"g1", "a2"}: false, {"g1", "ops"}: true, {"ops", "a1"}: true}},
		{"bridge", func(sw *Switch) { sw.Partition([]string{"a1", "a2"}, []string{"a2", "g1"}) },
			map[[2]string]bool{{"a1", "a2"}: true, {"a2", "g1"}: true, {"g1", "a2"}: true, {"a1", "g1"}: false, {"g1", "a1"}: false}},
		{"isolate", func(sw *Switch) { sw.Isolate("a2") },
			map[[2]string]bool{{"a1", "a2"}: false, {"a2", "g1"}: false, {"a1", "g1"}: true, {"a2", "ops"}: true}},
		{"one way", func(sw *Switch) { sw.Cut("a1", "g1") },
			map[[2]string]bool{{"a1", "g1"}: false, {"g1", "a1"}: true}},
		{"healed", func(sw *Switch) { sw.Isolate("a1"); sw.Heal() },
			map[[2]string]bool{{"a1", "g1"}: true, {"g1", "a1"}: true, {"a2", "a1"}: true}},
	}
	macs := map[string]byte{"a1": 1, "a2": 2, "g1": 3, "ops": 4}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, func(string, string) Link { return Link{Delay: time.Millisecond} })
			tc.cut(fx.sw)
			for pair := range tc.reaches {
				fx.ports[pair[0]].in <- ethFrame(mac(macs[pair[1]]), mac(macs[pair[0]]), 1)
			}
			want := map[string]int{}
			for pair, ok := range tc.reaches {
				if ok {
					want[pair[1]]++
				}
			}
			time.Sleep(50 * time.Millisecond) // let dropped frames not arrive
			for name, p := range fx.ports {
				if got := len(p.frames()); got != want[name] {
					t.Errorf("%s received %d frames, want %d (%v)", name, got, want[name], tc.reaches)
				}
			}
		})
	}
}

func TestSwitchLossAndSpike(t *testing.T) {
	fx := newFixture(t, func(string, string) Link { return Link{Delay: time.Millisecond} })
	fx.sw.SetLoss(0.5, "a1")
	for i := range 400 {
		fx.ports["a1"].in <- ethFrame(mac(2), mac(1), byte(i))
	}
	time.Sleep(100 * time.Millisecond)
	if got := len(fx.ports["a2"].frames()); got < 140 || got > 260 {
		t.Fatalf("with 50%% loss %d of 400 frames arrived", got)
	}
	fx.sw.SetLoss(0, "a1")
	fx.sw.AddDelay(80*time.Millisecond, "g1")
	l, cut, err := fx.sw.LinkBetween("a1", "g1")
	if err != nil || cut || l.Delay != 81*time.Millisecond || l.Loss != 0 {
		t.Fatalf("link a1→g1 = %+v cut=%v err=%v, want 81ms, no loss", l, cut, err)
	}
	sent := time.Now()
	fx.ports["a1"].in <- ethFrame(mac(3), mac(1), 1)
	waitFor(t, func() bool { return len(fx.ports["g1"].frames()) == 1 })
	if took := fx.ports["g1"].frames()[0].at.Sub(sent); took < 81*time.Millisecond {
		t.Fatalf("spiked frame took %s, want ≥ 81ms", took)
	}
}

// A spike on one link delays that link both ways and no other.
func TestSwitchLinkSpike(t *testing.T) {
	fx := newFixture(t, func(string, string) Link { return Link{Delay: time.Millisecond} })
	fx.sw.AddLinkDelay(500*time.Millisecond, "a1", "g1")
	for _, c := range []struct {
		src, dst string
		want     time.Duration
	}{
		{"a1", "g1", 501 * time.Millisecond},
		{"g1", "a1", 501 * time.Millisecond},
		{"a1", "a2", time.Millisecond},
		{"a2", "g1", time.Millisecond},
	} {
		if l, _, err := fx.sw.LinkBetween(c.src, c.dst); err != nil || l.Delay != c.want {
			t.Errorf("link %s→%s: %v %v, want delay %s", c.src, c.dst, l.Delay, err, c.want)
		}
	}
	fx.sw.ClearLinkDelays()
	if l, _, _ := fx.sw.LinkBetween("g1", "a1"); l.Delay != time.Millisecond {
		t.Errorf("after ClearLinkDelays g1→a1 delay %s, want 1ms", l.Delay)
	}
}

func TestSwitchFloodsBroadcasts(t *testing.T) {
	fx := newFixture(t, func(string, string) Link { return Link{} })
	fx.ports["g1"].in <- ethFrame(bcast, mac(3), 9)
	waitFor(t, func() bool {
		return len(fx.ports["a1"].frames()) == 1 && len(fx.ports["a2"].frames()) == 1 && len(fx.ports["ops"].frames()) == 1
	})
	if n := len(fx.ports["g1"].frames()); n != 0 {
		t.Fatalf("broadcast echoed back to its sender %d times", n)
	}
}
