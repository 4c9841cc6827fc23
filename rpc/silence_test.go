package rpc

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// A held Status.Get (await_silence_ms) answers the moment the follower's
// silence passes, not a probe later; at once when it has passed already;
// and as soon as a look shows the leader heard again. Fake time: exact.
func TestAwaitSilenceAnswersWhenTheSilencePasses(t *testing.T) {
	const silence = 600 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		b := newFakeBackend()
		b.setLeader("127.0.0.1:2")
		s := NewServer(Config{Backend: b, Insecure: true})
		defer s.Shutdown()
		ctx := context.Background()

		// Last word 200 ms ago: held 400 ms, until the silence passes.
		b.setContact(time.Now().Add(-200 * time.Millisecond))
		t0 := time.Now()
		s.waitSilence(ctx, silence)
		if held := time.Since(t0); held != 401*time.Millisecond {
			t.Errorf("held %s, want 401ms (the silence passes 400 ms on; replies say > silence)", held)
		}
		if ms := s.localStatus().LastContactMS; ms <= silence.Milliseconds() {
			t.Errorf("reply's last_contact_ms = %d, want > %d", ms, silence.Milliseconds())
		}

		// Silent for longer already: no hold.
		t0 = time.Now()
		s.waitSilence(ctx, silence)
		if held := time.Since(t0); held != 0 {
			t.Errorf("held %s with the silence passed, want no hold", held)
		}

		// The leader is heard 100 ms into the hold: the look at the
		// deadline sees it and answers (not silent) without a second wait.
		b.setContact(time.Now())
		go func() {
			time.Sleep(100 * time.Millisecond)
			b.setContact(time.Now())
		}()
		t0 = time.Now()
		s.waitSilence(ctx, silence)
		if held := time.Since(t0); held != silence+time.Millisecond {
			t.Errorf("held %s with the leader heard again, want %s", held, silence+time.Millisecond)
		}
		if ms := s.localStatus().LastContactMS; ms >= silence.Milliseconds() {
			t.Errorf("reply's last_contact_ms = %d after the leader was heard, want < %d", ms, silence.Milliseconds())
		}

		// A leader change ends the hold at once.
		b.setContact(time.Now())
		go func() {
			time.Sleep(50 * time.Millisecond)
			b.setLeader("127.0.0.1:3")
		}()
		t0 = time.Now()
		s.waitSilence(ctx, silence)
		if held := time.Since(t0); held != 50*time.Millisecond {
			t.Errorf("held %s across a leader change at 50ms, want 50ms", held)
		}

		// A caller that goes away ends it too.
		b.setContact(time.Now())
		cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		t0 = time.Now()
		s.waitSilence(cctx, silence)
		if held := time.Since(t0); held != 10*time.Millisecond {
			t.Errorf("held %s for a caller gone at 10ms, want 10ms", held)
		}
	})
}

// A leader is never held: it has no leader to fall silent.
func TestAwaitSilenceDoesNotHoldALeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(Config{Backend: newFakeBackend(), Insecure: true})
		defer s.Shutdown()
		t0 := time.Now()
		s.waitSilence(context.Background(), time.Second)
		if held := time.Since(t0); held != 0 {
			t.Errorf("a leader held the call %s", held)
		}
	})
}

// Out-of-range or combined await_silence_ms is refused with
// invalid_argument, over the wire.
func TestAwaitSilenceBadArguments(t *testing.T) {
	cl := serveFake(t, newFakeBackend())
	for _, a := range []StatusArgs{
		{AwaitSilenceMS: -1},
		{AwaitSilenceMS: MaxAwaitSilence.Milliseconds() + 1},
		{AwaitSilenceMS: 100, MinIndex: 3},
		{AwaitSilenceMS: 100, KnownLeader: "s1"},
	} {
		err := cl.Call(context.Background(), MethodStatus, &a, &StatusReply{})
		if e := (*Error)(nil); !errors.As(err, &e) || e.Code != CodeInvalidArgument {
			t.Errorf("Status.Get %+v: got %v, want invalid_argument", a, err)
		}
	}
	var ok StatusReply
	if err := cl.Call(context.Background(), MethodStatus, &StatusArgs{AwaitSilenceMS: 100}, &ok); err != nil || ok.State != "leader" {
		t.Errorf("Status.Get with await_silence_ms on a leader: %v, state %q; want an answer at once", err, ok.State)
	}
}
